// The event log: one append-only, ordered log per user.
//
// Ordering: an append takes the row lock of the user's `users` row and sets the new
// position to max(previous + 1, now in microseconds). The lock is held until commit, so
// two appends to the same log commit in position order, and a reader that has seen
// position p can never later find a newly committed event below p. (A global sequence
// read with `id > cursor` lacks this: a lower id can commit after a higher one was read.)
import type { Knex } from 'knex'

export interface NewEvent {
  userId: number
  type: string
  actorId: number
  messageId?: number
  payload?: Record<string, unknown>
}

export interface LogEntry {
  id: number
  pos: number
  type: string
  actor_id: number
  actor_login: string
  message_id: number | null
  payload: Record<string, unknown> | null
  text: string | null
  message_time: number | null
}

/** The LISTEN/NOTIFY channel of a schema's event log. */
export function eventChannel(schema: string): string {
  return `${schema}_events`
}

/** Appends one event and queues its wake-up (NOTIFY is delivered at commit). One round trip. */
export async function appendEvent(trx: Knex.Transaction, channel: string, event: NewEvent): Promise<{ id: number; pos: number }> {
  const { rows } = await trx.raw(
    `WITH head AS (
       UPDATE users
          SET log_head = GREATEST(log_head + 1, (extract(epoch FROM clock_timestamp()) * 1000000)::int8)
        WHERE id = :userId
        RETURNING id, log_head
     ), appended AS (
       INSERT INTO events (user_id, pos, type, actor_id, message_id, payload)
       SELECT id, log_head, :type, :actorId, :messageId, :payload FROM head
       RETURNING id, pos
     )
     SELECT appended.id, appended.pos, pg_notify(:channel, 'u:' || :userId) FROM appended`,
    {
      userId: event.userId,
      type: event.type,
      actorId: event.actorId,
      messageId: event.messageId ?? null,
      payload: event.payload ? JSON.stringify(event.payload) : null,
      channel,
    },
  )
  return rows[0]
}

/** The entries of a user's log after `after`, oldest first. */
export async function readLog(db: Knex, userId: number, after: number, limit: number): Promise<LogEntry[]> {
  const { rows } = await db.raw(
    `SELECT e.id, e.pos, e.type, e.actor_id, a.login AS actor_login, e.message_id, e.payload,
            m.text, floor(extract(epoch FROM m.created_at))::int8 AS message_time
       FROM events e
       JOIN users a ON a.id = e.actor_id
       LEFT JOIN messages m ON m.id = e.message_id
      WHERE e.user_id = ? AND e.pos > ?
      ORDER BY e.pos
      LIMIT ?`,
    [userId, after, limit],
  )
  return rows
}

export async function notifySessionRevoked(db: Knex, channel: string, sessionId: number): Promise<void> {
  await db.raw('SELECT pg_notify(?, ?)', [channel, `r:${sessionId}`])
}
