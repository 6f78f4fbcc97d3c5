// The event log's SQL: its rules as fragments, and every statement that reads or writes a
// log assembled from them, so that each rule is written once:
//   - the lock order: users' rows in id order, FOR NO KEY UPDATE, with the broadcast lock
//     taken shared alongside (LOCK_LOGS);
//   - the ordering rule: a log's next position is max(head + 1, now in µs) (NEXT_POSITION);
//   - the wake-up: one NOTIFY naming the users whose logs grew, sent at commit (wake-ups.ts);
//   - the wire shape of a message (messageFields), for history, dialogs and polls alike, and
//     of a log entry (entryColumns), for a read and for what an append hands to the polls.
// The hot paths (a direct send, a log read) run as named prepared statements: planned once
// per connection instead of at every call.
import type { Knex } from 'knex'
import type pg from 'pg'
import { notBlockedSql } from '../data/blocks.js'
import { wakeEveryoneSql, wakeUsersSql } from './wake-ups.js'

/** Now, in microseconds since the epoch: the clock positions follow. */
const NOW_US = '(extract(epoch FROM clock_timestamp()) * 1000000)::int8'

/** The position after `head` for the `n`-th of `count` entries appended together: never before now. */
const nextPosition = (head: string, count = '1', n = count) => `GREATEST(${head} + ${n}, ${NOW_US} + ${n} - 1)`

/**
 * Locks the logs of the users in the array `ids` (their `users` rows, in id order) and
 * takes the broadcast lock shared, so that no append runs while a broadcast is in flight.
 * FOR NO KEY UPDATE: inserting a row that references a user (a message's sender) takes
 * FOR KEY SHARE on that user, which FOR UPDATE would wait for out of order.
 */
const lockLogs = (channel: string, ids: string) =>
  `SELECT id, log_head, pg_advisory_xact_lock_shared(hashtext(${channel})) AS no_broadcast_in_flight
     FROM users WHERE id = ANY(${ids}) ORDER BY id FOR NO KEY UPDATE`


/** Moves each direct dialog in `pairs(owner, peer, msg_id)` to its newest message. */
const upsertDirectDialogs = (pairs: string) =>
  `INSERT INTO direct_dialogs (user_id, peer_id, last_msg_id, last_activity)
   SELECT owner, peer, max(msg_id), now() FROM ${pairs} GROUP BY owner, peer
   ON CONFLICT (user_id, peer_id) DO UPDATE SET last_msg_id = excluded.last_msg_id, last_activity = excluded.last_activity`

const seconds = (column: string) => `floor(extract(epoch FROM ${column}))::int8`

/** A message's file as replies show it, over a messages row `m`. */
const MESSAGE_FILE = `(SELECT json_build_object('file_id', f.id, 'name', f.name, 'size', f.size, 'content_type', f.content_type, 'sha256', f.sha256)
   FROM files f WHERE f.id = m.file_id)`

/** Characters of the replied-to message's text that a reply shows. */
export const REPLY_PREVIEW_CHARS = 100

/** The message a reply answers, over a messages row `m`: who sent it, a preview, or that it is gone. */
const MESSAGE_REPLY_TO = `(SELECT json_build_object('msg_id', r.id, 'sender_uid', r.sender_id, 'sender_login', ru.login,
          'preview', CASE WHEN r.deleted_at IS NULL THEN left(r.text, ${REPLY_PREVIEW_CHARS}) END, 'deleted', r.deleted_at IS NOT NULL)
     FROM messages r JOIN users ru ON ru.id = r.sender_id WHERE r.id = m.reply_to_id)`

/** Who first sent a forwarded message, and when, over a messages row `m`. */
const MESSAGE_FORWARDED_FROM = `(SELECT json_build_object('uid', o.sender_id, 'login', ou.login, 'time', ${'floor(extract(epoch FROM o.created_at))::int8'})
     FROM messages o JOIN users ou ON ou.id = o.sender_id WHERE o.id = m.forwarded_from_id)`

type MessageField = 'msg_id' | 'sender_uid' | 'sender_login' | 'time' | 'text' | 'kind' | 'room_id' | 'to_uid' | 'edited_at' | 'ciphertext' | 'file' | 'reply_to' | 'forwarded_from' | 'mentioned'

