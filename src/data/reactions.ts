// Data access for message_reactions: at most one row per (message, emoji, user).
import type { Knex } from 'knex'
import { messageReactionsSql } from '../event-log/sql.js'
import type { Static } from 'typebox'
import type { Reaction } from '../schemas/messages.js'

/** Adds the reaction; false when the user had already reacted with this emoji. */
export async function addReaction(db: Knex, messageId: number, userId: number, emoji: string): Promise<boolean> {
  const rows = await db('message_reactions').insert({ message_id: messageId, user_id: userId, emoji }).onConflict(['message_id', 'emoji', 'user_id']).ignore().returning('emoji')
  return rows.length > 0
}

/** Removes the reaction; false when there was none. */
export async function removeReaction(db: Knex, messageId: number, userId: number, emoji: string): Promise<boolean> {
  return (await db('message_reactions').where({ message_id: messageId, user_id: userId, emoji }).delete()) > 0
}

/** The message's reactions as `viewerId` sees them (as history shows them). */
export async function reactionsOf(db: Knex, messageId: number, viewerId: number): Promise<Static<typeof Reaction>[]> {
  const { rows } = await db.raw(`SELECT ${messageReactionsSql('?::int8')} AS reactions FROM messages m WHERE m.id = ?`, [viewerId, messageId])
  return rows[0]?.reactions ?? []
}
