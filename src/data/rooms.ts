// Data access for rooms and room_members.
import type { Knex } from 'knex'

export type RoomType = 'public' | 'private'
export type Role = 'owner' | 'moderator' | 'member' | 'banned'

export interface RoomRow {
  id: number
  name: string
  description: string
  type: RoomType
  owner_id: number
  cleared_through: number
  /** Only the owner and moderators post. */
  channel: boolean
  /** In a channel: members may react. */
  member_reactions: boolean
}

export async function insertRoom(
  db: Knex,
  room: { name: string; description: string; type: RoomType; ownerId: number; channel: boolean; memberReactions: boolean },
): Promise<number> {
  const [row] = await db('rooms')
    .insert({ name: room.name, description: room.description, type: room.type, owner_id: room.ownerId, channel: room.channel, member_reactions: room.memberReactions })
    .returning('id')
  return row.id
}

/**
 * Locks the room row: every change to a room and every room message takes it first, so
 * they serialize per room (and message ids grow in commit order within the room).
 */
export async function lockRoom(trx: Knex.Transaction, roomId: number): Promise<RoomRow | undefined> {
  return trx('rooms').select('*').where({ id: roomId }).forUpdate().first()
}

export async function findRoom(db: Knex, roomId: number): Promise<RoomRow | undefined> {
  return db('rooms').select('*').where({ id: roomId }).first()
}

export async function updateRoom(db: Knex, roomId: number, changes: Partial<Pick<RoomRow, 'name' | 'description' | 'cleared_through'>>): Promise<void> {
  await db('rooms').where({ id: roomId }).update(changes)
}

export async function deleteRoom(db: Knex, roomId: number): Promise<void> {
  await db('rooms').where({ id: roomId }).delete()
}

export async function getRole(db: Knex, roomId: number, userId: number): Promise<Role | undefined> {
  const row = await db('room_members').select('role').where({ room_id: roomId, user_id: userId }).first()
  return row?.role
}

export async function setRole(db: Knex, roomId: number, userId: number, role: Role): Promise<void> {
  await db('room_members').insert({ room_id: roomId, user_id: userId, role }).onConflict(['room_id', 'user_id']).merge({ role })
}

export async function removeMember(db: Knex, roomId: number, userId: number): Promise<void> {
  await db('room_members').where({ room_id: roomId, user_id: userId }).delete()
}

/** Everyone who sees the room's events: members of every role but banned. */
export async function memberIds(db: Knex, roomId: number): Promise<number[]> {
  const rows = await db('room_members').select('user_id').where({ room_id: roomId }).whereNot({ role: 'banned' }).orderBy('user_id')
  return rows.map((r) => r.user_id)
}

export async function listMembers(db: Knex, roomId: number, offset: number, count: number) {
  return db('room_members as m')
    .join('users as u', 'u.id', 'm.user_id')
    .select('u.id as uid', 'u.login', 'm.role', db.raw('floor(extract(epoch FROM m.joined_at))::int8 AS joined_at'))
    .where('m.room_id', roomId)
    .orderByRaw("CASE m.role WHEN 'owner' THEN 0 WHEN 'moderator' THEN 1 WHEN 'member' THEN 2 ELSE 3 END, u.id")
    .offset(offset)
    .limit(count)
}

export async function memberInfo(db: Knex, roomId: number, userId: number) {
  return db('room_members as m')
    .join('users as u', 'u.id', 'm.user_id')
    .select('u.id as uid', 'u.login', 'm.role', db.raw('floor(extract(epoch FROM m.joined_at))::int8 AS joined_at'))
    .where({ 'm.room_id': roomId, 'm.user_id': userId })
    .first()
}

const ROOM_VIEW = [
  'r.id as room_id',
  'r.name',
  'r.description',
  'r.type',
  'r.channel',
  'r.member_reactions',
  'r.owner_id as owner_uid',
]

function memberCount(db: Knex) {
  return db.raw("(SELECT count(*) FROM room_members c WHERE c.room_id = r.id AND c.role <> 'banned')::int AS members")
}

export async function roomView(db: Knex, roomId: number) {
  return db('rooms as r').select(...ROOM_VIEW, memberCount(db)).where('r.id', roomId).first()
}

export async function roomsOf(db: Knex, userId: number) {
  return db('rooms as r')
    .join('room_members as m', 'm.room_id', 'r.id')
    .select(...ROOM_VIEW, memberCount(db), 'm.role')
    .where('m.user_id', userId)
    .whereNot('m.role', 'banned')
    .orderBy('r.id')
}

/** Public rooms whose name starts with `prefix`, regardless of case, by name. */
export async function searchPublicRooms(db: Knex, prefix: string, offset: number, count: number) {
  const pattern = prefix.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`) + '%'
  return db('rooms as r')
    .select(...ROOM_VIEW, memberCount(db))
    .where('r.type', 'public')
    .andWhereRaw('lower(r.name) LIKE ?', [pattern])
    .orderByRaw('lower(r.name), r.id')
    .offset(offset)
    .limit(count)
}

/** The room's members (banned ones not) among these logins, any case. */
export async function membersNamed(db: Knex, roomId: number, logins: string[]): Promise<number[]> {
  if (logins.length === 0) return []
  const rows = await db('room_members as m')
    .join('users as u', 'u.id', 'm.user_id')
    .select('u.id')
    .where('m.room_id', roomId)
    .whereNot('m.role', 'banned')
    .whereRaw('lower(u.login) = ANY(?)', [logins.map((login) => login.toLowerCase())])
  return rows.map((row) => row.id)
}
