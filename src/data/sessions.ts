// Data access for the sessions table.
import type { Knex } from 'knex'

export async function insertSession(db: Knex, userId: number, ttlSeconds: number): Promise<number> {
  const [row] = await db('sessions')
    .insert({ user_id: userId, expires_at: db.raw("now() + make_interval(secs => ?)", [ttlSeconds]) })
    .returning('id')
  return row.id
}

/** The session's user and expiry, when the session exists, is not revoked and has not expired. */
export async function findLiveSession(db: Knex, sessionId: number): Promise<{ user_id: number; expires_at: Date } | undefined> {
  return db('sessions').select('user_id', 'expires_at').where({ id: sessionId }).whereNull('revoked_at').andWhere('expires_at', '>', db.fn.now()).first()
}

export async function revokeSession(db: Knex, sessionId: number): Promise<void> {
  await db('sessions').where({ id: sessionId }).whereNull('revoked_at').update({ revoked_at: db.fn.now() })
}

/** Moves a live session's expiry to `ttlSeconds` from now; false when it is no longer live. */
export async function extendSession(db: Knex, sessionId: number, ttlSeconds: number): Promise<boolean> {
  const count = await db('sessions')
    .where({ id: sessionId })
    .whereNull('revoked_at')
    .andWhere('expires_at', '>', db.fn.now())
    .update({ expires_at: db.raw('now() + make_interval(secs => ?)', [ttlSeconds]) })
  return count > 0
}

export interface SessionInfo {
  session_key: number
  created_at: number
  expires_at: number
}

export async function listLiveSessions(db: Knex, userId: number): Promise<SessionInfo[]> {
  return db('sessions')
    .select(
      'id as session_key',
      db.raw('floor(extract(epoch FROM created_at))::int8 AS created_at'),
      db.raw('floor(extract(epoch FROM expires_at))::int8 AS expires_at'),
    )
    .where({ user_id: userId })
    .whereNull('revoked_at')
    .andWhere('expires_at', '>', db.fn.now())
    .orderBy('id')
}

/** Revokes the user's live sessions, all or all but one; returns the ids revoked. */
export async function revokeUserSessions(db: Knex, userId: number, exceptSessionId?: number): Promise<number[]> {
  const query = db('sessions').where({ user_id: userId }).whereNull('revoked_at').andWhere('expires_at', '>', db.fn.now())
  if (exceptSessionId !== undefined) query.whereNot({ id: exceptSessionId })
  const rows: { id: number }[] = await query.update({ revoked_at: db.fn.now() }).returning('id')
  return rows.map((row) => row.id)
}

/** Revokes one session of the user; false when the user has no such live session. */
export async function revokeUserSession(db: Knex, userId: number, sessionId: number): Promise<boolean> {
  const count = await db('sessions')
    .where({ id: sessionId, user_id: userId })
    .whereNull('revoked_at')
    .andWhere('expires_at', '>', db.fn.now())
    .update({ revoked_at: db.fn.now() })
  return count > 0
}
