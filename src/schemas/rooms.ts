import { Type } from 'typebox'
import { Fields, Id, UnixSeconds } from './common.js'
import { Count } from './messages.js'

const RoomName = Type.String({ minLength: 1, maxLength: 64, description: '1 to 64 characters.' })
const RoomDescription = Type.String({ maxLength: 1024, description: 'At most 1024 characters.' })
const RoomId = Id('The room.')
const Role = Type.Enum(['owner', 'moderator', 'member', 'banned'])

export const Room = Type.Object(
  {
    room_id: RoomId,
    name: Type.String(),
    description: Type.String(),
    type: Type.Enum(['public', 'private']),
    owner_uid: Id('The owner.'),
    members: Type.Integer({ minimum: 0, description: 'Members, banned ones not counted.' }),
    role: Type.Optional(Role),
  },
  { $id: 'Room', description: 'A room; `role` is mine, where I am a member.' },
)
export const RoomReply = Type.Object({ room: Room })
export const RoomsReply = Type.Object({ rooms: Type.Array(Room) })

export const CreateRoomBody = Fields({
  name: RoomName,
  description: Type.Optional(RoomDescription),
  type: Type.Enum(['public', 'private'], { description: '`public`: anyone may find and join it; `private`: by invitation.' }),
})
export const RoomIdBody = Fields({ room_id: RoomId })
export const RenameRoomBody = Fields({ room_id: RoomId, name: RoomName })
export const DescribeRoomBody = Fields({ room_id: RoomId, description: RoomDescription })
export const RoomMemberBody = Fields({ room_id: RoomId, uid: Id('The user.') })
export const SetRoleBody = Fields({ room_id: RoomId, uid: Id('The member.'), role: Type.Enum(['moderator', 'member']) })
export const SearchRoomsBody = Fields({
  prefix: Type.String({ maxLength: 64, description: 'The beginning of the name, regardless of case; empty lists all.' }),
  offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
  count: Type.Optional(Count(100, 20)),
})
export const RoomMembersBody = Fields({
  room_id: RoomId,
  offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
  count: Type.Optional(Count(1000, 100)),
})

export const Member = Type.Object(
  { uid: Id('The member.'), login: Type.String(), role: Role, joined_at: UnixSeconds('When they joined.') },
  { $id: 'Member', description: 'A member of a room, with their role.' },
)
export const MembersReply = Type.Object({ members: Type.Array(Member) })
export const MemberReply = Type.Object({ member: Member })