/**
 * Fields a statement knows without looking, as constants: its executor then sets up no
 * subquery for them. A direct message mentions no one; a plain one (text only) has no
 * file, reply or forward either.
 */
type KnownFields = Partial<Record<MessageField, string>>
const DIRECT_MESSAGE: KnownFields = { mentioned: 'false' }
const PLAIN_DIRECT_MESSAGE: KnownFields = { ...DIRECT_MESSAGE, file: 'NULL::json', reply_to: 'NULL::json', forwarded_from: 'NULL::json' }

/**
 * A message as every reply shows it (the Message schema), over a messages row `m` and its
 * sender's users row `u`, as `viewer` (a SQL expression) sees it: their own ciphertext only.
 */
const messageFields = (viewer: string): [MessageField, string][] => [
  ['msg_id', 'm.id'],
  ['sender_uid', 'm.sender_id'],
  ['sender_login', 'u.login'],
  ['time', seconds('m.created_at')],
  ['text', 'm.text'],
  ['kind', 'm.kind'],
  ['room_id', 'm.room_id'],
  ['to_uid', 'm.recipient_id'],
  ['edited_at', seconds('m.edited_at')],
  ['ciphertext', `m.ciphertexts ->> (${viewer})::text`],
  ['file', MESSAGE_FILE],
  ['reply_to', MESSAGE_REPLY_TO],
  ['forwarded_from', MESSAGE_FORWARDED_FROM],
  ['mentioned', `(m.room_id IS NOT NULL AND EXISTS (SELECT 1 FROM message_mentions mm WHERE mm.message_id = m.id AND mm.user_id = (${viewer})))`],
]

/** A message's reactions as `viewer` sees them: per emoji, oldest first, counted, and whether `viewer` is among them. */
export const messageReactionsSql = (viewer: string) =>
  `(SELECT COALESCE(json_agg(json_build_object('emoji', r.emoji, 'count', r.count, 'mine', r.mine) ORDER BY r.first, r.emoji), '[]')
      FROM (SELECT emoji, count(*)::int AS count, bool_or(user_id = (${viewer})) AS mine, min(created_at) AS first
              FROM message_reactions WHERE message_id = m.id GROUP BY emoji) r)`

/**
 * How many users other than its sender have read a message (their read marker is at or past
 * it) and show it (read receipts on): in a direct chat 0 or 1, in a room the members' count.
 */
const MESSAGE_READ_BY = `(SELECT count(*)::int FROM conversation_marks k JOIN users ku ON ku.id = k.user_id
     WHERE k.read_through >= m.id AND k.user_id <> m.sender_id AND ku.read_receipts
       AND ((m.room_id IS NOT NULL AND k.room_id = m.room_id)
         OR (m.room_id IS NULL AND k.room_id = 0 AND k.user_id = m.recipient_id AND k.peer_id = m.sender_id)))`

/** The Message schema's fields: what a log entry carries, and what history, search and dialogs add (reactions, read receipts). */
const storedMessageFields = (viewer: string): [string, string][] => [
  ...messageFields(viewer),
  ['reactions', messageReactionsSql(viewer)],
  ['read_by', MESSAGE_READ_BY],
]

/** The message's fields as columns of a select list (the Message schema). */
export const messageColumnsSql = (viewer: string) => storedMessageFields(viewer).map(([name, sql]) => `${sql} AS ${name}`).join(', ')

/** The message as one JSON value (the Message schema). */
export const messageJsonSql = (viewer: string) => `json_build_object(${storedMessageFields(viewer).map(([name, sql]) => `'${name}', ${sql}`).join(', ')})`

/**
 * A log entry as read.ts renders it (LogEntry), over an entry `e` (an events row), its
 * actor's users row `u` and its message `m`, as `viewer` sees it. A message's entry has its
 * sender as actor, so the one users row serves both. An entry leaves the reactions out:
 * they reach polls as `reaction` events after the message's entry.
 */
const entryColumns = (viewer: string, known: KnownFields = {}) =>
  `e.id, e.pos, e.type, e.actor_id, u.login AS actor_login, e.payload, m.deleted_at IS NOT NULL AS deleted, ${messageFields(viewer).map(([name, sql]) => `${known[name] ?? sql} AS ${name}`).join(', ')}`

