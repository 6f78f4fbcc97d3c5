// Direct messages. A send is one transaction: the contact check (a share lock, so a
// concurrent del_contact waits), the message row and the recipient's log entry; the
// caller is answered only after it committed.
import { ContactStatus, getContactStatus } from '../data/contacts.js'
import { findMessageByClientId, insertMessage } from '../data/messages.js'
import { appendEvent } from '../data/events.js'
import { BadRequest, NotFriends } from '../errors.js'
import type { ServiceDeps } from './deps.js'

export function createMessages({ db, config, channel }: ServiceDeps) {
  return {
    async send(senderId: number, message: { toUid: number; text: string; clientMsgId?: string }) {
      if ([...message.text].length > config.maxMessageChars) {
        throw new BadRequest(`Message longer than ${config.maxMessageChars} characters`)
      }
      const stored = await db.transaction(async (trx) => {
        if (message.clientMsgId !== undefined) {
          const earlier = await findMessageByClientId(trx, senderId, message.clientMsgId)
          if (earlier) return earlier
        }
        const status = await getContactStatus(trx, senderId, message.toUid, 'share')
        if (status !== ContactStatus.friends) throw new NotFriends('You can only write to accepted contacts')
        const inserted = await insertMessage(trx, { senderId, recipientId: message.toUid, text: message.text, clientMsgId: message.clientMsgId })
        // Lost a race with a retry that used the same client_msg_id: answer with its message.
        if (!inserted) return (await findMessageByClientId(trx, senderId, message.clientMsgId!))!
        await appendEvent(trx, channel, { userId: message.toUid, actorId: senderId, type: 'message', messageId: inserted.id })
        return inserted
      })
      return { msg_id: stored.id, time: stored.time }
    },
  }
}

export type Messages = ReturnType<typeof createMessages>
