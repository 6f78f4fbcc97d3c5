import { Type } from 'typebox'
import { CommandBody, Id, UnixSeconds } from './common.js'

// The text cap is a setting (MAX_MESSAGE_CHARS) enforced by the service; the schema
// only bounds what is parsed at all.
export const SendMsgBody = CommandBody({
  to_uid: Id('The recipient: an accepted contact.'),
  msg: Type.String({ minLength: 1, maxLength: 65536, description: 'The text (at most MAX_MESSAGE_CHARS characters, 4096 by default).' }),
  client_msg_id: Type.Optional(
    Type.String({ minLength: 1, maxLength: 128, description: 'Client-chosen id: a retry with the same id returns the first reply.' }),
  ),
})

export const SendMsgReply = Type.Object({
  msg_id: Id('The message id.'),
  time: UnixSeconds('When the server stored it (UNIX seconds).'),
})
