// The hot path: a direct message without an attachment, sent in ONE statement, committed
// on its own. It does what the transactional path does (src/services/messages.ts
// sendDirect, with appendEvents), in the same order, in one round trip to the database:
//   1. lock both users' rows in id order, and the broadcast lock shared (as appendEvents);
//   2. check the sender is the recipient's friend;
//   3. store the message (ON CONFLICT: a racing retry with the same client_msg_id waits
//      for the first one and stores nothing);
//   4. move both users' dialog entries, append the recipient's log entry at
//      max(log_head + 1, now µs) and queue its wake-up (NOTIFY, delivered at commit).
// Each step reads the previous one's result, which fixes the order PostgreSQL runs them
// in: the locks are held before the message id and the log position are taken.
import type { Knex } from 'knex'
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

interface DirectSendRow {
  status: number | null
  inserted_id: number | null
  inserted_time: number | null
  earlier_id: number | null
  earlier_time: number | null
}

// $1 channel, $2 sender, $3 recipient, $4 text, $5 kind, $6 client_msg_id, $7 ciphertexts.
const DIRECT_SEND_SQL = `WITH locked AS (
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

export async function sendDirectMessage(db: Knex, channel: string, send: DirectSend): Promise<DirectSendResult> {
  const rows = await preparedQuery<DirectSendRow>(db, 'direct_send', DIRECT_SEND_SQL, [
    channel,
    send.senderId,
    send.recipientId,
    send.text,
    send.kind,
    send.clientMsgId ?? null,
    send.ciphertexts ? JSON.stringify(send.ciphertexts) : null,
  ])
  const row = rows[0]
  if (row.earlier_id !== null) return { outcome: 'repeated', id: row.earlier_id, time: row.earlier_time! }
  if (row.status !== 1) return { outcome: 'not_friends' }
  if (row.inserted_id === null) return { outcome: 'raced' }
  return { outcome: 'sent', id: row.inserted_id, time: row.inserted_time! }
}