// --- Appends ------------------------------------------------------------------------------

/**
 * $1 channel; one array per field, an entry per index: $2 user ids (whose logs), $3 types,
 * $4 actors, $5 message ids, $6 payloads (JSON text). A log given several entries gets
 * them at consecutive positions, in array order. Returns each entry as a read renders it,
 * with its log's head before the statement (`prev`): what a held poll needs to take the
 * entries without reading.
 */
export const APPEND_SQL = `WITH locked AS (${lockLogs('$1', '$2::int8[]')}
     ), items AS (
       SELECT * FROM unnest($2::int8[], $3::text[], $4::int8[], $5::int8[], $6::text[])
                WITH ORDINALITY AS item(user_id, type, actor_id, message_id, payload, ord)
        WHERE (SELECT count(*) FROM locked) >= 0 -- always true: takes every lock before the first entry
     ), per_log AS (
       SELECT user_id, count(*) AS n FROM items GROUP BY user_id
     ), head AS (
       UPDATE users u SET log_head = ${nextPosition('u.log_head', 'p.n')}
         FROM per_log p JOIN locked l ON l.id = p.user_id WHERE u.id = p.user_id
       RETURNING u.id, u.log_head, p.n, l.log_head AS prev
     ), appended AS (
       INSERT INTO events (user_id, pos, type, actor_id, message_id, payload)
       SELECT i.user_id, h.log_head - h.n + row_number() OVER (PARTITION BY i.user_id ORDER BY i.ord),
              i.type, i.actor_id, i.message_id, i.payload::jsonb
         FROM items i JOIN head h ON h.id = i.user_id
       RETURNING *
     ), woken AS (
       ${wakeUsersSql('$1', 'appended', 'user_id', 'pos')}
     ), appended_messages AS (
       -- By id, whatever the estimate of the entries: a room's 1,000 entries of one message,
       -- estimated at 5,000 rows, were joined by scanning every message.
       SELECT * FROM messages WHERE id = ANY(ARRAY(SELECT DISTINCT message_id FROM items WHERE message_id IS NOT NULL))
     )
     SELECT e.user_id, h.prev, ${entryColumns('e.user_id')}
       FROM appended e JOIN head h ON h.id = e.user_id
       JOIN users u ON u.id = e.actor_id
       LEFT JOIN appended_messages m ON m.id = e.message_id
      WHERE (SELECT count(*) FROM woken) >= 0 -- always true: runs the NOTIFY
      ORDER BY e.user_id, e.pos`

/** ? channel: the exclusive side of the broadcast lock (see LOCK_LOGS). */
export const LOCK_BROADCASTS_SQL = 'SELECT pg_advisory_xact_lock(hashtext(?))'

/** ? message id, ? channel: a broadcast is one entry of the broadcast log, which every poll reads. */
export const APPEND_BROADCAST_SQL = `WITH appended AS (
       INSERT INTO broadcasts (pos, message_id)
       SELECT ${nextPosition('COALESCE(max(pos), 0)')}, ? FROM broadcasts
       RETURNING pos
     )
     SELECT pos, ${wakeEveryoneSql('?')} FROM appended`

/** ? user: the newest position the user's polls can see, their log's or a broadcast's. */
export const LOG_HEAD_SQL = `SELECT GREATEST(u.log_head, COALESCE((SELECT max(pos) FROM broadcasts WHERE pos > u.created_pos), 0)) AS head
       FROM users u WHERE u.id = ?`

/** ? ids: locks these users' logs without appending (a pair of users deciding together). */
export const LOCK_USERS_SQL = 'SELECT id FROM users WHERE id = ANY(?::int8[]) ORDER BY id FOR NO KEY UPDATE'

/**
 * The contacts row `c` of `sender` for `recipient` (SQL expressions), when neither blocked
 * the other: its status 1 is what lets a direct message through.
 */
const directContact = (c: string, sender: string, recipient: string) =>
  `${c}.owner_id = ${sender} AND ${c}.other_id = ${recipient} AND ${notBlockedSql(sender, recipient)}`

