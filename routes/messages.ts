import { defineCommand } from './command.js'
import { SendMsgBody, SendMsgReply } from '../src/schemas/messages.js'

// send_msg: answered 200 only after the message and the recipient's log entry committed.
// Idempotent per (sender, client_msg_id): a retry, even one racing the first request,
// returns the first message's reply and stores nothing.
export const sendMsg = defineCommand({
  name: 'send_msg',
  summary: 'Send a message to a contact',
  description:
    'Only to an accepted contact (else 403 `not_friends`). Text of 1 to MAX_MESSAGE_CHARS (4096) characters. ' +
    'With `client_msg_id`, a retry returns the first reply and stores nothing new.',
  tags: ['messages'],
  authenticated: true,
  body: SendMsgBody,
  reply: SendMsgReply,
  errors: [403],
  run: ({ app, session }, body) =>
    app.services.messages.send(session.userId, { toUid: body.to_uid, text: body.msg, clientMsgId: body.client_msg_id }),
})
