// Data access for pending e-mail verification codes: one per user, stored as a hash.
// Times come from the service's clock (milliseconds), so tests can move them.
import type { Knex } from 'knex'

export interface EmailCodeRow {
  code_hash: string
  expires_at: Date
  attempts: number
  sent_at: Date
  sends_in_window: number
  window_started_at: Date
}

export async function findEmailCode(db: Knex, userId: number, lock?: 'update'): Promise<EmailCodeRow | undefined> {
  const query = db('email_codes').select('code_hash', 'expires_at', 'attempts', 'sent_at', 'sends_in_window', 'window_started_at').where({ user_id: userId }).first()
  if (lock === 'update') query.forUpdate()
  return query
}

/** Stores a new code, replacing the previous one (its attempts start again). */
export async function saveEmailCode(
  db: Knex,
  userId: number,
  code: { hash: string; expiresAt: Date; sentAt: Date; sendsInWindow: number; windowStartedAt: Date },
): Promise<void> {
  const row = {
    user_id: userId,
    code_hash: code.hash,
    expires_at: code.expiresAt,
    attempts: 0,
    sent_at: code.sentAt,
    sends_in_window: code.sendsInWindow,
    window_started_at: code.windowStartedAt,
  }
  await db('email_codes').insert(row).onConflict('user_id').merge()
}

export async function countFailedAttempt(db: Knex, userId: number): Promise<void> {
  await db('email_codes').where({ user_id: userId }).increment('attempts', 1)
}

export async function deleteEmailCode(db: Knex, userId: number): Promise<void> {
  await db('email_codes').where({ user_id: userId }).delete()
}