/** A forwarded copy's file: the one the forwarded message carries (which needs no owner). */
const forwardedFile = (forwardedFrom: string, file: string) => `EXISTS (SELECT 1 FROM messages fm WHERE fm.id = ${forwardedFrom} AND fm.file_id = ${file})`

// --- Direct messages: the hot path ----------------------------------------------------------
// Both statements do, for every send: lock every sender's and recipient's log; check the
// sender is the recipient's friend (and neither blocked the other) and, with an attachment, that the file is the sender's
// (marking it attached, which locks its row against the clean-up); look for an earlier
// message with the same client_msg_id; number the messages to store in arrival order and
// store them (a repeat of a client_msg_id within the group is not stored, and ON CONFLICT
// skips one a racing transaction stored first: both answer with the first one's reply);
// move the dialogs; append each recipient's entries at consecutive positions in arrival
// order; and queue one wake-up naming every recipient. The locks are all taken before any
// message id or log position (the group: by an init plan every later step reads through
// `items`; the single send: each step reads the previous one's result).

// Each also returns the recipient's new entry as a read renders it and the log's head
// before it (`prev`), for the held polls (see APPEND_SQL).

// $1 channel, $2 sender, $3 recipient, $4 text, $5 kind, $6 client_msg_id, $7 ciphertexts, $8 file id,
// $9 the message replied to, $10 the message forwarded (whose file, and only that, needs no owner).
export const SINGLE_SEND_SQL = `WITH locked AS (${lockLogs('$1', 'ARRAY[$2::int8, $3::int8]')}
     ), friendship AS (
       SELECT c.status FROM contacts c
        WHERE ${directContact('c', '$2', '$3')} AND (SELECT count(*) FROM locked) = 2
     ), attached AS (
       UPDATE files SET attached_at = COALESCE(attached_at, now())
        WHERE id = $8 AND owner_id = $2 AND EXISTS (SELECT 1 FROM friendship WHERE status = 1)
       RETURNING id
     ), earlier AS (
       SELECT id, created_at FROM messages WHERE sender_id = $2 AND client_msg_id = $6
     ), inserted AS (
       INSERT INTO messages (sender_id, recipient_id, text, kind, client_msg_id, ciphertexts, file_id, reply_to_id, forwarded_from_id)
       SELECT $2, $3, $4, $5, $6, $7::jsonb, $8, $9::int8, $10::int8
         FROM friendship WHERE status = 1 AND NOT EXISTS (SELECT 1 FROM earlier)
          AND ($8::int8 IS NULL OR ${forwardedFile('$10::int8', '$8::int8')} OR EXISTS (SELECT 1 FROM attached))
       ON CONFLICT (sender_id, client_msg_id) DO NOTHING
       RETURNING *
     ), dialogs AS (
       ${upsertDirectDialogs('(SELECT pair.owner, pair.peer, inserted.id AS msg_id FROM inserted, (VALUES ($2::int8, $3::int8), ($3::int8, $2::int8)) AS pair(owner, peer)) s')}
     ), head AS (
       UPDATE users u SET log_head = ${nextPosition('u.log_head')}
        WHERE u.id = $3 AND EXISTS (SELECT 1 FROM inserted)
       RETURNING u.id, u.log_head
     ), appended AS (
       INSERT INTO events (user_id, pos, type, actor_id, message_id)
       SELECT head.id, head.log_head, 'message', $2, inserted.id FROM head, inserted
       RETURNING *
     ), woken AS (
       ${wakeUsersSql('$1', 'appended', 'user_id', 'pos')}
     )
     SELECT (SELECT status FROM friendship) AS status,
            ($8::int8 IS NULL OR ${forwardedFile('$10::int8', '$8::int8')} OR EXISTS (SELECT 1 FROM attached)) AS file_ok,
            (SELECT count(*) FROM woken) AS woken,
            i.id AS inserted_id, ${seconds('i.created_at')} AS inserted_time,
            er.id AS earlier_id, ${seconds('er.created_at')} AS earlier_time,
            (SELECT log_head FROM locked WHERE id = $3) AS prev, ${entryColumns('$3::int8', DIRECT_MESSAGE)}
       FROM (SELECT 1) one
       LEFT JOIN inserted i ON true
       LEFT JOIN earlier er ON true
       LEFT JOIN appended e ON true
       LEFT JOIN inserted m ON true
       LEFT JOIN users u ON u.id = e.actor_id`

