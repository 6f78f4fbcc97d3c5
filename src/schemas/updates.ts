import { Type } from 'typebox'
import { Fields, Id, UnixSeconds } from './common.js'
import { PolledMessage } from './messages.js'
import { Event } from '../event-log/catalogue.js'

export const Cursor = Type.Integer({
  minimum: 0,
  maximum: Number.MAX_SAFE_INTEGER,
  description: 'Position in the caller\'s event log: microseconds since the epoch, strictly increasing in commit order.',
})

export const UpdateDataBody = Fields(
  {
    cursor: Type.Optional(Cursor),
    last_time: Type.Optional(Type.Number({ minimum: 0, description: 'Skip events older than this UNIX second.' })),
    last_update: Type.Optional(Type.Number({ minimum: 0, description: 'Alias of `last_time` (the desktop client\'s name).' })),
    timeout: Type.Optional(
      Type.Number({ minimum: 0, maximum: 86400, description: 'Seconds to hold the request when nothing is pending; default 25, capped at 60.' }),
    ),
  },
  { examples: [{ cursor: 1796283288925123, timeout: 25 }] },
)

export const TypingNotice = Type.Object(
  {
    uid: Id('Who is typing.'),
    login: Type.String(),
    to_uid: Type.Optional(Id('In your direct chat with them (their uid).')),
    room_id: Type.Optional(Id('In this room.')),
    expires_at: Type.Integer({ minimum: 0, description: 'Until when (UNIX milliseconds), unless renewed: TYPING_SECONDS after it was sent.' }),
  },
  { $id: 'TypingNotice', description: 'Someone is typing in a conversation of yours.' },
)

export const UpdateDataReply = Type.Object(
  {
    server_time: UnixSeconds('The server clock at the reply.'),
    cursor: Cursor,
    msg_array: Type.Array(PolledMessage),
    events_array: Type.Array(Event),
    typing: Type.Optional(Type.Array(TypingNotice, { description: 'Who is typing now in your conversations (ephemeral: not stored, no cursor).' })),
  },
  {
    // Alice's poll from her authorization's cursor: bob joined her room, then wrote to her.
    examples: [
      {
        server_time: 1796283372,
        cursor: 1796283371218723,
        msg_array: [{ msg_id: 3, sender_uid: 2, sender_login: 'bob', time: 1796283371, text: 'hi alice' }],
        events_array: [{ eid: 7, type: 'member_joined', ruid: 2, text: 'bob', time: 1796283331, room_id: 1, uid: 2 }],
      },
    ],
  },
)
