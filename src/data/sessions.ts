// Data access for the sessions table. Expiry is on the app's clock (times in ms), so
// tests move it instead of waiting.
import type { Knex } from 'knex'

export async function insertSession(db: Knex, userId: number, expiresAtMs: number): Promise<number> {
  const [row] = await db('sessions').insert({ user_id: userId, expires_at: new Date(expiresAtMs) }).returning('id')
  return row.id
}

/** SQL: the `sessions` row `alias` is live, neither revoked nor expired at its `?` (bind `new Date(nowMs)`). */
export const liveSessionSql = (alias: string) => `${alias}.revoked_at IS NULL AND ${alias}.expires_at > ?`

/** Live sessions: neither revoked nor expired at `nowMs`. */
function live(db: Knex, nowMs: number) {
  return db('sessions').whereRaw(liveSessionSql('sessions'), [new Date(nowMs)])
}

/** Of these sessions, those that exist, are not revoked and have not expired: their users and expiries. */
export async function findLiveSessions(db: Knex, sessionIds: number[], nowMs: number): Promise<{ id: number; user_id: number; expires_at: Date }[]> {
  return live(db, nowMs).select('id', 'user_id', 'expires_at').whereIn('id', sessionIds)
}

export async function revokeSession(db: Knex, sessionId: number): Promise<void> {
  await db('sessions').where({ id: sessionId }).whereNull('revoked_at').update({ revoked_at: db.fn.now() })
}

/** Moves a live session's expiry to `expiresAtMs`; false when it is no longer live. */
export async function extendSession(db: Knex, sessionId: number, nowMs: number, expiresAtMs: number): Promise<boolean> {
  const count = await live(db, nowMs).where({ id: sessionId }).update({ expires_at: new Date(expiresAtMs) })
  return count > 0
}

export interface SessionInfo {
  session_key: number
  created_at: number
  expires_at: number
}

export async function listLiveSessions(db: Knex, userId: number, nowMs: number): Promise<SessionInfo[]> {
  return live(db, nowMs)
    .select(
      'id as session_key',
      db.raw('floor(extract(epoch FROM created_at))::int8 AS created_at'),
      db.raw('floor(extract(epoch FROM expires_at))::int8 AS expires_at'),
    )
    .where({ user_id: userId })
    .orderBy('id')
}

/** Revokes the user's live sessions, all or all but one; returns the ids revoked. */
export async function revokeUserSessions(db: Knex, userId: number, nowMs: number, exceptSessionId?: number): Promise<number[]> {
  const query = live(db, nowMs).where({ user_id: userId })
  if (exceptSessionId !== undefined) query.whereNot({ id: exceptSessionId })
  const rows: { id: number }[] = await query.update({ revoked_at: db.fn.now() }).returning('id')
  return rows.map((row) => row.id)
}

/** Revokes one session of the user; false when the user has no such live session. */
export async function revokeUserSession(db: Knex, userId: number, sessionId: number, nowMs: number): Promise<boolean> {
  const count = await live(db, nowMs).where({ id: sessionId, user_id: userId }).update({ revoked_at: db.fn.now() })
  return count > 0
}
