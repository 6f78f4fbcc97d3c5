// Data access for the messages table.
import type { Knex } from 'knex'

export interface StoredMessage {
  id: number
  time: number
}


/**
 * Stores a message. With a client_msg_id already used by this sender, stores nothing and
 * returns undefined: ON CONFLICT waits for a racing insert of the same id to commit.
 */
export async function insertMessage(
  db: Knex,
  message: { senderId: number; recipientId: number; text: string; clientMsgId?: string },
): Promise<StoredMessage | undefined> {
  const rows = await db('messages')
    .insert({
      sender_id: message.senderId,
      recipient_id: message.recipientId,
      text: message.text,
      client_msg_id: message.clientMsgId ?? null,
    })
    .onConflict(['sender_id', 'client_msg_id'])
    .ignore()
    .returning(['id', db.raw('floor(extract(epoch from created_at))::int8 AS time')])
  return rows[0]
}

export async function findMessageByClientId(db: Knex, senderId: number, clientMsgId: string): Promise<StoredMessage | undefined> {
  return db('messages')
    .select('id', db.raw('floor(extract(epoch from created_at))::int8 AS time'))
    .where({ sender_id: senderId, client_msg_id: clientMsgId })
    .first()
}
