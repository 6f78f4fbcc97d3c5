// Messages, direct and in rooms, and their life: send, edit, delete, clear, history,
// search, read markers, dialogs.
//
// A send is answered only after it committed: a direct message shares one statement and
// one commit with the direct messages sent at the same time (group commit, in the event
// log, src/event-log/); a room message is a transaction of its own. A send first locks the
// conversation (a direct chat: both users' logs, in id order; a room: the room's row), so
// message ids grow in commit order within a conversation: history paged by id never skips
// a message that committed late. Then it stores the message and appends it to the
// recipients' logs (a room: every member but the sender, in one statement).
// Idempotent per (sender, client_msg_id): a retry, even one racing the first request,
// returns the first message's reply and stores nothing.
import type { Knex } from 'knex'
import {
  advanceMark,
  dialogPage,
  editMessage,
  findMessage,
  findMessageByClientId,
  forwardable,
  getMarks,
  historyPage,
  insertMentions,
  insertMessage,
  lastMessageId,
  markDeleted,
  messageView,
  pinnedPage,
  threadPage,
  searchMessages,
  unreadCount,
  type Conversation,
  type MessageRow,
  type Page,
} from '../data/messages.js'
import { attachFile } from '../data/files.js'
import { addReaction, reactionsOf, removeReaction } from '../data/reactions.js'
import { countPins, isPinned, pinMessage, unpinMessage } from '../data/pins.js'
import { findRoom, memberIds, membersNamed, updateRoom } from '../data/rooms.js'
import { findUserById, setReadReceipts, sharesReadReceipts } from '../data/users.js'
import { BadRequest, Forbidden, InvalidState, NotFound, NotFriends, ReadOnlyChannel, rateLimited } from '../errors.js'
import { blockedEitherWay } from '../data/blocks.js'
import { ContactStatus, getContactStatus } from '../data/contacts.js'
import { isModerator, type Rooms } from './rooms.js'
import type { Static } from 'typebox'
import type { Message } from '../schemas/messages.js'
import type { TypingNotice } from '../event-log/index.js'
import type { ServiceDeps } from './deps.js'
import type { PushService } from './push.js'

export interface OutgoingMessage {
  toUid?: number
  roomId?: number
  text: string
  kind?: 'text' | 'sticker'
  clientMsgId?: string
  ciphertexts?: Record<string, string>
  /** An upload of the sender's to attach. */
  fileId?: number
  /** The message this one answers. */
  replyTo?: number
  /** A forwarded copy: the message first sent, and its file (checked visible, not the sender's own upload). */
  forwardedFrom?: number
}

/** `{to_uid}` or `{room_id}`, exactly one. */
export function conversationOf(target: { to_uid?: number; room_id?: number }): Conversation {
  if ((target.to_uid === undefined) === (target.room_id === undefined)) throw new BadRequest('Name the conversation with to_uid or room_id (one of them)')
  return target.room_id !== undefined ? { roomId: target.room_id } : { peerId: target.to_uid! }
}

function messageFields({ text, kind, clientMsgId, ciphertexts, fileId, replyTo, forwardedFrom }: OutgoingMessage) {
  return { text, kind: fileId !== undefined ? ('file' as const) : kind, clientMsgId, ciphertexts, fileId, replyToId: replyTo, forwardedFromId: forwardedFrom }
}

/** `@login` (the Login syntax), at the start or after a character that cannot be part of one. */
const MENTION = /(?:^|[^\p{L}\p{N}_.@-])@([\p{L}\p{N}_.-]{1,32})/gu

/** One emoji: pictographs, flags or keycaps with their modifiers and joiners, and nothing else. */
const EMOJI = /^(?:\p{Extended_Pictographic}|\p{Emoji_Component}|\u20e3|\ufe0f)+$/u
const PICTOGRAPH = /\p{Extended_Pictographic}|\p{Regional_Indicator}|\u20e3/u

/** Attaches the sender's upload, if the message carries one (404 when it is not theirs). */
async function attachUpload(trx: Knex.Transaction, senderId: number, message: OutgoingMessage): Promise<void> {
  if (message.fileId !== undefined && !(await attachFile(trx, message.fileId, senderId))) throw new NotFound('No such file among your uploads')
}

