// Data access for messages (direct and room), the per-user conversation marks (read and
// cleared) and the direct-dialog list.
import type { Knex } from 'knex'
import { messageColumnsSql, messageJsonSql } from '../event-log/sql.js'

export type MessageKind = 'text' | 'sticker' | 'file' | 'broadcast'

/** A conversation as one user sees it: with another user, or in a room. */
export type Conversation = { peerId: number; roomId?: undefined } | { roomId: number; peerId?: undefined }

export interface StoredMessage {
  id: number
  time: number
}

export interface MessageRow {
  id: number
  sender_id: number
  recipient_id: number | null
  room_id: number | null
  deleted_at: Date | null
}

const SECONDS = (column: string) => `floor(extract(epoch FROM ${column}))::int8`

/** A message as every reply shows it (src/event-log/sql.ts), as `viewerId` sees it. */
const messageColumns = (db: Knex, viewerId: number) => db.raw(messageColumnsSql('(:viewer)::int8'), { viewer: viewerId })

/**
 * Stores a message. With a client_msg_id already used by this sender, stores nothing and
 * returns undefined: ON CONFLICT waits for a racing insert of the same id to commit.
 */
export async function insertMessage(
  db: Knex,
  message: {
    senderId: number
    recipientId?: number
    roomId?: number
    text: string
    kind?: MessageKind
    clientMsgId?: string
    /** Opaque ciphertext per recipient uid. */
    ciphertexts?: Record<string, string>
    fileId?: number
    replyToId?: number
    forwardedFromId?: number
  },
): Promise<StoredMessage | undefined> {
  const rows = await db('messages')
    .insert({
      sender_id: message.senderId,
      recipient_id: message.recipientId ?? null,
      room_id: message.roomId ?? null,
      text: message.text,
      kind: message.kind ?? 'text',
      client_msg_id: message.clientMsgId ?? null,
      ciphertexts: message.ciphertexts ? JSON.stringify(message.ciphertexts) : null,
      file_id: message.fileId ?? null,
      reply_to_id: message.replyToId ?? null,
      forwarded_from_id: message.forwardedFromId ?? null,
    })
    .onConflict(['sender_id', 'client_msg_id'])
    .ignore()
    .returning(['id', db.raw(`${SECONDS('created_at')} AS time`)])
  return rows[0]
}

export async function findMessageByClientId(db: Knex, senderId: number, clientMsgId: string): Promise<StoredMessage | undefined> {
  return db('messages').select('id', db.raw(`${SECONDS('created_at')} AS time`)).where({ sender_id: senderId, client_msg_id: clientMsgId }).first()
}

/** What a forwarded copy takes from the message. */
export async function forwardable(db: Knex, id: number): Promise<{ text: string; kind: MessageKind; file_id: number | null; origin: number }> {
  return db('messages').select('text', 'kind', 'file_id', db.raw('COALESCE(forwarded_from_id, id) AS origin')).where({ id }).first()
}

export async function findMessage(db: Knex, id: number): Promise<MessageRow | undefined> {
  return db('messages').select('id', 'sender_id', 'recipient_id', 'room_id', 'deleted_at').where({ id }).first()
}

/** The replies to a message that the user may see, oldest first, after `after`: one page, and whether more follow. */
export async function threadPage(db: Knex, userId: number, conversation: Conversation, clearedThrough: number, rootId: number, after: number, count: number) {
  const rows = await visible(db, userId, conversation, clearedThrough)
    .select(messageColumns(db, userId))
    .where('m.reply_to_id', rootId)
    .andWhere('m.id', '>', after)
    .orderBy('m.id', 'asc')
    .limit(count + 1)
  return { replies: rows.slice(0, count), has_more: rows.length > count }
}

export async function insertMentions(db: Knex, messageId: number, userIds: number[]): Promise<void> {
  if (userIds.length > 0) await db('message_mentions').insert(userIds.map((userId) => ({ message_id: messageId, user_id: userId }))).onConflict().ignore()
}

/** One message as history shows it to the user. */
export async function messageView(db: Knex, userId: number, id: number) {
  return db('messages as m').join('users as u', 'u.id', 'm.sender_id').select(messageColumns(db, userId)).where('m.id', id).first()
}

