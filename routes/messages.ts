import { commandsOf } from './command.js'
import { Empty } from '../src/schemas/common.js'
import { conversationOf } from '../src/services/messages.js'
import {
  BroadcastBody,
  ClearHistoryBody,
  DeleteMsgBody,
  EditMsgBody,
  EditMsgReply,
  ForwardMsgBody,
  GetDialogsBody,
  GetDialogsReply,
  GetHistoryBody,
  GetHistoryReply,
  GetPinsBody,
  GetThreadBody,
  GetThreadReply,
  GetPinsReply,
  MarkReadBody,
  MarkReadReply,
  PinBody,
  PinReply,
  ReactBody,
  ReactReply,
  SearchMsgsBody,
  SearchMsgsReply,
  SendMsgBody,
  SendMsgReply,
  TypingBody,
  SetReadReceiptsBody,
  SetReadReceiptsReply,
} from '../src/schemas/messages.js'

const command = commandsOf('messages')

// send_msg: answered 200 only after the message and the recipients' log entries committed.
// Idempotent per (sender, client_msg_id), also when retries race (src/services/messages.ts).
export const sendMsg = command({
  name: 'send_msg',
  summary: 'Send a message to a contact or a room',
  description:
    'To an accepted contact (`to_uid`, else 403 `not_friends`) or to a room you are a member of (`room_id`, else 403). ' +
    'Text of 1 to MAX_MESSAGE_CHARS (4096) characters. With `client_msg_id`, a retry returns the first reply and stores nothing new.',
  body: SendMsgBody,
  reply: SendMsgReply,
  limit: 'send',
  errors: [403, 404],
  logAs: 'hot',
  run: ({ app, session }, body) =>
    app.services.messages.send(session.userId, {
      toUid: body.to_uid,
      roomId: body.room_id,
      text: body.msg,
      kind: body.kind as 'text' | 'sticker' | undefined,
      clientMsgId: body.client_msg_id,
      ciphertexts: body.ciphertexts,
      fileId: body.file_id,
      replyTo: body.reply_to,
    }),
})

export const setReadReceipts = command({
  name: 'set_read_receipts',
  summary: 'Share read receipts, or keep them private',
  description:
    'On (the default): the other side of a direct chat gets a `messages_read` event when you mark their messages read, and ' +
    'history counts you in `read_by`. Off: neither, as Telegram and Matrix private receipts; your own unread counts work as before.',
  body: SetReadReceiptsBody,
  reply: SetReadReceiptsReply,
  run: ({ app, session }, body) => app.services.messages.setReadReceipts(session.userId, body.enabled),
})

export const forwardMsg = command({
  name: 'forward_msg',
  summary: 'Forward a message',
  description:
    'A message you can see (else 404), into a conversation where you may post, with the rules of `send_msg` (403 `not_friends`, ' +
    '403 in a room you are not in or a channel you may not post to). The copy names who first sent it and when (`forwarded_from`); ' +
    'its file goes by reference and becomes downloadable by the new conversation.',
  body: ForwardMsgBody,
  reply: SendMsgReply,
  limit: 'send',
  errors: [403, 404],
  run: ({ app, session }, body) => app.services.messages.forward(session.userId, body.msg_id, body, body.client_msg_id),
})

export const typing = command({
  name: 'typing',
  summary: 'Say you are typing',
  description:
    'The other side of a direct chat (an accepted contact, else 403 `not_friends`) or the members of a room (where you may post) ' +
    'see it in their held `update_data` polls (`typing`) within a second, on any server process, for TYPING_SECONDS (6) unless ' +
    'renewed. Ephemeral: never stored, never unread, it moves no cursor; a poll that starts after it expired never sees it. ' +
    'At most TYPING_PER_MINUTE (60) per user (429).',
  body: TypingBody,
  reply: Empty,
  errors: [403, 404, 429],
  run: async ({ app, session }, body) => {
    const me = await app.services.profiles.own(session.userId)
    await app.services.messages.typing(session.userId, me.username, conversationOf(body))
    return {}
  },
})

export const getThread = command({
  name: 'get_thread',
  summary: 'The replies to a message',
  description: 'A message you can see (else 404) and the replies to it that your history shows, oldest first, a page at a time (`after`).',
  body: GetThreadBody,
  reply: GetThreadReply,
  errors: [404],
  run: ({ app, session }, body) => app.services.messages.thread(session.userId, body.msg_id, body.after ?? 0, body.count ?? 50),
})

// broadcast: one write whatever the number of users; it reaches every account that
// existed when it was sent, through update_data, like any message (src/data/events.ts).
export const broadcast = command({
  name: 'broadcast',
  summary: 'Send a message to every user (administrators)',
  description:
    'Only for the logins in ADMIN_LOGINS (else 403). Every user who existed at the time gets it once through update_data, ' +
    'as a message of kind `broadcast`. With `client_msg_id`, a retry returns the first reply.',
  body: BroadcastBody,
  reply: SendMsgReply,
  limit: 'send',
  errors: [403],
  run: ({ app, session }, body) => app.services.messages.broadcast(session.userId, body.msg, body.client_msg_id),
})