/**
 * A send's fields in parameter order from $2, for the single send (a value each) and the
 * group (an array each); a plain group (text only) takes the first six.
 */
const SEND_FIELDS = [
  ['sender_id', 'int8'],
  ['recipient_id', 'int8'],
  ['text', 'text'],
  ['kind', 'text'],
  ['client_msg_id', 'text'],
  ['ciphertexts', 'text'],
  ['file_id', 'int8'],
  ['reply_to_id', 'int8'],
  ['forwarded_from_id', 'int8'],
] as const
const PLAIN_SEND_FIELD_COUNT = 6
export type SendField = (typeof SEND_FIELDS)[number][0]

/** The fields a statement takes, in parameter order from $2: every one, or a plain group's. */
export const EVERY_SEND_FIELD: readonly SendField[] = SEND_FIELDS.map(([name]) => name)
export const PLAIN_SEND_FIELDS: readonly SendField[] = EVERY_SEND_FIELD.slice(0, PLAIN_SEND_FIELD_COUNT)

/**
 * The group statement: $1 channel, then one array per field of SEND_FIELDS, a send per
 * index. A plain group's statement leaves out what only a file, a reply or a forward needs
 * (marking the file attached, checking it, showing them): a smaller plan, set up at every
 * execution (a group of 8, timed alone: 1.12 -> 0.98 ms; 16 senders in the bench: +2 to 5 %).
 */
function groupSendSql(plain: boolean): string {
  const fields = plain ? SEND_FIELDS.slice(0, PLAIN_SEND_FIELD_COUNT) : SEND_FIELDS
  const names = fields.map(([name]) => name)
  const arrays = fields.map(([, type], i) => `$${i + 2}::${type}[]`)
  const fileOk = plain ? 'true' : `(i.file_id IS NULL OR ${forwardedFile('i.forwarded_from_id', 'i.file_id')} OR i.file_id IN (SELECT id FROM attached))`
  const attached = plain
    ? ''
    : `), attached AS (
       UPDATE files f SET attached_at = COALESCE(f.attached_at, now())
         FROM items i JOIN contacts c ON ${directContact('c', 'i.sender_id', 'i.recipient_id')} AND c.status = 1
        WHERE f.id = i.file_id AND f.owner_id = i.sender_id
       RETURNING f.id
     `
  return `WITH locked AS (${lockLogs('$1', '$2::int8[] || $3::int8[]')}
     ), items AS (
       SELECT * FROM unnest(${arrays.join(', ')})
                WITH ORDINALITY AS item(${names.join(', ')}, ord)
        WHERE (SELECT count(*) FROM locked) >= 0 -- always true: takes every lock before the first item
     ${attached}), checked AS (
       SELECT i.*, c.status, er.id AS earlier_id, er.created_at AS earlier_at, ${fileOk} AS file_ok,
              row_number() OVER (PARTITION BY i.sender_id, i.client_msg_id ORDER BY i.ord) AS copy
         FROM items i
         LEFT JOIN contacts c ON ${directContact('c', 'i.sender_id', 'i.recipient_id')}
         LEFT JOIN messages er ON er.sender_id = i.sender_id AND er.client_msg_id = i.client_msg_id
     ), numbered AS (
       SELECT ord, nextval('messages_id_seq') AS id
         FROM (SELECT ord FROM checked
                WHERE status = 1 AND file_ok AND earlier_id IS NULL AND (client_msg_id IS NULL OR copy = 1)
                ORDER BY ord) to_store
     ), inserted AS (
       INSERT INTO messages (id, ${names.join(', ')})
       SELECT n.id, ${names.map((name) => (name === 'ciphertexts' ? 'c.ciphertexts::jsonb' : `c.${name}`)).join(', ')}
         FROM numbered n JOIN checked c USING (ord)
       ON CONFLICT (sender_id, client_msg_id) DO NOTHING
       RETURNING *
     ), sent AS (
       SELECT n.ord, i.id, i.sender_id, i.recipient_id, i.created_at FROM inserted i JOIN numbered n USING (id)
     ), dialogs AS (
       ${upsertDirectDialogs('(SELECT pair.owner, pair.peer, s.id AS msg_id FROM sent s, LATERAL (VALUES (s.sender_id, s.recipient_id), (s.recipient_id, s.sender_id)) AS pair(owner, peer)) s')}
     ), per_recipient AS (
       SELECT recipient_id, count(*) AS n FROM sent GROUP BY recipient_id
     ), head AS (
       UPDATE users u SET log_head = ${nextPosition('u.log_head', 'r.n')}
         FROM per_recipient r WHERE u.id = r.recipient_id
       RETURNING u.id, u.log_head, r.n
     ), appended AS (
       INSERT INTO events (user_id, pos, type, actor_id, message_id)
       SELECT s.recipient_id, h.log_head - h.n + row_number() OVER (PARTITION BY s.recipient_id ORDER BY s.ord),
              'message', s.sender_id, s.id
         FROM sent s JOIN head h ON h.id = s.recipient_id
       RETURNING *
     ), woken AS (
       ${wakeUsersSql('$1', 'appended', 'user_id', 'pos')}
     )
     SELECT c.ord, c.status, c.file_ok, s.id AS inserted_id, ${seconds('s.created_at')} AS inserted_time,
            c.earlier_id, ${seconds('c.earlier_at')} AS earlier_time,
            l.log_head AS prev, ${entryColumns('c.recipient_id', plain ? PLAIN_DIRECT_MESSAGE : DIRECT_MESSAGE)}
       FROM checked c
       LEFT JOIN sent s USING (ord)
       LEFT JOIN appended e ON e.message_id = s.id
       LEFT JOIN inserted m ON m.id = s.id
       LEFT JOIN users u ON u.id = e.actor_id
       LEFT JOIN locked l ON l.id = c.recipient_id
      WHERE (SELECT count(*) FROM woken) >= 0 -- always true: runs the NOTIFY
      ORDER BY c.ord`
}

