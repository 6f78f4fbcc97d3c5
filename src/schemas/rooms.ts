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
    channel: Type.Boolean({ description: 'A channel: only the owner and moderators post; members read.' }),
    member_reactions: Type.Boolean({ description: 'In a channel, whether members may react (in other rooms always true).' }),
    owner_uid: Id('The owner.'),
    members: Type.Integer({ minimum: 0, description: 'Members, banned ones not counted.' }),
    role: Type.Optional(Role),
  },
  { $id: 'Room', description: 'A room; `role` is mine, where I am a member.' },
)
// The examples' room: General (room 1), alice's (uid 1), bob (uid 2) a member.
const general = { room_id: 1, name: 'General', description: 'all of us', type: 'public', channel: false, member_reactions: true, owner_uid: 1, members: 2, role: 'owner' }

export const RoomReply = Type.Object({ room: Room }, { examples: [{ room: general }] })
export const RoomsReply = Type.Object(
  { rooms: Type.Array(Room) },
  { examples: [{ rooms: [general, { room_id: 4, name: 'Announcements', description: 'news from the team', type: 'public', channel: true, member_reactions: true, owner_uid: 3, members: 500 }] }] },
)

export const CreateRoomBody = Fields(
  {
    name: RoomName,
    description: Type.Optional(RoomDescription),
    type: Type.Enum(['public', 'private'], { description: '`public`: anyone may find and join it; `private`: by invitation.' }),
    channel: Type.Optional(Type.Boolean({ description: 'A channel: only the owner and moderators post (default false).' })),
    member_reactions: Type.Optional(Type.Boolean({ description: 'For a channel: whether members may react (default true).' })),
  },
  {
    examples: [
      { name: 'General', type: 'public', description: 'all of us' },
      { name: 'Announcements', type: 'public', description: 'news from the team', channel: true, member_reactions: true },
    ],
  },
)
export const RoomIdBody = Fields({ room_id: RoomId }, { examples: [{ room_id: 1 }] })
export const RenameRoomBody = Fields({ room_id: RoomId, name: RoomName }, { examples: [{ room_id: 1, name: 'General chat' }] })
export const DescribeRoomBody = Fields({ room_id: RoomId, description: RoomDescription }, { examples: [{ room_id: 1, description: 'all of us, all the time' }] })
export const RoomMemberBody = Fields({ room_id: RoomId, uid: Id('The user.') }, { examples: [{ room_id: 1, uid: 2 }] })
export const SetRoleBody = Fields(
  { room_id: RoomId, uid: Id('The member.'), role: Type.Enum(['moderator', 'member']) },
  { examples: [{ room_id: 1, uid: 2, role: 'moderator' }] },
)
export const SearchRoomsBody = Fields(
  {
    prefix: Type.String({ maxLength: 64, description: 'The beginning of the name, regardless of case; empty lists all.' }),
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
    count: Type.Optional(Count(100, 20)),
  },
  { examples: [{ prefix: 'g', count: 20 }] },
)
export const RoomMembersBody = Fields(
  {
    room_id: RoomId,
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
    count: Type.Optional(Count(1000, 100)),
  },
  { examples: [{ room_id: 1, offset: 0, count: 100 }] },
)

export const Member = Type.Object(
  { uid: Id('The member.'), login: Type.String(), role: Role, joined_at: UnixSeconds('When they joined.') },
  { $id: 'Member', description: 'A member of a room, with their role.' },
)
export const MembersReply = Type.Object(
  { members: Type.Array(Member) },
  {
    examples: [
      {
        members: [
          { uid: 1, login: 'alice', role: 'owner', joined_at: 1796283320 },
          { uid: 2, login: 'bob', role: 'member', joined_at: 1796283331 },
        ],
      },
    ],
  },
)
export const MemberReply = Type.Object({ member: Member }, { examples: [{ member: { uid: 2, login: 'bob', role: 'member', joined_at: 1796283331 } }] })
