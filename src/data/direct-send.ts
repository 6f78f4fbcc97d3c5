// The hot path: direct messages without an attachment, in ONE statement committed on its
// own. src/batcher.ts (through src/services/messages.ts) gathers concurrent sends, and
// a group is written by the batch statement below; a lone send (light load) by the
// single-send statement, the same steps for one message, which runs in about 0.3 ms less.
// Both do what the transactional path does (src/services/messages.ts sendDirect, with
// appendEvents), in the same order, for every send:
//   1. lock every sender's and recipient's `users` row in id order, and the broadcast lock
//      shared (as appendEvents);
//   2. check each sender is their recipient's friend, and look for an earlier message
//      with the same client_msg_id;
//   3. number the messages to store in batch order, and store them; a repeat of a
//      client_msg_id within the batch is not stored, and ON CONFLICT skips one that a
//      racing transaction stored first: both read the first one's reply afterwards;
//   4. move the dialog entries (one per pair and direction: the batch's newest message),
//      append each recipient's entries at consecutive positions from
//      max(log_head + 1, now µs), in batch order, and queue one wake-up (NOTIFY,
//      delivered at commit) naming every recipient.
// The locks are taken first (the batch: by an init plan that every later step reads
// through `items`; the single send: each step reads the previous one's result), so they
// are all held before any message id or log position is taken. A change to the log's
// ordering rule (src/data/events.ts) must be made in both statements.
import type { Knex } from 'knex'
import { IDS_PER_NOTIFY } from './events.js'
import { preparedQuery } from './prepared.js'

export interface DirectSend {
  senderId: number
  recipientId: number
  text: string
  kind: 'text' | 'sticker'
  clientMsgId?: string
  ciphertexts?: Record<string, string>
}

export type DirectSendResult =
  | { outcome: 'sent' | 'repeated'; id: number; time: number }
  | { outcome: 'not_friends' }
  /** Lost a race with a retry of the same client_msg_id: read the first one's reply. */
  | { outcome: 'raced' }

/** At most this many sends per statement: its one NOTIFY names every recipient. */
export const MAX_DIRECT_SEND_BATCH = IDS_PER_NOTIFY

interface DirectSendRow {
  status: number | null
  inserted_id: number | null
  inserted_time: number | null
  earlier_id: number | null
  earlier_time: number | null
}

// $1 channel, $2 sender, $3 recipient, $4 text, $5 kind, $6 client_msg_id, $7 ciphertexts.
const SINGLE_SEND_SQL = `WITH locked AS (
       SELECT id, pg_advisory_xact_lock_shared(hashtext($1)) AS no_broadcast_in_flight
         FROM users WHERE id IN ($2, $3) ORDER BY id FOR NO KEY UPDATE
     ), friendship AS (
       SELECT status FROM contacts
        WHERE owner_id = $2 AND other_id = $3 AND (SELECT count(*) FROM locked) = 2
     ), earlier AS (
       SELECT id, created_at FROM messages WHERE sender_id = $2 AND client_msg_id = $6
     ), inserted AS (
       INSERT INTO messages (sender_id, recipient_id, text, kind, client_msg_id, ciphertexts)
       SELECT $2, $3, $4, $5, $6, $7::jsonb
         FROM friendship WHERE status = 1 AND NOT EXISTS (SELECT 1 FROM earlier)
       ON CONFLICT (sender_id, client_msg_id) DO NOTHING
       RETURNING id, created_at
     ), dialogs AS (
       INSERT INTO direct_dialogs (user_id, peer_id, last_msg_id, last_activity)
       SELECT pair.owner, pair.peer, inserted.id, now()
         FROM inserted, (VALUES ($2::int8, $3::int8), ($3::int8, $2::int8)) AS pair(owner, peer)
       ON CONFLICT (user_id, peer_id) DO UPDATE SET last_msg_id = excluded.last_msg_id, last_activity = excluded.last_activity
     ), head AS (
       UPDATE users u SET log_head = GREATEST(u.log_head + 1, (extract(epoch FROM clock_timestamp()) * 1000000)::int8)
        WHERE u.id = $3 AND EXISTS (SELECT 1 FROM inserted)
       RETURNING u.id, u.log_head
     ), appended AS (
       INSERT INTO events (user_id, pos, type, actor_id, message_id)
       SELECT head.id, head.log_head, 'message', $2, inserted.id FROM head, inserted
       RETURNING user_id
     ), woken AS (
       SELECT pg_notify($1, 'u:' || user_id) FROM appended
     )
     SELECT (SELECT status FROM friendship) AS status,
            (SELECT count(*) FROM woken) AS woken,
            i.id AS inserted_id, floor(extract(epoch FROM i.created_at))::int8 AS inserted_time,
            e.id AS earlier_id, floor(extract(epoch FROM e.created_at))::int8 AS earlier_time
       FROM (SELECT 1) one LEFT JOIN inserted i ON true LEFT JOIN earlier e ON true`

