import { Type } from 'typebox'
import { Fields, Id, UnixSeconds } from './common.js'

export const MessageKind = Type.Enum(['text', 'sticker', 'file', 'broadcast'], {
  description: '`text`, `sticker` (msg is the sticker\'s short code), `file` (see `file`) or `broadcast` (an administrator\'s message to everyone).',
})

export const MessageFile = Type.Object(
  {
    file_id: Id('Download with GET /files/{file_id}.'),
    name: Type.String(),
    size: Type.Integer({ minimum: 0, description: 'Bytes.' }),
    content_type: Type.String(),
    sha256: Type.String({ description: 'Hex SHA-256 of the content.' }),
  },
  {
    $id: 'File',
    description: 'An uploaded file, as messages carry it.',
    examples: [{ file_id: 1, name: 'photo.jpg', size: 48213, content_type: 'image/jpeg', sha256: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08' }],
  },
)

// The examples' messages: alice (uid 1) to bob (uid 2), alice in the room General (room 1), bob's answer.
const hiBob = { msg_id: 1, sender_uid: 1, sender_login: 'alice', time: 1796283301, text: 'hi bob', kind: 'text', room_id: null, to_uid: 2, edited_at: null, ciphertext: null, file: null, reactions: [], reply_to: null, forwarded_from: null, mentioned: false, read_by: 1 }
const helloAll = { msg_id: 2, sender_uid: 1, sender_login: 'alice', time: 1796283342, text: 'hello all', kind: 'text', room_id: 1, to_uid: null, edited_at: 1796283360, ciphertext: null, file: null, reactions: [{ emoji: '👍', count: 2, mine: true }], reply_to: null, forwarded_from: null, mentioned: false, read_by: 1 }
const hiAlice = { msg_id: 3, sender_uid: 2, sender_login: 'bob', time: 1796283371, text: 'hi alice', kind: 'text', room_id: null, to_uid: 1, edited_at: null, ciphertext: null, file: null, reactions: [],
  reply_to: { msg_id: 1, sender_uid: 1, sender_login: 'alice', preview: 'hi bob', deleted: false }, forwarded_from: null, mentioned: false, read_by: 0 }

// The text cap is a setting (MAX_MESSAGE_CHARS) enforced by the service; the schema
// only bounds what is parsed at all.
const MessageText = Type.String({ minLength: 1, maxLength: 65536, description: 'The text (at most MAX_MESSAGE_CHARS characters, 4096 by default).' })

/** End-to-end encryption: the server stores these and hands each recipient its own entry, never reading them. */
export const MAX_CIPHERTEXT_CHARS = 65536
export const Ciphertexts = Type.Record(
  Type.String({ pattern: '^[1-9][0-9]{0,15}$' }),
  Type.String({ maxLength: MAX_CIPHERTEXT_CHARS }),
  {
    maxProperties: 1000,
    additionalProperties: false,
    description:
      'Opaque ciphertext per recipient: `{"<uid>": "<base64>"}` (at most 1000 entries of 64 KiB). Each reader gets its own entry as ' +
      '`ciphertext`; `msg` then carries a placeholder for clients without the key. Direct messages may name only their two users.',
  },
)

const ClientMsgId = Type.String({ minLength: 1, maxLength: 128, description: 'Client-chosen id: a retry with the same id returns the first reply.' })

/** A conversation: with a user (`to_uid`) or in a room (`room_id`), exactly one of them. */
const Conversation = {
  to_uid: Type.Optional(Id('The other user of a direct conversation.')),
  room_id: Type.Optional(Id('The room.')),
}
const inConversation: ('to_uid' | 'room_id')[] = ['to_uid', 'room_id']

export const SendMsgBody = Fields(
  {
    ...Conversation,
    msg: MessageText,
    kind: Type.Optional(Type.Enum(['text', 'sticker'], { description: 'Default `text`.' })),
    client_msg_id: Type.Optional(ClientMsgId),
    ciphertexts: Type.Optional(Ciphertexts),
    file_id: Type.Optional(Id('Attach your upload (POST /upload_file); the message\'s kind becomes `file` and `msg` is its caption.')),
    reply_to: Type.Optional(Id('Answer this message: one of the same conversation that you can see (else 404).')),
  },
  {
    alternatives: inConversation,
    description: 'To an accepted contact (`to_uid`) or to a room you are a member of (`room_id`).',
    examples: [{ to_uid: 2, msg: 'hi bob', client_msg_id: 'm-1' }],
  },
)

export const BroadcastBody = Fields(
  { msg: MessageText, client_msg_id: Type.Optional(ClientMsgId) },
  { examples: [{ msg: 'The server restarts at 22:00 UTC for maintenance.', client_msg_id: 'b-1' }] },
)

export const SendMsgReply = Type.Object(
  {
    msg_id: Id('The message id.'),
    time: UnixSeconds('When the server stored it (UNIX seconds).'),
  },
  { examples: [{ msg_id: 1, time: 1796283301 }] },
)

export const ReplyTo = Type.Object(
  {
    msg_id: Id('The message replied to.'),
    sender_uid: Id('Who sent it.'),
    sender_login: Type.String(),
    preview: Type.Union([Type.String({ description: 'The beginning of its text (100 characters).' }), Type.Null()], { description: 'null once it was deleted.' }),
    deleted: Type.Boolean({ description: 'The original is gone: deleted since.' }),
  },
  { $id: 'ReplyTo', description: 'The message a reply answers, as the reply shows it.' },
)

export const ForwardedFrom = Type.Object(
  { uid: Id('Who first sent it.'), login: Type.String(), time: UnixSeconds('When they sent it.') },
  { $id: 'ForwardedFrom', description: 'For a forwarded copy: who first sent the message, and when.' },
)

export const Reaction = Type.Object(
  {
    emoji: Type.String({ description: 'The emoji.' }),
    count: Type.Integer({ minimum: 1, description: 'How many users reacted with it.' }),
    mine: Type.Boolean({ description: 'Whether you are one of them.' }),
  },
  { $id: 'Reaction', description: 'The users who reacted to a message with one emoji.' },
)

export const Message = Type.Object(
  {
    msg_id: Id('The message id: grows in commit order within a conversation.'),
    sender_uid: Id('Who sent it.'),
    sender_login: Type.String(),
    time: UnixSeconds('When it was stored.'),
    text: Type.String(),
    kind: MessageKind,
    room_id: Type.Union([Id('The room, for room messages.'), Type.Null()]),
    to_uid: Type.Union([Id('The recipient, for direct messages.'), Type.Null()]),
    edited_at: Type.Union([UnixSeconds('When it was last edited.'), Type.Null()]),
    ciphertext: Type.Union([Type.String({ description: 'Your ciphertext entry, for encrypted messages.' }), Type.Null()]),
    file: Type.Union([MessageFile, Type.Null()]),
    reactions: Type.Array(Reaction, { description: 'Per emoji, the oldest first; empty when nobody reacted.' }),
    reply_to: Type.Union([ReplyTo, Type.Null()], { description: 'For a reply: the message it answers.' }),
    forwarded_from: Type.Union([ForwardedFrom, Type.Null()], { description: 'For a forwarded copy: who first sent it, and when.' }),
    mentioned: Type.Boolean({ description: 'A room message that mentions you (`@your_login` or `@all`).' }),
    read_by: Type.Integer({ minimum: 0, description: 'Users other than its sender who read it and share read receipts: 0 or 1 in a direct chat, a count in a room.' }),
  },
  { $id: 'Message', description: 'A message as history, search and dialogs show it.' },
)

/** A message as update_data delivers it: PROTOCOL A.6's fields, the others only when set. */
export const PolledMessage = Type.Object(
  {
    msg_id: Id('The message id.'),
    sender_uid: Id('Who sent it.'),
    sender_login: Type.String(),
    time: UnixSeconds('When it was stored.'),
    text: Type.String(),
    kind: Type.Optional(MessageKind),
    room_id: Type.Optional(Id('Set for room messages.')),
    edited_at: Type.Optional(UnixSeconds('Set once the message was edited.')),
    ciphertext: Type.Optional(Type.String({ description: 'Your entry of the sender\'s `ciphertexts`, when it named you.' })),
    file: Type.Optional(MessageFile),
    reply_to: Type.Optional(ReplyTo),
    forwarded_from: Type.Optional(ForwardedFrom),
    mentioned: Type.Optional(Type.Literal(true, { description: 'Set when the room message mentions you.' })),
  },
  { $id: 'PolledMessage', description: 'A new message, as update_data delivers it in `msg_array`.' },
)

export const EditMsgBody = Fields({ msg_id: Id('Your message.'), msg: MessageText }, { examples: [{ msg_id: 2, msg: 'hello all' }] })
export const EditMsgReply = Type.Object({ msg_id: Id('The message.'), edited_at: UnixSeconds('The edit time.') }, { examples: [{ msg_id: 2, edited_at: 1796283360 }] })

const Emoji = Type.String({
  minLength: 1,
  maxLength: 64,
  description: 'One emoji (a sequence with modifiers and joiners counts as one), at most MAX_REACTION_CHARS characters (16 by default).',
})

export const ReactBody = Fields(
  { msg_id: Id('A message you can see: as history shows it to you.'), emoji: Emoji },
  { examples: [{ msg_id: 2, emoji: '👍' }] },
)

export const ReactReply = Type.Object(
  { msg_id: Id('The message.'), reactions: Type.Array(Reaction, { description: 'Its reactions now, as history shows them.' }) },
  { examples: [{ msg_id: 2, reactions: [{ emoji: '👍', count: 2, mine: true }] }] },
)

export const PinBody = Fields(
  { msg_id: Id('A message you can see: in a room you moderate or own, or in one of your direct chats.') },
  { examples: [{ msg_id: 2 }] },
)
export const PinReply = Type.Object(
  { msg_id: Id('The message.'), pinned: Type.Boolean({ description: 'Whether it is pinned now.' }) },
  { examples: [{ msg_id: 2, pinned: true }] },
)

export const Pin = Type.Object(
  {
    message: Message,
    pinned_by: Id('Who pinned it.'),
    pinned_at: UnixSeconds('When.'),
  },
  { $id: 'Pin', description: 'A pinned message of a conversation.' },
)
export const GetPinsBody = Fields(Conversation, { alternatives: inConversation, examples: [{ room_id: 1 }] })
export const GetPinsReply = Type.Object(
  { pins: Type.Array(Pin, { description: 'The latest pinned first; those you can see in your history.' }) },
  { examples: [{ pins: [{ message: helloAll, pinned_by: 1, pinned_at: 1796283400 }] }] },
)

export const DeleteMsgBody = Fields({ msg_id: Id('Your message, or any in a room you moderate.') }, { examples: [{ msg_id: 2 }] })

export const ClearHistoryBody = Fields(Conversation, {
  alternatives: inConversation,
  description: 'A direct conversation is cleared for you only; a room for everyone, by its owner.',
  examples: [{ to_uid: 2 }],
})

export const Count = (max: number, fallback: number) => Type.Integer({ minimum: 1, maximum: max, description: `At most ${max}; default ${fallback}.` })

export const GetHistoryBody = Fields(
  {
    ...Conversation,
    before: Type.Optional(Id('Only messages with a smaller msg_id.')),
    after: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Only messages with a larger msg_id: page forward from here (0: from the start).' })),
    count: Type.Optional(Count(100, 50)),
  },
  {
    alternatives: inConversation,
    description: 'Without `after`: the newest `count` messages (before `before`). With `after`: the `count` oldest after it. Always oldest first.',
    examples: [{ to_uid: 2, count: 20 }],
  },
)
export const GetHistoryReply = Type.Object(
  {
    messages: Type.Array(Message),
    has_more: Type.Boolean({ description: 'More messages lie beyond this page in the direction paged.' }),
  },
  { examples: [{ messages: [hiBob, hiAlice], has_more: false }] },
)

export const SearchMsgsBody = Fields(
  {
    ...Conversation,
    query: Type.String({ minLength: 1, maxLength: 256, description: 'Words; each must match a word of the message or its beginning, regardless of case.' }),
    before: Type.Optional(Id('Only messages with a smaller msg_id (the next page).')),
    count: Type.Optional(Count(100, 20)),
  },
  { alternatives: inConversation, examples: [{ room_id: 1, query: 'hel' }] },
)
export const SearchMsgsReply = Type.Object({ messages: Type.Array(Message, { description: 'Newest first.' }) }, { examples: [{ messages: [helloAll] }] })

export const MarkReadBody = Fields(
  { ...Conversation, msg_id: Id('Everything up to this message is read.') },
  { alternatives: inConversation, examples: [{ to_uid: 2, msg_id: 3 }] },
)
export const MarkReadReply = Type.Object(
  { unread: Type.Integer({ minimum: 0, description: 'Messages still unread in the conversation.' }) },
  { examples: [{ unread: 0 }] },
)

export const GetDialogsBody = Fields(
  { offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })), count: Type.Optional(Count(100, 50)) },
  { examples: [{ offset: 0, count: 20 }] },
)
export const Dialog = Type.Object(
  {
    to_uid: Type.Optional(Id('The other user, for a direct conversation.')),
    room_id: Type.Optional(Id('The room.')),
    title: Type.String({ description: 'The other user\'s login, or the room\'s name.' }),
    last_message: Type.Union([Message, Type.Null()]),
    unread: Type.Integer({ minimum: 0 }),
    mentions: Type.Integer({ minimum: 0, description: 'Unread room messages that mention you (0 in a direct conversation).' }),
    last_activity: UnixSeconds('The newest message (or joining the room).'),
  },
  { $id: 'Dialog', description: 'A conversation in my list: with a user (`to_uid`) or a room (`room_id`).' },
)
export const GetDialogsReply = Type.Object(
  { dialogs: Type.Array(Dialog, { description: 'Newest activity first.' }), total: Type.Integer({ minimum: 0 }) },
  {
    examples: [
      {
        dialogs: [
          { to_uid: 2, title: 'bob', last_message: hiAlice, unread: 1, mentions: 0, last_activity: 1796283371 },
          { room_id: 1, title: 'General', last_message: helloAll, unread: 0, mentions: 0, last_activity: 1796283342 },
        ],
        total: 2,
      },
    ],
  },
)

