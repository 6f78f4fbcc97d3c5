// Rooms: group chats with roles. Every change takes the room's row lock first (then users'
// rows, in id order, when it appends to their logs), and is told to every member.
import type { Knex } from 'knex'
import {
  deleteRoom,
  getRole,
  insertRoom,
  listMembers,
  lockRoom,
  memberIds,
  memberInfo,
  removeMember,
  roomView,
  roomsOf,
  searchPublicRooms,
  setRole,
  updateRoom,
  type Role,
  type RoomRow,
  type RoomType,
} from '../data/rooms.js'
import { findUserById } from '../data/users.js'
import { BadRequest, Forbidden, InvalidState, NotFound } from '../errors.js'
import type { NewEvent } from '../event-log/index.js'
import { hasBlocked } from '../data/blocks.js'
import type { ServiceDeps } from './deps.js'

const RANK: Record<Role, number> = { banned: -1, member: 1, moderator: 2, owner: 3 }

export function isModerator(role: Role | undefined): boolean {
  return role === 'owner' || role === 'moderator'
}

export function createRooms({ db, eventLog }: ServiceDeps) {
  /** Runs `work` with the room locked; 404 when there is no such room. */
  async function inRoom<T>(roomId: number, work: (trx: Knex.Transaction, room: RoomRow) => Promise<T>): Promise<T> {
    return db.transaction(async (trx) => {
      const room = await lockRoom(trx, roomId)
      if (!room) throw new NotFound('No such room')
      return work(trx, room)
    })
  }

  /** Tells every member of the room (and `extra`, e.g. someone just removed) about a change. */
  async function tellMembers(trx: Knex.Transaction, roomId: number, event: NewEvent, extra: number[] = []) {
    await eventLog.append(trx, [...(await memberIds(trx, roomId)), ...extra], event)
  }

  async function requireRole(trx: Knex, roomId: number, userId: number, allowed: (role: Role | undefined) => boolean, why: string): Promise<Role> {
    const role = await getRole(trx, roomId, userId)
    if (role === undefined || role === 'banned') throw new Forbidden('You are not a member of this room')
    if (!allowed(role)) throw new Forbidden(why)
    return role
  }

  /** The actor may act on the target only from a higher rank, and must be a moderator. */
  async function requireAuthorityOver(trx: Knex, roomId: number, actorId: number, targetId: number) {
    if (actorId === targetId) throw new BadRequest('You cannot do this to yourself')
    const actorRole = await requireRole(trx, roomId, actorId, isModerator, 'Only moderators and the owner may do this')
    const targetRole = await getRole(trx, roomId, targetId)
    if (targetRole !== undefined && targetRole !== 'banned' && RANK[targetRole] >= RANK[actorRole]) {
      throw new Forbidden(`A ${actorRole} cannot do this to a ${targetRole}`)
    }
    return targetRole
  }

  async function requireUser(userId: number) {
    const user = await findUserById(db, userId)
    if (!user) throw new NotFound('No such user')
    return user
  }

  return {
    inRoom,
    tellMembers,

    /** Locks the room inside an open transaction; 404 when there is no such room. */
    async inRoomLocked(trx: Knex.Transaction, roomId: number): Promise<RoomRow> {
      const room = await lockRoom(trx, roomId)
      if (!room) throw new NotFound('No such room')
      return room
    },

    async create(ownerId: number, room: { name: string; description?: string; type: RoomType; channel?: boolean; member_reactions?: boolean }) {
      if (!room.channel && room.member_reactions === false) throw new BadRequest('member_reactions applies to channels only')
      const roomId = await db.transaction(async (trx) => {
        const id = await insertRoom(trx, {
          name: room.name,
          description: room.description ?? '',
          type: room.type,
          ownerId,
          channel: room.channel ?? false,
          memberReactions: room.member_reactions ?? true,
        })
        await setRole(trx, id, ownerId, 'owner')
        return id
      })
      return { ...(await roomView(db, roomId)), role: 'owner' as Role }
    },

    async remove(userId: number, roomId: number): Promise<void> {
      await inRoom(roomId, async (trx, room) => {
        await requireRole(trx, roomId, userId, (role) => role === 'owner', 'Only the owner may delete the room')
        await tellMembers(trx, roomId, { type: 'room_deleted', actorId: userId, payload: { room_id: roomId, name: room.name } })
        await deleteRoom(trx, roomId)
      })
    },

    async update(userId: number, roomId: number, changes: { name?: string; description?: string }) {
      await inRoom(roomId, async (trx) => {
        await requireRole(trx, roomId, userId, isModerator, 'Only moderators and the owner may change the room')
        if (changes.name !== undefined) {
          await updateRoom(trx, roomId, { name: changes.name })
          await tellMembers(trx, roomId, { type: 'room_renamed', actorId: userId, payload: { room_id: roomId, name: changes.name } })
        }
        if (changes.description !== undefined) {
          await updateRoom(trx, roomId, { description: changes.description })
          await tellMembers(trx, roomId, { type: 'room_described', actorId: userId, payload: { room_id: roomId, description: changes.description } })
        }
      })
      return roomView(db, roomId)
    },

    async join(userId: number, roomId: number) {
      await inRoom(roomId, async (trx, room) => {
        const role = await getRole(trx, roomId, userId)
        if (role === 'banned') throw new Forbidden('You are banned from this room')
        if (role !== undefined) return // already a member
        if (room.type !== 'public') throw new Forbidden('This room is private: a moderator must invite you')
        await setRole(trx, roomId, userId, 'member')
        await tellMembers(trx, roomId, { type: 'member_joined', actorId: userId, payload: { room_id: roomId, uid: userId } })
      })
      return { ...(await roomView(db, roomId)), role: (await getRole(db, roomId, userId)) as Role }
    },

    async invite(userId: number, roomId: number, inviteeId: number) {
      await requireUser(inviteeId)
      await inRoom(roomId, async (trx) => {
        await requireRole(trx, roomId, userId, isModerator, 'Only moderators and the owner may invite')
        const role = await getRole(trx, roomId, inviteeId)
        if (role === 'banned') throw new Forbidden('This user is banned from the room')
        if (role !== undefined) return
        // Invited by someone they blocked: answered as any invitation, and dropped.
        if (await hasBlocked(trx, inviteeId, userId)) return
        await setRole(trx, roomId, inviteeId, 'member')
        await tellMembers(trx, roomId, { type: 'member_joined', actorId: userId, payload: { room_id: roomId, uid: inviteeId, invited_by: userId } })
      })
    },

    async leave(userId: number, roomId: number): Promise<void> {
      await inRoom(roomId, async (trx) => {
        const role = await requireRole(trx, roomId, userId, () => true, '')
        if (role === 'owner') throw new InvalidState('The owner cannot leave: delete the room instead')
        await removeMember(trx, roomId, userId)
        await tellMembers(trx, roomId, { type: 'member_left', actorId: userId, payload: { room_id: roomId, uid: userId } }, [userId])
      })
    },

    mine(userId: number) {
      return roomsOf(db, userId)
    },

    search(prefix: string, offset: number, count: number) {
      return searchPublicRooms(db, prefix, offset, count)
    },

    async members(userId: number, roomId: number, offset: number, count: number) {
      await requireRole(db, roomId, userId, () => true, '')
      return listMembers(db, roomId, offset, count)
    },

    async member(userId: number, roomId: number, memberId: number) {
      await requireRole(db, roomId, userId, () => true, '')
      const info = await memberInfo(db, roomId, memberId)
      if (!info) throw new NotFound('Not a member of this room')
      return info
    },

    async setRole(userId: number, roomId: number, memberId: number, role: 'moderator' | 'member') {
      await inRoom(roomId, async (trx) => {
        await requireRole(trx, roomId, userId, (r) => r === 'owner', 'Only the owner may change roles')
        const current = await getRole(trx, roomId, memberId)
        if (current !== 'member' && current !== 'moderator') throw new NotFound('Not a member of this room')
        if (current === role) return
        await setRole(trx, roomId, memberId, role)
        await tellMembers(trx, roomId, { type: 'role_changed', actorId: userId, payload: { room_id: roomId, uid: memberId, role } })
      })
    },

    /** Bans a member (or anyone, in advance): they leave, cannot rejoin, read or send. */
    async ban(userId: number, roomId: number, targetId: number) {
      await requireUser(targetId)
      await inRoom(roomId, async (trx) => {
        const targetRole = await requireAuthorityOver(trx, roomId, userId, targetId)
        if (targetRole === 'banned') return
        // Told before the change, so the banned user learns it too; nothing after reaches them.
        await tellMembers(trx, roomId, { type: 'member_banned', actorId: userId, payload: { room_id: roomId, uid: targetId } }, [targetId])
        await setRole(trx, roomId, targetId, 'banned')
      })
    },

    async unban(userId: number, roomId: number, targetId: number) {
      await inRoom(roomId, async (trx) => {
        await requireRole(trx, roomId, userId, isModerator, 'Only moderators and the owner may unban')
        if ((await getRole(trx, roomId, targetId)) !== 'banned') throw new InvalidState('This user is not banned')
        await removeMember(trx, roomId, targetId)
        await tellMembers(trx, roomId, { type: 'member_unbanned', actorId: userId, payload: { room_id: roomId, uid: targetId } }, [targetId])
      })
    },

    async kick(userId: number, roomId: number, targetId: number) {
      await inRoom(roomId, async (trx) => {
        const targetRole = await requireAuthorityOver(trx, roomId, userId, targetId)
        if (targetRole === undefined || targetRole === 'banned') throw new NotFound('Not a member of this room')
        await tellMembers(trx, roomId, { type: 'member_kicked', actorId: userId, payload: { room_id: roomId, uid: targetId } }, [targetId])
        await removeMember(trx, roomId, targetId)
      })
    },

    /** The caller's role, refusing non-members and banned users (to read or send). */
    async requireMember(trx: Knex, roomId: number, userId: number): Promise<Role> {
      return requireRole(trx, roomId, userId, () => true, '')
    },
  }
}

export type Rooms = ReturnType<typeof createRooms>
