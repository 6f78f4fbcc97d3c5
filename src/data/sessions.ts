// Data access for the sessions table.
import type { Knex } from 'knex'

export async function insertSession(db: Knex, userId: number, ttlSeconds: number): Promise<number> {
  const [row] = await db('sessions')
    .insert({ user_id: userId, expires_at: db.raw("now() + make_interval(secs => ?)", [ttlSeconds]) })
    .returning('id')
  return row.id
}

/** The session's user, when the session exists, is not revoked and has not expired. */
export async function findLiveSessionUser(db: Knex, sessionId: number): Promise<number | undefined> {
  const row = await db('sessions')
    .select('user_id')
    .where({ id: sessionId })
    .whereNull('revoked_at')
    .andWhere('expires_at', '>', db.fn.now())
    .first()
  return row?.user_id
}

export async function revokeSession(db: Knex, sessionId: number): Promise<void> {
  await db('sessions').where({ id: sessionId }).whereNull('revoked_at').update({ revoked_at: db.fn.now() })
}