export const GetThreadBody = Fields(
  {
    msg_id: Id('The message whose replies to page through: one you can see.'),
    after: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Only replies with a larger msg_id (the next page; 0: from the first).' })),
    count: Type.Optional(Count(100, 50)),
  },
  { examples: [{ msg_id: 1, count: 50 }] },
)
export const GetThreadReply = Type.Object(
  {
    root: Message,
    // The same shape as `root`, referred to: one schema may embed a named shape only once.
    replies: Type.Array(Type.Ref('Message'), { description: 'Oldest first.' }),
    has_more: Type.Boolean({ description: 'More replies follow this page.' }),
  },
  { examples: [{ root: hiBob, replies: [hiAlice], has_more: false }] },
)

export const SetReadReceiptsBody = Fields(
  { enabled: Type.Boolean({ description: 'false: private receipts: your reading is not shown to others nor told to senders.' }) },
  { examples: [{ enabled: false }] },
)
export const SetReadReceiptsReply = Type.Object({ read_receipts: Type.Boolean() }, { examples: [{ read_receipts: false }] })

export const ForwardMsgBody = Fields(
  {
    msg_id: Id('A message you can see (else 404).'),
    ...Conversation,
    client_msg_id: Type.Optional(ClientMsgId),
  },
  {
    alternatives: inConversation,
    description: 'Into a conversation where you may post: to an accepted contact (`to_uid`) or a room (`room_id`).',
    examples: [{ msg_id: 2, to_uid: 2, client_msg_id: 'f-1' }],
  },
)

export const TypingBody = Fields(Conversation, {
  alternatives: inConversation,
  description: 'Where you are typing: a direct chat with a contact (`to_uid`) or a room (`room_id`).',
  examples: [{ to_uid: 2 }],
})