// $1 channel; one array per field, a send per index: $2 senders, $3 recipients, $4 texts,
// $5 kinds, $6 client_msg_ids, $7 ciphertexts (JSON text).
const BATCH_SEND_SQL = `WITH locked AS (
       SELECT id, pg_advisory_xact_lock_shared(hashtext($1)) AS no_broadcast_in_flight
         FROM users WHERE id = ANY($2::int8[] || $3::int8[]) ORDER BY id FOR NO KEY UPDATE
     ), items AS (
       SELECT * FROM unnest($2::int8[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[])
                WITH ORDINALITY AS item(sender_id, recipient_id, text, kind, client_msg_id, ciphertexts, ord)
        WHERE (SELECT count(*) FROM locked) >= 0 -- always true: takes every lock before the first item
     ), checked AS (
       SELECT i.*, c.status, e.id AS earlier_id, e.created_at AS earlier_at,
              row_number() OVER (PARTITION BY i.sender_id, i.client_msg_id ORDER BY i.ord) AS copy
         FROM items i
         LEFT JOIN contacts c ON c.owner_id = i.sender_id AND c.other_id = i.recipient_id
         LEFT JOIN messages e ON e.sender_id = i.sender_id AND e.client_msg_id = i.client_msg_id
     ), numbered AS (
       SELECT ord, nextval('messages_id_seq') AS id
         FROM (SELECT ord FROM checked
                WHERE status = 1 AND earlier_id IS NULL AND (client_msg_id IS NULL OR copy = 1)
                ORDER BY ord) to_store
     ), inserted AS (
       INSERT INTO messages (id, sender_id, recipient_id, text, kind, client_msg_id, ciphertexts)
       SELECT n.id, c.sender_id, c.recipient_id, c.text, c.kind, c.client_msg_id, c.ciphertexts::jsonb
         FROM numbered n JOIN checked c USING (ord)
       ON CONFLICT (sender_id, client_msg_id) DO NOTHING
       RETURNING id, sender_id, recipient_id, created_at
     ), sent AS (
       SELECT n.ord, i.* FROM inserted i JOIN numbered n USING (id)
     ), dialogs AS (
       INSERT INTO direct_dialogs (user_id, peer_id, last_msg_id, last_activity)
       SELECT pair.owner, pair.peer, max(s.id), now()
         FROM sent s, LATERAL (VALUES (s.sender_id, s.recipient_id), (s.recipient_id, s.sender_id)) AS pair(owner, peer)
        GROUP BY pair.owner, pair.peer
       ON CONFLICT (user_id, peer_id) DO UPDATE SET last_msg_id = excluded.last_msg_id, last_activity = excluded.last_activity
     ), per_recipient AS (
       SELECT recipient_id, count(*) AS n FROM sent GROUP BY recipient_id
     ), head AS (
       UPDATE users u
          SET log_head = GREATEST(u.log_head + r.n, (extract(epoch FROM clock_timestamp()) * 1000000)::int8 + r.n - 1)
         FROM per_recipient r WHERE u.id = r.recipient_id
       RETURNING u.id, u.log_head, r.n
     ), appended AS (
       INSERT INTO events (user_id, pos, type, actor_id, message_id)
       SELECT s.recipient_id, h.log_head - h.n + row_number() OVER (PARTITION BY s.recipient_id ORDER BY s.ord),
              'message', s.sender_id, s.id
         FROM sent s JOIN head h ON h.id = s.recipient_id
       RETURNING user_id
     ), woken AS (
       SELECT pg_notify($1, 'u:' || string_agg(DISTINCT user_id::text, ',')) FROM appended HAVING count(*) > 0
     )
     SELECT c.ord, c.status, s.id AS inserted_id, floor(extract(epoch FROM s.created_at))::int8 AS inserted_time,
            c.earlier_id, floor(extract(epoch FROM c.earlier_at))::int8 AS earlier_time
       FROM checked c LEFT JOIN sent s USING (ord)
      WHERE (SELECT count(*) FROM woken) >= 0 -- always true: runs the NOTIFY
      ORDER BY c.ord`

function resultOf(row: DirectSendRow): DirectSendResult {
  if (row.earlier_id !== null) return { outcome: 'repeated', id: row.earlier_id, time: row.earlier_time! }
  if (row.status !== 1) return { outcome: 'not_friends' }
  if (row.inserted_id === null) return { outcome: 'raced' }
  return { outcome: 'sent', id: row.inserted_id, time: row.inserted_time! }
}

/** Stores and delivers `sends` (at most MAX_DIRECT_SEND_BATCH) in one statement; a result per send, in order. */
export async function sendDirectMessages(db: Knex, channel: string, sends: DirectSend[]): Promise<DirectSendResult[]> {
  if (sends.length > MAX_DIRECT_SEND_BATCH) throw new RangeError(`At most ${MAX_DIRECT_SEND_BATCH} sends per statement`)
  if (sends.length === 0) return []
  const ciphertexts = (send: DirectSend) => (send.ciphertexts ? JSON.stringify(send.ciphertexts) : null)
  if (sends.length === 1) {
    const [send] = sends
    const rows = await preparedQuery<DirectSendRow>(db, 'direct_send', SINGLE_SEND_SQL, [
      channel,
      send.senderId,
      send.recipientId,
      send.text,
      send.kind,
      send.clientMsgId ?? null,
      ciphertexts(send),
    ])
    return [resultOf(rows[0])]
  }
  const rows = await preparedQuery<DirectSendRow>(db, 'direct_send_batch', BATCH_SEND_SQL, [
    channel,
    sends.map((s) => s.senderId),
    sends.map((s) => s.recipientId),
    sends.map((s) => s.text),
    sends.map((s) => s.kind),
    sends.map((s) => s.clientMsgId ?? null),
    sends.map(ciphertexts),
  ])
  return rows.map(resultOf)
}
