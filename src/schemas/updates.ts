import { Type } from 'typebox'
import { Fields, UnixSeconds } from './common.js'
import { PolledMessage } from './messages.js'
import { Event } from '../event-log/catalogue.js'

export const Cursor = Type.Integer({
  minimum: 0,
  maximum: Number.MAX_SAFE_INTEGER,
  description: 'Position in the caller\'s event log: microseconds since the epoch, strictly increasing in commit order.',
})

export const UpdateDataBody = Fields({
  cursor: Type.Optional(Cursor),
  last_time: Type.Optional(Type.Number({ minimum: 0, description: 'Skip events older than this UNIX second.' })),
  last_update: Type.Optional(Type.Number({ minimum: 0, description: 'Alias of `last_time` (the desktop client\'s name).' })),
  timeout: Type.Optional(
    Type.Number({ minimum: 0, maximum: 86400, description: 'Seconds to hold the request when nothing is pending; default 25, capped at 60.' }),
  ),
})

export const UpdateDataReply = Type.Object({
  server_time: UnixSeconds('The server clock at the reply.'),
  cursor: Cursor,
  msg_array: Type.Array(PolledMessage),
  events_array: Type.Array(Event),
})