export const editMsg = command({
  name: 'edit_msg',
  summary: 'Edit your message',
  description: 'Everyone who sees the conversation gets a `message_edited` event with the new text and `edited_at`.',
  body: EditMsgBody,
  reply: EditMsgReply,
  errors: [403, 404],
  run: ({ app, session }, body) => app.services.messages.edit(session.userId, body.msg_id, body.msg),
})

export const react = command({
  name: 'react',
  summary: 'React to a message with an emoji',
  description:
    'To a message you can see (as history shows it to you; anything else is 404). At most one of each emoji per user per ' +
    'message: reacting again changes nothing. Everyone who sees the conversation gets a `reaction` event for each change.',
  body: ReactBody,
  reply: ReactReply,
  errors: [404],
  run: ({ app, session }, body) => app.services.messages.react(session.userId, body.msg_id, body.emoji, true),
})

export const unreact = command({
  name: 'unreact',
  summary: 'Take back your emoji reaction',
  description: 'Removing a reaction you did not make changes nothing. Everyone who sees the conversation gets a `reaction` event (`added: false`) for each change.',
  body: ReactBody,
  reply: ReactReply,
  errors: [404],
  run: ({ app, session }, body) => app.services.messages.react(session.userId, body.msg_id, body.emoji, false),
})

export const pinMsg = command({
  name: 'pin_msg',
  summary: 'Pin a message in its conversation',
  description:
    'A message you can see (else 404): in a room, moderators and the owner (else 403); in a direct chat, either side. ' +
    'At most MAX_PINS_PER_CONVERSATION pins (409 `invalid_state` beyond). Pinning again changes nothing; each change is a ' +
    '`message_pinned` event to everyone in the conversation.',
  body: PinBody,
  reply: PinReply,
  errors: [403, 404, 409],
  run: ({ app, session }, body) => app.services.messages.pin(session.userId, body.msg_id, true),
})

export const unpinMsg = command({
  name: 'unpin_msg',
  summary: 'Unpin a message',
  description: 'Who may pin may unpin. Each change is a `message_unpinned` event to everyone in the conversation.',
  body: PinBody,
  reply: PinReply,
  errors: [403, 404],
  run: ({ app, session }, body) => app.services.messages.pin(session.userId, body.msg_id, false),
})

export const getPins = command({
  name: 'get_pins',
  summary: 'The pinned messages of a conversation',
  description: 'The latest pinned first, as your history shows them (deleted and cleared messages left out).',
  body: GetPinsBody,
  reply: GetPinsReply,
  errors: [403, 404],
  run: ({ app, session }, body) => app.services.messages.pins(session.userId, conversationOf(body)),
})

export const deleteMsg = command({
  name: 'delete_msg',
  summary: 'Delete a message',
  description: 'Your own, or any message in a room you moderate or own. It never comes back in history or search; a `message_deleted` event goes to everyone who sees the conversation.',
  body: DeleteMsgBody,
  reply: Empty,
  errors: [403, 404],
  run: async ({ app, session }, body) => {
    await app.services.messages.remove(session.userId, body.msg_id)
    return {}
  },
})

export const clearHistory = command({
  name: 'clear_history',
  summary: 'Clear a conversation\'s history',
  description: 'A direct conversation: for you only (your other devices get `history_cleared`). A room: for every member, by the owner only.',
  body: ClearHistoryBody,
  reply: Empty,
  errors: [403, 404],
  run: async ({ app, session }, body) => {
    await app.services.messages.clearHistory(session.userId, conversationOf(body))
    return {}
  },
})

export const getHistory = command({
  name: 'get_history',
  summary: 'A page of a conversation\'s history',
  description:
    'Oldest first. Page back with `before` = the first msg_id of the page, forward with `after` = the last one: message ids grow in ' +
    'commit order within a conversation, so pages never skip or repeat a message, even while new ones arrive.',
  body: GetHistoryBody,
  reply: GetHistoryReply,
  errors: [403, 404],
  run: ({ app, session }, body) =>
    app.services.messages.history(session.userId, conversationOf(body), { before: body.before, after: body.after, count: body.count ?? 50 }),
})

export const searchMsgs = command({
  name: 'search_msgs',
  summary: 'Search a conversation by words',
  description: 'Every word must match a word of the message or its beginning, regardless of case (a PostgreSQL full-text index). Newest first; page with `before`.',
  body: SearchMsgsBody,
  reply: SearchMsgsReply,
  errors: [403, 404],
  run: async ({ app, session }, body) => ({
    messages: await app.services.messages.search(session.userId, conversationOf(body), body.query, body.before, body.count ?? 20),
  }),
})

export const markRead = command({
  name: 'mark_read',
  summary: 'Mark a conversation read up to a message',
  description: 'The marker only moves forward. Answers how many messages are still unread.',
  body: MarkReadBody,
  reply: MarkReadReply,
  errors: [403, 404],
  run: ({ app, session }, body) => app.services.messages.markRead(session.userId, conversationOf(body), body.msg_id),
})

export const getDialogs = command({
  name: 'get_dialogs',
  summary: 'My conversations',
  description: 'Direct conversations and rooms, newest activity first, each with its last message and unread count.',
  body: GetDialogsBody,
  reply: GetDialogsReply,
  run: ({ app, session }, body) => app.services.messages.dialogs(session.userId, body.offset ?? 0, body.count ?? 50),
})
