// Data access for presence: `users.online` and `users.last_seen_at`. Times come from the
// service's clock (milliseconds), so tests can move them.
import type { Knex } from 'knex'
import { notBlockedSql } from './blocks.js'

const toTimestamp = 'to_timestamp(?::float8 / 1000)'

/**
 * Moves last_seen_at forward for these users (never back); returns the ids among them
 * that are offline. Rows are locked in id order, like every multi-user writer here, so
 * this never deadlocks with a room fan-out.
 */
export async function recordSeen(db: Knex, seen: Map<number, number>): Promise<number[]> {
  if (seen.size === 0) return []
  const { rows } = await db.raw(
    `WITH seen AS (
       SELECT id, to_timestamp(at / 1000) AS at FROM unnest(?::bigint[], ?::float8[]) AS s(id, at)
     ), locked AS (
       SELECT u.id FROM users u JOIN seen USING (id) ORDER BY u.id FOR NO KEY UPDATE OF u
     )
     UPDATE users u SET last_seen_at = GREATEST(u.last_seen_at, seen.at)
       FROM seen JOIN locked USING (id)
      WHERE u.id = seen.id
     RETURNING u.id, u.online`,
    [[...seen.keys()], [...seen.values()]],
  )
  return rows.filter((row: { online: boolean }) => !row.online).map((row: { id: number }) => row.id)
}

/** These users' presence, by id (read under the lock of their logs, see the presence service). */
export async function presenceOfEach(trx: Knex.Transaction, userIds: number[]): Promise<Map<number, { online: boolean; lastSeenMs: number | null }>> {
  const rows: { id: number; online: boolean; last_seen_ms: number | null }[] = await trx('users')
    .select('id', 'online', trx.raw('(extract(epoch FROM last_seen_at) * 1000)::float8 AS last_seen_ms'))
    .whereIn('id', userIds)
  return new Map(rows.map((row) => [row.id, { online: row.online, lastSeenMs: row.last_seen_ms }]))
}

export async function setOnline(trx: Knex.Transaction, userIds: number[], online: boolean): Promise<void> {
  if (userIds.length > 0) await trx('users').whereIn('id', userIds).update({ online })
}

/** Users marked online but not seen since `beforeMs`. */
export async function silentOnlineUsers(db: Knex, beforeMs: number): Promise<number[]> {
  const rows: { id: number }[] = await db('users').select('id').where('online', true).andWhereRaw(`last_seen_at < ${toTimestamp}`, [beforeMs])
  return rows.map((row) => row.id)
}

/** When the user was last seen (ms), or null. */
export async function lastSeenMs(db: Knex, userId: number): Promise<number | null> {
  const row = await db('users').select(db.raw('(extract(epoch FROM last_seen_at) * 1000)::float8 AS ms')).where({ id: userId }).first()
  return row?.ms ?? null
}

export interface PresenceRow {
  uid: number
  login: string
  online: boolean
  last_seen: number | null
}

/** The presence of the user's friends (not of those either side blocked). */
export async function friendsPresence(db: Knex, userId: number): Promise<PresenceRow[]> {
  return db('contacts as c')
    .join('users as u', 'u.id', 'c.other_id')
    .select('u.id as uid', 'u.login', 'u.online', db.raw('floor(extract(epoch FROM u.last_seen_at))::int8 AS last_seen'))
    .where({ 'c.owner_id': userId, 'c.status': 1 })
    .andWhereRaw(notBlockedSql('c.owner_id', 'c.other_id'))
    .orderBy('u.login')
}