export async function editMessage(db: Knex, id: number, text: string): Promise<number> {
  const [row] = await db('messages').where({ id }).update({ text, edited_at: db.fn.now() }).returning(db.raw(`${SECONDS('edited_at')} AS edited_at`))
  return row.edited_at
}

export async function markDeleted(db: Knex, id: number): Promise<void> {
  await db('messages').where({ id }).update({ deleted_at: db.fn.now() })
}

/** Messages of a conversation the user may see: not deleted, not cleared. */
function visible(db: Knex, userId: number, conversation: Conversation, clearedThrough: number) {
  const query = db('messages as m').join('users as u', 'u.id', 'm.sender_id').whereNull('m.deleted_at').andWhere('m.id', '>', clearedThrough)
  if (conversation.roomId !== undefined) return query.where('m.room_id', conversation.roomId)
  return query
    .whereNull('m.room_id')
    .where('m.peer_low', Math.min(userId, conversation.peerId))
    .where('m.peer_high', Math.max(userId, conversation.peerId))
}

export interface Page {
  before?: number
  after?: number
  count: number
}

/** One page of history, oldest first. Without `after` the page ends at `before` (or the newest). */
export async function historyPage(db: Knex, userId: number, conversation: Conversation, clearedThrough: number, page: Page) {
  const query = visible(db, userId, conversation, clearedThrough).select(messageColumns(db, userId))
  if (page.before !== undefined) query.andWhere('m.id', '<', page.before)
  if (page.after !== undefined) query.andWhere('m.id', '>', page.after)
  // Walking forward from `after`: the oldest first. Otherwise the newest page, reversed.
  query.orderBy('m.id', page.after !== undefined ? 'asc' : 'desc').limit(page.count + 1)
  const rows = await query
  const hasMore = rows.length > page.count
  const messages = rows.slice(0, page.count)
  if (page.after === undefined) messages.reverse()
  return { messages, has_more: hasMore }
}

/** The conversation's pinned messages the user may see, the latest pinned first, with who pinned them and when. */
export async function pinnedPage(db: Knex, userId: number, conversation: Conversation, clearedThrough: number) {
  const rows = await visible(db, userId, conversation, clearedThrough)
    .join('pinned_messages as p', 'p.message_id', 'm.id')
    .select(messageColumns(db, userId), 'p.pinned_by', db.raw(`${SECONDS('p.pinned_at')} AS pinned_at`))
    .orderBy([{ column: 'p.pinned_at', order: 'desc' }, { column: 'm.id', order: 'desc' }])
  return rows.map(({ pinned_by, pinned_at, ...message }) => ({ message, pinned_by, pinned_at }))
}

/** Full-text search: every word of `words` must match (as a prefix), newest first. */
export async function searchMessages(db: Knex, userId: number, conversation: Conversation, clearedThrough: number, words: string[], before: number | undefined, count: number) {
  const tsquery = words.map((w) => `${w}:*`).join(' & ')
  const query = visible(db, userId, conversation, clearedThrough)
    .select(messageColumns(db, userId))
    .andWhereRaw("m.search @@ to_tsquery('simple', ?)", [tsquery])
    .orderBy('m.id', 'desc')
    .limit(count)
  if (before !== undefined) query.andWhere('m.id', '<', before)
  return query
}

export async function getMarks(db: Knex, userId: number, conversation: Conversation): Promise<{ read_through: number; cleared_through: number }> {
  const row = await db('conversation_marks')
    .select('read_through', 'cleared_through')
    .where({ user_id: userId, peer_id: conversation.peerId ?? 0, room_id: conversation.roomId ?? 0 })
    .first()
  return row ?? { read_through: 0, cleared_through: 0 }
}

/** Moves a marker forward (never back). */
export async function advanceMark(db: Knex, userId: number, conversation: Conversation, mark: 'read_through' | 'cleared_through', msgId: number): Promise<void> {
  await db.raw(
    `INSERT INTO conversation_marks (user_id, peer_id, room_id, ??) VALUES (?, ?, ?, ?)
     ON CONFLICT (user_id, peer_id, room_id) DO UPDATE SET ?? = GREATEST(conversation_marks.??, EXCLUDED.??)`,
    [mark, userId, conversation.peerId ?? 0, conversation.roomId ?? 0, msgId, mark, mark, mark],
  )
}

