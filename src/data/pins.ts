// Data access for pinned_messages: one row per pinned message; its conversation is the
// message's own.
import type { Knex } from 'knex'

/** Pins the message; false when it was pinned already. */
export async function pinMessage(db: Knex, messageId: number, userId: number): Promise<boolean> {
  const rows = await db('pinned_messages').insert({ message_id: messageId, pinned_by: userId }).onConflict('message_id').ignore().returning('message_id')
  return rows.length > 0
}

/** Unpins the message; false when it was not pinned. */
export async function unpinMessage(db: Knex, messageId: number): Promise<boolean> {
  return (await db('pinned_messages').where({ message_id: messageId }).delete()) > 0
}

/** The pins of a message's conversation (its room, or its two users), deleted messages left out. */
export async function countPins(db: Knex, message: { room_id: number | null; sender_id: number; recipient_id: number | null }): Promise<number> {
  const query = db('pinned_messages as p').join('messages as m', 'm.id', 'p.message_id').whereNull('m.deleted_at').count({ n: '*' })
  if (message.room_id !== null) query.where('m.room_id', message.room_id)
  else query.whereNull('m.room_id').where('m.peer_low', Math.min(message.sender_id, message.recipient_id!)).where('m.peer_high', Math.max(message.sender_id, message.recipient_id!))
  const [row] = await query
  return Number(row.n)
}

export async function isPinned(db: Knex, messageId: number): Promise<boolean> {
  return (await db('pinned_messages').where({ message_id: messageId }).first()) !== undefined
}
