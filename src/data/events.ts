// The event log: one append-only, ordered log per user, plus one broadcast log that every
// user's poll reads too.
//
// Ordering: an append takes the row lock of the user's `users` row and sets the new
// position to max(previous + 1, now in microseconds). The lock is held until commit, so
// two appends to the same log commit in position order, and a reader that has seen
// position p can never later find a newly committed event below p. (A global sequence
// read with `id > cursor` lacks this: a lower id can commit after a higher one was read.)
//
// Broadcasts: a broadcast is one row, whatever the number of users. It is written under
// an exclusive advisory lock, and every append takes the same lock shared, so no append
// runs while a broadcast is in flight: appends before it have smaller positions (it waits
// for them), appends after it larger ones (they read the clock once it committed). A poll
// reads its log and the broadcast log in one statement, one snapshot, so its cursor never
// passes a broadcast that commits later.
import type { Knex } from 'knex'
import type { MessageKind } from './messages.js'
import { MESSAGE_FILE_SQL, type MessageFile } from './files.js'
import { preparedQuery } from './prepared.js'

export interface NewEvent {
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
  room_id: number | null
  kind: MessageKind | null
  edited_at: number | null
  deleted: boolean | null
  ciphertext: string | null
  file: MessageFile | null
}

/** The LISTEN/NOTIFY channel of a schema's event log. */
export function eventChannel(schema: string): string {
  return `${schema}_events`
}

// A NOTIFY payload holds at most 8000 bytes: wake-ups name users (or sessions) in chunks (400 ids of
// up to 16 digits and a comma fit).
export const IDS_PER_NOTIFY = 400

/**
 * Appends one event to the log of each of `userIds` (a direct message: one user; a room
 * message: every member) in one statement, and queues their wake-ups (NOTIFY is delivered
 * at commit). The users' rows are locked in id order, so concurrent fan-outs never deadlock;
 * the lock is FOR NO KEY UPDATE because inserting any row that references a user (a
 * message's sender, say) takes FOR KEY SHARE on that user, which FOR UPDATE would wait for
 * out of order.
 */
export async function appendEvents(trx: Knex.Transaction, channel: string, userIds: number[], event: NewEvent): Promise<void> {
  if (userIds.length === 0) return
  await trx.raw(
    `WITH targets AS (
       SELECT id, pg_advisory_xact_lock_shared(hashtext(:channel)) AS no_broadcast_in_flight
         FROM users WHERE id = ANY(:userIds::bigint[]) ORDER BY id FOR NO KEY UPDATE
     ), head AS (
       UPDATE users u
          SET log_head = GREATEST(u.log_head + 1, (extract(epoch FROM clock_timestamp()) * 1000000)::int8)
         FROM targets WHERE u.id = targets.id
        RETURNING u.id, u.log_head
     ), appended AS (
       INSERT INTO events (user_id, pos, type, actor_id, message_id, payload)
       SELECT id, log_head, :type, :actorId, :messageId, :payload FROM head
       RETURNING user_id
     )
     SELECT pg_notify(:channel, 'u:' || string_agg(user_id::text, ','))
       FROM (SELECT user_id, row_number() OVER () / ${IDS_PER_NOTIFY} AS chunk FROM appended) numbered
      GROUP BY chunk`,
    {
      userIds,
      type: event.type,
      actorId: event.actorId,
      messageId: event.messageId ?? null,
      payload: event.payload ? JSON.stringify(event.payload) : null,
      channel,
    },
  )
}

/**
 * Takes the exclusive broadcast lock (see the top of this file) for the transaction. Take
 * it before storing the broadcast's message, so that broadcasts' msg ids grow in their
 * log order too.
 */
export async function lockBroadcasts(trx: Knex.Transaction, channel: string): Promise<void> {
  await trx.raw('SELECT pg_advisory_xact_lock(hashtext(?))', [channel])
}