/** The newest id among the conversation's messages that are not deleted (0 when none). */
export async function lastMessageId(db: Knex, userId: number, conversation: Conversation): Promise<number> {
  const row = await visible(db, userId, conversation, 0).clearSelect().max('m.id as id').first()
  return row?.id ?? 0
}

export async function unreadCount(db: Knex, userId: number, conversation: Conversation, throughId: number): Promise<number> {
  const row = await visible(db, userId, conversation, throughId).whereNot('m.sender_id', userId).count<{ n: number }[]>('* as n').first()
  return Number(row?.n ?? 0)
}

/**
 * One page of my conversations (direct peers and rooms), newest activity first, each with
 * its last visible message and unread count, in one statement.
 */
export async function dialogPage(db: Knex, userId: number, offset: number, count: number) {
  // The two halves of each lateral subquery are gated by a constant per row, so each
  // conversation uses its own index (messages_room or messages_direct).
  const conversationMessages = (extra: string) => `
      (SELECT m.* FROM messages m
        WHERE c.room_id <> 0 AND m.room_id = c.room_id AND m.deleted_at IS NULL AND m.id > c.cleared ${extra})
      UNION ALL
      (SELECT m.* FROM messages m
        WHERE c.room_id = 0 AND m.room_id IS NULL AND m.peer_low = LEAST(:me::int8, c.peer_id) AND m.peer_high = GREATEST(:me::int8, c.peer_id)
          AND m.deleted_at IS NULL AND m.id > c.cleared ${extra})`
  const { rows } = await db.raw(
    `WITH conversations AS (
       SELECT d.peer_id, 0::int8 AS room_id, p.login AS title, d.last_activity AS activity, 0::int8 AS room_cleared
         FROM direct_dialogs d JOIN users p ON p.id = d.peer_id
        WHERE d.user_id = :me
       UNION ALL
       SELECT 0::int8, r.id, r.name, COALESCE((SELECT max(created_at) FROM messages WHERE room_id = r.id), m.joined_at), r.cleared_through
         FROM room_members m JOIN rooms r ON r.id = m.room_id
        WHERE m.user_id = :me AND m.role <> 'banned'
     ), page AS (
       SELECT v.*, COALESCE(k.read_through, 0) AS read_through,
              GREATEST(COALESCE(k.cleared_through, 0), v.room_cleared) AS cleared,
              count(*) OVER () AS total
         FROM conversations v
         LEFT JOIN conversation_marks k ON k.user_id = :me AND k.peer_id = v.peer_id AND k.room_id = v.room_id
        ORDER BY v.activity DESC, v.room_id DESC, v.peer_id DESC
       OFFSET :offset LIMIT :count
     )
     SELECT c.peer_id, c.room_id, c.title, floor(extract(epoch FROM c.activity))::int8 AS last_activity, c.total,
            (SELECT ${messageJsonSql('(:me)')}
               FROM (SELECT * FROM (${conversationMessages('')}) a ORDER BY id DESC LIMIT 1) m
               JOIN users u ON u.id = m.sender_id) AS last_message,
            (SELECT count(*) FROM (${conversationMessages('AND m.id > c.read_through AND m.sender_id <> :me')}) n)::int AS unread,
            (SELECT count(*) FROM message_mentions mm JOIN messages m ON m.id = mm.message_id
              WHERE c.room_id <> 0 AND mm.user_id = :me AND m.room_id = c.room_id AND m.deleted_at IS NULL
                AND m.id > GREATEST(c.read_through, c.cleared))::int AS mentions
       FROM page c
      ORDER BY c.activity DESC, c.room_id DESC, c.peer_id DESC`,
    { me: userId, offset, count },
  )
  return rows as { peer_id: number; room_id: number; title: string; last_activity: number; total: number; last_message: unknown; unread: number; mentions: number }[]
}
