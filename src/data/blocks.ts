// Data access for blocks: one row per (blocker, blocked).
import type { Knex } from 'knex'

/** SQL: neither of the users `a` and `b` (SQL expressions) has blocked the other. */
export const notBlockedSql = (a: string, b: string) =>
  `NOT EXISTS (SELECT 1 FROM blocks bl WHERE (bl.blocker_id = ${a} AND bl.blocked_id = ${b}) OR (bl.blocker_id = ${b} AND bl.blocked_id = ${a}))`

/** Withdraws the contact requests pending between two users, either way (friends stay friends). */
export async function dropPendingRequests(db: Knex, a: number, b: number): Promise<void> {
  await db('contacts')
    .where((q) => q.where({ owner_id: a, other_id: b }).orWhere({ owner_id: b, other_id: a }))
    .whereNot({ status: 1 })
    .delete()
}

/** Blocks; false when already blocked. */
export async function addBlock(db: Knex, blockerId: number, blockedId: number): Promise<boolean> {
  const rows = await db('blocks').insert({ blocker_id: blockerId, blocked_id: blockedId }).onConflict(['blocker_id', 'blocked_id']).ignore().returning('blocked_id')
  return rows.length > 0
}

export async function removeBlock(db: Knex, blockerId: number, blockedId: number): Promise<boolean> {
  return (await db('blocks').where({ blocker_id: blockerId, blocked_id: blockedId }).delete()) > 0
}

export async function hasBlocked(db: Knex, blockerId: number, blockedId: number): Promise<boolean> {
  return (await db('blocks').where({ blocker_id: blockerId, blocked_id: blockedId }).first()) !== undefined
}

/** Whether either user blocked the other. */
export async function blockedEitherWay(db: Knex, a: number, b: number): Promise<boolean> {
  return (await hasBlocked(db, a, b)) || (await hasBlocked(db, b, a))
}

export async function listBlocked(db: Knex, blockerId: number): Promise<{ uid: number; login: string; blocked_at: number }[]> {
  return db('blocks as b')
    .join('users as u', 'u.id', 'b.blocked_id')
    .select('u.id as uid', 'u.login', db.raw('floor(extract(epoch FROM b.created_at))::int8 AS blocked_at'))
    .where('b.blocker_id', blockerId)
    .orderBy('b.created_at', 'desc')
}