export const GROUP_SEND_SQL = groupSendSql(false)
export const PLAIN_GROUP_SEND_SQL = groupSendSql(true)

// --- Reads ----------------------------------------------------------------------------------

/**
 * One user's log read: their entries after `after` merged with the broadcasts made since
 * the account exists, oldest first, at most `limit`, each with its message as the user
 * sees it. The arguments are SQL expressions: parameters for one user, a lateral row's
 * columns for many.
 */
function logReadSql(user: string, after: string, limit: string): string {
  return `SELECT ${entryColumns(user)}
       FROM ((SELECT e.id, e.pos, e.type, e.actor_id, e.message_id, e.payload
                FROM events e WHERE e.user_id = ${user} AND e.pos > ${after} ORDER BY e.pos LIMIT ${limit})
             UNION ALL
             (SELECT b.message_id, b.pos, 'message', m.sender_id, b.message_id, NULL
                FROM broadcasts b JOIN messages m ON m.id = b.message_id
               WHERE b.pos > GREATEST(${after}::int8, (SELECT created_pos FROM users WHERE id = ${user}))
               ORDER BY b.pos LIMIT ${limit})) e
       JOIN users u ON u.id = e.actor_id
       LEFT JOIN messages m ON m.id = e.message_id
      ORDER BY e.pos
      LIMIT ${limit}`
}

// $1 user, $2 after, $3 limit.
export const READ_LOG_SQL = logReadSql('$1::int8', '$2::int8', '$3::int8')

// $1 users, $2 their `after`s, $3 limit (per user).
export const READ_LOGS_SQL = `SELECT q.ord, r.*
       FROM unnest($1::int8[], $2::int8[]) WITH ORDINALITY AS q(user_id, after, ord)
       CROSS JOIN LATERAL (${logReadSql('q.user_id', 'q.after', '$3::int8')}) r
      ORDER BY q.ord, r.pos`

/** Runs a named prepared statement on a connection of knex's pool (with its search_path). */
export async function preparedQuery<Row>(db: Knex, name: string, text: string, values: unknown[]): Promise<Row[]> {
  const connection: pg.Client = await db.client.acquireConnection()
  try {
    const result = await connection.query<Row & pg.QueryResultRow>({ name, text, values })
    return result.rows
  } finally {
    await db.client.releaseConnection(connection)
  }
}

