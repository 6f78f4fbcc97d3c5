import { Type } from 'typebox'
import { CommandBody, Id, UnixSeconds } from './common.js'
import { MessageFile, MessageKind } from './messages.js'

export const Cursor = Type.Integer({
  minimum: 0,
  maximum: Number.MAX_SAFE_INTEGER,
  description: 'Position in the caller\'s event log: microseconds since the epoch, strictly increasing in commit order.',
})

export const UpdateDataBody = CommandBody({
  cursor: Type.Optional(Cursor),
  last_time: Type.Optional(Type.Number({ minimum: 0, description: 'Skip events older than this UNIX second.' })),
  last_update: Type.Optional(Type.Number({ minimum: 0, description: 'Alias of `last_time` (the desktop client\'s name).' })),
  timeout: Type.Optional(
    Type.Number({ minimum: 0, maximum: 86400, description: 'Seconds to hold the request when nothing is pending; default 25, capped at 60.' }),
  ),
})

export const MessageItem = Type.Object({
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
})

export const EventItem = Type.Object(
  {
    eid: Id('The event id.'),
    type: Type.String({ description: '`contact_request`, `contact_accepted`, `contact_denied`, `contact_cancelled`, `contact_deleted`, `message_edited`, `message_deleted`, `history_cleared`, `member_joined`, `member_left`, `member_kicked`, `member_banned`, `member_unbanned`, `role_changed`, `room_renamed`, `room_described`, `room_deleted`, `presence` (`online`, `last_seen`), `key_changed` (`key_id`, `action`: `published` or `deleted`)' }),
    ruid: Id('The user who caused the event.'),
    text: Type.String({ description: 'The login of `ruid`.' }),
    time: UnixSeconds('When it happened.'),
    status: Type.Optional(Type.Integer({ description: 'Contact events: the contact\'s status as the receiver now sees it (absent when removed).' })),
  },
  { additionalProperties: true },
)

export const UpdateDataReply = Type.Object({
  server_time: UnixSeconds('The server clock at the reply.'),
  cursor: Cursor,
  msg_array: Type.Array(MessageItem),
  events_array: Type.Array(EventItem),
})
