import { commandsOf } from './command.js'
import type { Rooms } from '../src/services/rooms.js'
import { Empty } from '../src/schemas/common.js'
import {
  CreateRoomBody,
  DescribeRoomBody,
  MemberReply,
  MembersReply,
  RenameRoomBody,
  RoomIdBody,
  RoomMemberBody,
  RoomMembersBody,
  RoomReply,
  RoomsReply,
  SearchRoomsBody,
  SetRoleBody,
} from '../src/schemas/rooms.js'
import { NoFields } from '../src/schemas/accounts.js'

const command = commandsOf('rooms')


/** A command that acts on one user of a room and answers `{}`. */
function memberCommand(
  spec: { name: string; summary: string; description: string; errors: number[] },
  act: (rooms: Rooms, actorId: number, roomId: number, uid: number) => Promise<void>,
) {
  return command({
    ...spec,
    body: RoomMemberBody,
    reply: Empty,
    run: async ({ app, session }, body) => {
      await act(app.services.rooms, session.userId, body.room_id, body.uid)
      return {}
    },
  })
}

export const createRoom = command({
  name: 'create_room',
  summary: 'Create a room',
  description: 'You become its owner. `public` rooms can be found and joined by anyone; `private` ones by invitation.',
  body: CreateRoomBody,
  reply: RoomReply,
  run: async ({ app, session }, body) => ({ room: await app.services.rooms.create(session.userId, body) }),
})

export const deleteRoom = command({
  name: 'delete_room',
  summary: 'Delete a room (owner)',
  description: 'Every member gets `room_deleted`; its messages are gone.',
  body: RoomIdBody,
  reply: Empty,
  errors: [403, 404],
  run: async ({ app, session }, body) => {
    await app.services.rooms.remove(session.userId, body.room_id)
    return {}
  },
})

export const renameRoom = command({
  name: 'rename_room',
  summary: 'Rename a room (owner, moderators)',
  description: 'Every member gets `room_renamed`.',
  body: RenameRoomBody,
  reply: RoomReply,
  errors: [403, 404],
  run: async ({ app, session }, body) => ({ room: await app.services.rooms.update(session.userId, body.room_id, { name: body.name }) }),
})

export const describeRoom = command({
  name: 'describe_room',
  summary: 'Change a room\'s description (owner, moderators)',
  description: 'Every member gets `room_described`.',
  body: DescribeRoomBody,
  reply: RoomReply,
  errors: [403, 404],
  run: async ({ app, session }, body) => ({ room: await app.services.rooms.update(session.userId, body.room_id, { description: body.description }) }),
})

export const joinRoom = command({
  name: 'join_room',
  summary: 'Join a public room',
  description: 'Every member gets `member_joined`. Banned users are refused (403), and so are private rooms.',
  body: RoomIdBody,
  reply: RoomReply,
  errors: [403, 404],
  run: async ({ app, session }, body) => ({ room: await app.services.rooms.join(session.userId, body.room_id) }),
})

export const inviteToRoom = memberCommand(
  {
    name: 'invite_to_room',
    summary: 'Add a user to a room (owner, moderators)',
    description:
      'The user becomes a member; every member, the new one included, gets `member_joined`.',
    errors: [403, 404],
  },
  (rooms, actorId, roomId, uid) => rooms.invite(actorId, roomId, uid),
)

export const leaveRoom = command({
  name: 'leave_room',
  summary: 'Leave a room',
  description: 'Every member and you get `member_left`. The owner cannot leave (409): delete the room instead.',
  body: RoomIdBody,
  reply: Empty,
  errors: [403, 404, 409],
  run: async ({ app, session }, body) => {
    await app.services.rooms.leave(session.userId, body.room_id)
    return {}
  },
})

export const myRooms = command({
  name: 'my_rooms',
  summary: 'The rooms I am a member of',
  body: NoFields,
  reply: RoomsReply,
  run: async ({ app, session }) => ({ rooms: await app.services.rooms.mine(session.userId) }),
})

export const searchRooms = command({
  name: 'search_rooms',
  summary: 'Find public rooms by name prefix',
  description: 'Case-insensitive; ordered by name; paged with offset and count.',
  body: SearchRoomsBody,
  reply: RoomsReply,
  run: async ({ app }, body) => ({ rooms: await app.services.rooms.search(body.prefix, body.offset ?? 0, body.count ?? 20) }),
})

export const roomMembers = command({
  name: 'room_members',
  summary: 'A room\'s members with their roles (members only)',
  body: RoomMembersBody,
  reply: MembersReply,
  errors: [403],
  run: async ({ app, session }, body) => ({
    members: await app.services.rooms.members(session.userId, body.room_id, body.offset ?? 0, body.count ?? 100),
  }),
})

export const memberInfo = command({
  name: 'member_info',
  summary: 'One member of a room (members only)',
  body: RoomMemberBody,
  reply: MemberReply,
  errors: [403, 404],
  run: async ({ app, session }, body) => ({ member: await app.services.rooms.member(session.userId, body.room_id, body.uid) }),
})

export const setRole = command({
  name: 'set_role',
  summary: 'Make a member a moderator, or a moderator a member (owner)',
  description: 'Every member gets `role_changed`.',
  body: SetRoleBody,
  reply: Empty,
  errors: [403, 404],
  run: async ({ app, session }, body) => {
    await app.services.rooms.setRole(session.userId, body.room_id, body.uid, body.role as 'moderator' | 'member')
    return {}
  },
})

export const banMember = memberCommand(
  {
    name: 'ban_member',
    summary: 'Ban a user from a room (owner, moderators)',
    description:
      "At once: they leave, cannot rejoin, read or send, and get no more of the room's events. Every member and the banned user get " +
      '`member_banned`. Moderators cannot ban moderators or the owner.',
    errors: [403, 404],
  },
  (rooms, actorId, roomId, uid) => rooms.ban(actorId, roomId, uid),
)

export const unbanMember = memberCommand(
  {
    name: 'unban_member',
    summary: 'Lift a ban (owner, moderators)',
    description:
      'The user may join (or be invited) again; every member and the user get `member_unbanned`.',
    errors: [403, 404, 409],
  },
  (rooms, actorId, roomId, uid) => rooms.unban(actorId, roomId, uid),
)

export const kickMember = memberCommand(
  {
    name: 'kick_member',
    summary: 'Remove a member from a room (owner, moderators)',
    description:
      'They may rejoin a public room. Every member and the removed user get `member_kicked`.',
    errors: [403, 404],
  },
  (rooms, actorId, roomId, uid) => rooms.kick(actorId, roomId, uid),
)