export function createMessages({ db, config, eventLog, clock }: ServiceDeps, rooms: Rooms, push: Pick<PushService, 'notify'>) {
  /** When each user sent their typing notices in the last minute (this process). */
  const typingSent = new Map<number, number[]>()

  function checkText(text: string) {
    if ([...text].length > config.maxMessageChars) throw new BadRequest(`Message longer than ${config.maxMessageChars} characters`)
  }

  /** Who sees events about a message: a direct chat's two sides, or the room's members. */
  async function audienceOf(trx: Knex, message: MessageRow): Promise<number[]> {
    if (message.room_id !== null) return memberIds(trx, message.room_id)
    return [message.sender_id, message.recipient_id!]
  }

  /** Who is told of what `actorId` does to a message: its audience, minus the other side of a direct chat where either blocked the other. */
  async function toldOf(trx: Knex, message: MessageRow, actorId: number): Promise<number[]> {
    if (message.room_id === null) {
      const other = message.sender_id === actorId ? message.recipient_id! : message.sender_id
      if (await blockedEitherWay(trx, actorId, other)) return [actorId]
    }
    return audienceOf(trx, message)
  }

  /** The conversation may be read by the user: a direct chat with an existing user, or a room they belong to. */
  async function readableMarks(userId: number, conversation: Conversation) {
    if (conversation.roomId !== undefined) {
      await rooms.requireMember(db, conversation.roomId, userId)
      const room = await findRoom(db, conversation.roomId)
      const marks = await getMarks(db, userId, conversation)
      return { ...marks, cleared_through: Math.max(marks.cleared_through, room?.cleared_through ?? 0) }
    }
    if (conversation.peerId === userId || !(await findUserById(db, conversation.peerId))) throw new NotFound('No such user')
    return getMarks(db, userId, conversation)
  }

  /** The message, when the user may change it: their own, or any in a room they moderate. */
  async function changeableMessage(trx: Knex.Transaction, userId: number, msgId: number, allowModerators: boolean): Promise<MessageRow> {
    const message = await findMessage(trx, msgId)
    // Broadcasts (no recipient, no room) are not edited or deleted.
    if (!message || message.deleted_at || (message.room_id === null && message.recipient_id === null)) throw new NotFound('No such message')
    if (message.room_id !== null) {
      await rooms.inRoomLocked(trx, message.room_id)
      const role = await rooms.requireMember(trx, message.room_id, userId)
      if (message.sender_id === userId || (allowModerators && isModerator(role))) return message
    } else if (message.sender_id === userId) {
      await eventLog.lockUsers(trx, [message.sender_id, message.recipient_id!])
      return message
    } else if (message.recipient_id !== userId) {
      throw new NotFound('No such message')
    }
    throw new Forbidden(allowModerators ? 'You may delete only your own messages (or any, as a moderator)' : 'You may edit only your own messages')
  }

  /**
   * The message, when the user sees it as history shows it: not deleted, in a direct chat of
   * theirs or a room they belong to, after what they cleared. Anything else is the same 404,
   * so that an outsider learns nothing about the message.
   */
  async function visibleMessage(trx: Knex, userId: number, msgId: number): Promise<MessageRow> {
    const hidden = () => new NotFound('No such message')
    const message = await findMessage(trx, msgId)
    // Broadcasts (no recipient, no room) have no conversation to react in.
    if (!message || message.deleted_at || (message.room_id === null && message.recipient_id === null)) throw hidden()
    if (message.room_id === null && message.sender_id !== userId && message.recipient_id !== userId) throw hidden()
    const conversation = message.room_id !== null ? { roomId: message.room_id } : { peerId: message.sender_id === userId ? message.recipient_id! : message.sender_id }
    const marks = await readableMarks(userId, conversation).catch((error: { statusCode?: number }) => {
      // Not a member, no such user: the same 404. Anything else (the database away) stays what it is.
      throw error.statusCode === 403 || error.statusCode === 404 ? hidden() : error
    })
    if (message.id <= marks.cleared_through) throw hidden()
    return message
  }

  /** A reply answers a message of the same conversation that the sender sees (else 404, as for a missing one). */
  async function checkReplyTarget(senderId: number, conversation: Conversation, replyTo: number) {
    const original = await visibleMessage(db, senderId, replyTo)
    const sameConversation =
      conversation.roomId !== undefined
        ? original.room_id === conversation.roomId
        : original.room_id === null && [original.sender_id, original.recipient_id].includes(conversation.peerId)
    if (!sameConversation) throw new NotFound('No such message')
  }

  function checkEmoji(emoji: string) {
    if ([...emoji].length > config.maxReactionChars) throw new BadRequest(`A reaction is at most ${config.maxReactionChars} characters`)
    if (!EMOJI.test(emoji) || !PICTOGRAPH.test(emoji)) throw new BadRequest('A reaction is one emoji')
  }

  /** A direct message may not go to oneself, and its ciphertexts name only its two users. */
  function checkDirectTarget(senderId: number, message: OutgoingMessage) {
    const toUid = message.toUid!
    if (toUid === senderId) throw new BadRequest('You cannot write to yourself')
    if (message.ciphertexts && Object.keys(message.ciphertexts).some((uid) => uid !== String(toUid) && uid !== String(senderId))) {
      throw new BadRequest('ciphertexts may name only the two users of the conversation')
    }
  }

  /** The members a room message mentions: `@login` of a member, or `@all`; never the sender. */
  async function mentionedMembers(trx: Knex.Transaction, roomId: number, senderId: number, recipients: number[], text: string): Promise<number[]> {
    const names = new Set([...text.matchAll(MENTION)].map((match) => match[1].toLowerCase()))
    if (names.size === 0) return []
    if (names.has('all')) return recipients
    return (await membersNamed(trx, roomId, [...names])).filter((id) => id !== senderId)
  }

  async function sendToRoom(trx: Knex.Transaction, senderId: number, message: OutgoingMessage) {
    const roomId = message.roomId!
    const room = await rooms.inRoomLocked(trx, roomId)
    const role = await rooms.requireMember(trx, roomId, senderId)
    if (room.channel && !isModerator(role)) throw new ReadOnlyChannel('Only the owner and moderators post in this channel')
    if (message.replyTo !== undefined) await checkReplyTarget(senderId, { roomId }, message.replyTo)
    if (message.forwardedFrom === undefined) await attachUpload(trx, senderId, message)
    const inserted = await insertMessage(trx, { senderId, roomId, ...messageFields(message) })
    if (!inserted) return undefined
    const recipients = (await memberIds(trx, roomId)).filter((id) => id !== senderId)
    // Before the append, so that the entries the members' polls are handed say they were mentioned.
    const mentioned = await mentionedMembers(trx, roomId, senderId, recipients, message.text)
    await insertMentions(trx, inserted.id, mentioned)
    await eventLog.appendMessage(trx, recipients, senderId, inserted.id)
    return { inserted, mentioned, room }
  }

  /** A direct message: the hot path, group-committed with concurrent ones (src/event-log/). */
  async function sendDirect(senderId: number, message: OutgoingMessage) {
    const fields = messageFields(message)
    const sent = await eventLog.sendDirect({ senderId, recipientId: message.toUid!, ...fields, kind: fields.kind ?? 'text' })
    if (sent.outcome === 'not_friends') throw new NotFriends('You can only write to accepted contacts')
    if (sent.outcome === 'no_file') throw new NotFound('No such file among your uploads')
    if (sent.outcome === 'raced') return (await findMessageByClientId(db, senderId, message.clientMsgId!))!
    if (sent.outcome === 'sent') push.notify([message.toUid!], { type: 'message', fromUid: senderId, msgId: sent.id, text: message.text })
    return { id: sent.id, time: sent.time }
  }

  return {
    async send(senderId: number, message: OutgoingMessage) {
      const conversation = conversationOf({ to_uid: message.toUid, room_id: message.roomId })
      checkText(message.text)
      if (message.toUid !== undefined) {
        checkDirectTarget(senderId, message)
        if (message.replyTo !== undefined) await checkReplyTarget(senderId, conversation, message.replyTo)
        const stored = await sendDirect(senderId, message)
        return { msg_id: stored.id, time: stored.time }
      }
      let sent: Awaited<ReturnType<typeof sendToRoom>>
      const stored = await db.transaction(async (trx) => {
        if (message.clientMsgId !== undefined) {
          const earlier = await findMessageByClientId(trx, senderId, message.clientMsgId)
          if (earlier) return earlier
        }
        sent = await sendToRoom(trx, senderId, message)
        // Lost a race with a retry that used the same client_msg_id: answer with its message.
        return sent?.inserted ?? (await findMessageByClientId(trx, senderId, message.clientMsgId!))!
      })
      if (sent) {
        const { inserted, mentioned, room } = sent
        push.notify(mentioned, { type: 'mention', fromUid: senderId, roomId: room.id, roomName: room.name, msgId: inserted.id, text: message.text })
      }
      return { msg_id: stored.id, time: stored.time }
    },

    /**
     * An administrator's message to every user (ADMIN_LOGINS): one message and one row of
     * the broadcast log, whatever the number of users (src/data/events.ts).
     */
    async broadcast(senderId: number, text: string, clientMsgId?: string) {
      checkText(text)
      const sender = await findUserById(db, senderId)
      const isAdmin = sender && config.adminLogins.some((login) => login.toLowerCase() === sender.login.toLowerCase())
      if (!isAdmin) throw new Forbidden('Only administrators may broadcast')
      const stored = await db.transaction(async (trx) => {
        await eventLog.lockBroadcasts(trx)
        const inserted = await insertMessage(trx, { senderId, text, kind: 'broadcast', clientMsgId })
        if (!inserted) return (await findMessageByClientId(trx, senderId, clientMsgId!))!
        await eventLog.appendBroadcast(trx, inserted.id)
        return inserted
      })
      return { msg_id: stored.id, time: stored.time }
    },

    async edit(userId: number, msgId: number, text: string) {
      checkText(text)
      return db.transaction(async (trx) => {
        const message = await changeableMessage(trx, userId, msgId, false)
        const editedAt = await editMessage(trx, msgId, text)
        await eventLog.append(trx, await audienceOf(trx, message), {
          actorId: userId,
          type: 'message_edited',
          payload: { msg_id: msgId, msg: text, edited_at: editedAt, ...(message.room_id !== null ? { room_id: message.room_id } : {}) },
        })
        return { msg_id: msgId, edited_at: editedAt }
      })
    },

    async remove(userId: number, msgId: number): Promise<void> {
      await db.transaction(async (trx) => {
        const message = await changeableMessage(trx, userId, msgId, true)
        await markDeleted(trx, msgId)
        await eventLog.append(trx, await audienceOf(trx, message), {
          actorId: userId,
          type: 'message_deleted',
          payload: { msg_id: msgId, ...(message.room_id !== null ? { room_id: message.room_id } : {}) },
        })
      })
    },

    /**
     * Adds (or removes) the user's reaction to a message they see. Doing it twice changes
     * nothing the second time; each change is a `reaction` event to everyone who sees the
     * conversation.
     */
    async react(userId: number, msgId: number, emoji: string, added: boolean) {
      checkEmoji(emoji)
      return db.transaction(async (trx) => {
        const message = await visibleMessage(trx, userId, msgId)
        if (message.room_id !== null) {
          const room = (await findRoom(trx, message.room_id))!
          if (room.channel && !room.member_reactions && !isModerator(await rooms.requireMember(trx, room.id, userId))) {
            throw new ReadOnlyChannel('Reactions are off for members in this channel')
          }
        }
        const changed = added ? await addReaction(trx, msgId, userId, emoji) : await removeReaction(trx, msgId, userId, emoji)
        if (changed) {
          await eventLog.append(trx, await toldOf(trx, message, userId), {
            actorId: userId,
            type: 'reaction',
            payload: { msg_id: msgId, emoji, added, ...(message.room_id !== null ? { room_id: message.room_id } : {}) },
          })
        }
        return { msg_id: msgId, reactions: await reactionsOf(trx, msgId, userId) }
      })
    },

    /**
     * Pins (or unpins) a message the user sees: in a room, moderators and the owner; in a
     * direct chat, either side. At most MAX_PINS_PER_CONVERSATION pins; pinning twice is
     * pinning once. Each change is an event to everyone in the conversation.
     */
    async pin(userId: number, msgId: number, pinned: boolean) {
      return db.transaction(async (trx) => {
        const message = await visibleMessage(trx, userId, msgId)
        // The conversation is locked, so that concurrent pins respect the cap.
        if (message.room_id !== null) {
          await rooms.inRoomLocked(trx, message.room_id)
          if (!isModerator(await rooms.requireMember(trx, message.room_id, userId))) throw new Forbidden('Only moderators and the owner may pin in a room')
        } else {
          await eventLog.lockUsers(trx, [message.sender_id, message.recipient_id!])
        }
        if (pinned && (await countPins(trx, message)) >= config.maxPinsPerConversation && !(await isPinned(trx, msgId))) {
          throw new InvalidState(`At most ${config.maxPinsPerConversation} pinned messages per conversation; unpin one first`)
        }
        const changed = pinned ? await pinMessage(trx, msgId, userId) : await unpinMessage(trx, msgId)
        if (changed) {
          await eventLog.append(trx, await toldOf(trx, message, userId), {
            actorId: userId,
            type: pinned ? 'message_pinned' : 'message_unpinned',
            payload: { msg_id: msgId, ...(message.room_id !== null ? { room_id: message.room_id } : {}) },
          })
        }
        return { msg_id: msgId, pinned }
      })
    },

    /**
     * Forwards a message the user sees into a conversation where they may post (the rules of
     * send_msg): a copy of its text and file (by reference: the new conversation may then
     * download it), naming who first sent it and when. Ciphertexts are not copied.
     */
    async forward(userId: number, msgId: number, target: { to_uid?: number; room_id?: number }, clientMsgId?: string) {
      conversationOf(target)
      await visibleMessage(db, userId, msgId)
      const original = await forwardable(db, msgId)
      return this.send(userId, {
        toUid: target.to_uid,
        roomId: target.room_id,
        text: original.text,
        kind: original.kind === 'sticker' ? 'sticker' : undefined,
        fileId: original.file_id ?? undefined,
        clientMsgId,
        forwardedFrom: original.origin,
      })
    },

    /** The replies to a message the user sees, as their history shows them. */
    async thread(userId: number, msgId: number, after: number, count: number) {
      const root = await visibleMessage(db, userId, msgId)
      const conversation = root.room_id !== null ? { roomId: root.room_id } : { peerId: root.sender_id === userId ? root.recipient_id! : root.sender_id }
      const marks = await readableMarks(userId, conversation)
      const page = await threadPage(db, userId, conversation, marks.cleared_through, msgId, after, count)
      return { root: await messageView(db, userId, msgId), ...page }
    },

    async pins(userId: number, conversation: Conversation) {
      const marks = await readableMarks(userId, conversation)
      return { pins: await pinnedPage(db, userId, conversation, marks.cleared_through) }
    },

    /** A direct chat: cleared for the caller only. A room: for everyone, by the owner only. */
    async clearHistory(userId: number, conversation: Conversation): Promise<void> {
      if (conversation.roomId !== undefined) {
        const roomId = conversation.roomId
        await rooms.inRoom(roomId, async (trx) => {
          const role = await rooms.requireMember(trx, roomId, userId)
          if (role !== 'owner') throw new Forbidden('Only the owner may clear a room\'s history')
          const through = await lastMessageId(trx, userId, conversation)
          await updateRoom(trx, roomId, { cleared_through: through })
          await rooms.tellMembers(trx, roomId, { type: 'history_cleared', actorId: userId, payload: { room_id: roomId, through_msg_id: through } })
        })
        return
      }
      await readableMarks(userId, conversation)
      await db.transaction(async (trx) => {
        const through = await lastMessageId(trx, userId, conversation)
        await advanceMark(trx, userId, conversation, 'cleared_through', through)
        await eventLog.append(trx, [userId], { actorId: userId, type: 'history_cleared', payload: { to_uid: conversation.peerId, through_msg_id: through } })
      })
    },

    async history(userId: number, conversation: Conversation, page: Page) {
      const marks = await readableMarks(userId, conversation)
      return historyPage(db, userId, conversation, marks.cleared_through, page)
    },

    async search(userId: number, conversation: Conversation, text: string, before: number | undefined, count: number) {
      const words = text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []
      if (words.length === 0) throw new BadRequest('Search for at least one word')
      const marks = await readableMarks(userId, conversation)
      return searchMessages(db, userId, conversation, marks.cleared_through, words.slice(0, 16), before, count)
    },

    async markRead(userId: number, conversation: Conversation, msgId: number) {
      const marks = await readableMarks(userId, conversation)
      // Ids are global: a marker past the conversation's newest message would silently
      // mark messages still to come as read.
      const readThrough = Math.min(msgId, await lastMessageId(db, userId, conversation))
      await db.transaction(async (trx) => {
        // A direct chat's other side is told once per move of the marker (the pair's lock
        // orders concurrent marks), unless the reader keeps receipts private or either
        // blocked the other.
        const peerId = conversation.peerId
        if (peerId !== undefined) await eventLog.lockUsers(trx, [userId, peerId])
        const before = (await getMarks(trx, userId, conversation)).read_through
        await advanceMark(trx, userId, conversation, 'read_through', readThrough)
        if (peerId !== undefined && readThrough > before && (await sharesReadReceipts(trx, userId)) && !(await blockedEitherWay(trx, userId, peerId))) {
          await eventLog.append(trx, [peerId], { type: 'messages_read', actorId: userId, payload: { through_msg_id: readThrough } })
        }
      })
      const through = Math.max(marks.read_through, readThrough, marks.cleared_through)
      return { unread: await unreadCount(db, userId, conversation, through) }
    },

    /**
     * Tells the other side (a direct chat: a friend neither blocked; a room: the members,
     * where the user may post) that the user is typing, for TYPING_SECONDS. Ephemeral:
     * handed to held polls only, never stored. At most TYPING_PER_MINUTE per user (429).
     */
    async typing(userId: number, login: string, conversation: Conversation) {
      const now = clock.now()
      const expires_at = now + config.typingSeconds * 1000
      let recipients: number[]
      let notice: TypingNotice
      if (conversation.roomId !== undefined) {
        const roomId = conversation.roomId
        const room = await findRoom(db, roomId)
        if (!room) throw new NotFound('No such room')
        const role = await rooms.requireMember(db, roomId, userId)
        if (room.channel && !isModerator(role)) throw new ReadOnlyChannel('Only the owner and moderators post in this channel')
        recipients = (await memberIds(db, roomId)).filter((id) => id !== userId)
        notice = { uid: userId, login, room_id: roomId, expires_at }
      } else {
        const peerId = conversation.peerId
        if (peerId === userId) throw new BadRequest('You cannot write to yourself')
        if ((await getContactStatus(db, userId, peerId)) !== ContactStatus.friends || (await blockedEitherWay(db, userId, peerId))) {
          throw new NotFriends('You can only write to accepted contacts')
        }
        recipients = [peerId]
        notice = { uid: userId, login, to_uid: userId, expires_at }
      }
      // Charged once allowed: a refused notice costs nothing.
      const recent = (typingSent.get(userId) ?? []).filter((at) => at > now - 60_000)
      if (recent.length >= config.typingPerMinute) throw rateLimited(`At most ${config.typingPerMinute} typing notices per minute`, Math.ceil((recent[0] + 60_000 - now) / 1000))
      recent.push(now)
      if (typingSent.size > 100_000) typingSent.clear() // bounded memory: forget who typed
      typingSent.set(userId, recent)
      await eventLog.sendTyping(notice, recipients)
    },

    /** Read receipts on (shown to others) or off (private). */
    async setReadReceipts(userId: number, enabled: boolean) {
      await setReadReceipts(db, userId, enabled)
      return { read_receipts: enabled }
    },

    /** My conversations, newest activity first, each with its last message and unread count. */
    async dialogs(userId: number, offset: number, count: number) {
      const rows = await dialogPage(db, userId, offset, count)
      const total = rows[0]?.total ?? (offset > 0 ? (await dialogPage(db, userId, 0, 1))[0]?.total ?? 0 : 0)
      return {
        dialogs: rows.map((row) => ({
          ...(row.room_id ? { room_id: row.room_id } : { to_uid: row.peer_id }),
          title: row.title,
          last_message: row.last_message as Static<typeof Message> | null,
          unread: row.unread,
          mentions: row.mentions,
          last_activity: row.last_activity,
        })),
        total: Number(total),
      }
    },
  }
}

export type Messages = ReturnType<typeof createMessages>