/** Appends a broadcast to the broadcast log and wakes every poll; needs lockBroadcasts first. */
export async function appendBroadcast(trx: Knex.Transaction, channel: string, messageId: number): Promise<number> {
  const { rows } = await trx.raw(
    `INSERT INTO broadcasts (pos, message_id)
     SELECT GREATEST(COALESCE(max(pos), 0) + 1, (extract(epoch FROM clock_timestamp()) * 1000000)::int8), ? FROM broadcasts
     RETURNING pos`,
    [messageId],
  )
  await trx.raw('SELECT pg_notify(?, ?)', [channel, 'a:'])
  return rows[0].pos
}

/**
 * One user's log read: their entries after `after` merged with the broadcasts made since
 * the account exists, oldest first, at most `limit`. The arguments are SQL expressions:
 * parameters for one user, a lateral row's columns for many.
 */
function logReadSql(user: string, after: string, limit: string): string {
  return `SELECT e.id, e.pos, e.type, e.actor_id, a.login AS actor_login, e.message_id, e.payload,
            m.text, floor(extract(epoch FROM m.created_at))::int8 AS message_time, m.room_id, m.kind,
            floor(extract(epoch FROM m.edited_at))::int8 AS edited_at, m.deleted_at IS NOT NULL AS deleted,
            m.ciphertexts ->> (${user})::text AS ciphertext, ${MESSAGE_FILE_SQL} AS file
       FROM ((SELECT e.id, e.pos, e.type, e.actor_id, e.message_id, e.payload
                FROM events e WHERE e.user_id = ${user} AND e.pos > ${after} ORDER BY e.pos LIMIT ${limit})
             UNION ALL
             (SELECT b.message_id, b.pos, 'message', m.sender_id, b.message_id, NULL
                FROM broadcasts b JOIN messages m ON m.id = b.message_id
               WHERE b.pos > GREATEST(${after}::int8, (SELECT created_pos FROM users WHERE id = ${user}))
               ORDER BY b.pos LIMIT ${limit})) e
       JOIN users a ON a.id = e.actor_id
       LEFT JOIN messages m ON m.id = e.message_id
      ORDER BY e.pos
      LIMIT ${limit}`
}

// $1 user, $2 after, $3 limit.
const READ_LOG_SQL = logReadSql('$1::int8', '$2::int8', '$3::int8')

// $1 users, $2 their `after`s, $3 limit (per user).
const READ_LOGS_SQL = `SELECT q.ord, r.*
       FROM unnest($1::int8[], $2::int8[]) WITH ORDINALITY AS q(user_id, after, ord)
       CROSS JOIN LATERAL (${logReadSql('q.user_id', 'q.after', '$3::int8')}) r
      ORDER BY q.ord, r.pos`

export interface LogRead {
  userId: number
  after: number
}

/** A user's entries after `after`, oldest first (see logReadSql), in one statement (one snapshot). */
export async function readLog(db: Knex, userId: number, after: number, limit: number): Promise<LogEntry[]> {
  return preparedQuery<LogEntry>(db, 'read_log', READ_LOG_SQL, [userId, after, limit])
}

/**
 * Several reads in one statement (concurrent polls woken by one commit): the entries of
 * each, in order. A lone read uses readLog's simpler statement.
 */
export async function readLogs(db: Knex, reads: LogRead[], limit: number): Promise<LogEntry[][]> {
  if (reads.length === 1) return [await readLog(db, reads[0].userId, reads[0].after, limit)]
  const rows = await preparedQuery<LogEntry & { ord: number }>(db, 'read_logs', READ_LOGS_SQL, [
    reads.map((read) => read.userId),
    reads.map((read) => read.after),
    limit,
  ])
  const entries: LogEntry[][] = reads.map(() => [])
  for (const { ord, ...entry } of rows) entries[ord - 1].push(entry)
  return entries
}

/** Ends the held polls of these sessions on every process (delivered at commit). */
export async function notifySessionsRevoked(db: Knex, channel: string, sessionIds: number[]): Promise<void> {
  for (let i = 0; i < sessionIds.length; i += IDS_PER_NOTIFY) {
    await db.raw('SELECT pg_notify(?, ?)', [channel, `r:${sessionIds.slice(i, i + IDS_PER_NOTIFY).join(',')}`])
  }
}
