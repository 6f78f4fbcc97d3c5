// Contacts (PROTOCOL A.4): the list, requests and replies, removal. Each change is told to
// the other side through its event log.
import { commandsOf } from './command.js'
import { Empty } from '../src/schemas/common.js'
import {
  BlockBody,
  ListBlockedReply,
  AddContactReplyBody,
  AddContactReplyReply,
  AddContactRequestBody,
  AddContactRequestReply,
  DelContactBody,
} from '../src/schemas/contacts.js'
import { GetDataReply, NoFields } from '../src/schemas/accounts.js'

const command = commandsOf('contacts')

export const getData = command({
  name: 'get_data',
  summary: 'My contact list',
  body: NoFields,
  reply: GetDataReply,
  run: async ({ app, session }) => ({ contacts: await app.services.accounts.contacts(session.userId), settings: [] }),
  // The desktop client crashes on an empty array here.
  wiki: (reply) => ({ ...reply, contacts: reply.contacts.length > 0 ? reply.contacts : null }),
})


export const addContactRequest = command({
  name: 'add_contact_request',
  summary: 'Ask a user to become a contact',
  description:
    'Asking someone who already asked you makes you friends (status 1). Asking again after a denial is allowed. ' +
    'The other side gets a `contact_request` (or `contact_accepted`) event.',
  body: AddContactRequestBody,
  reply: AddContactRequestReply,
  errors: [404, 409],
  run: ({ app, session }, body) => app.services.contacts.request(session.userId, body.login),
})

export const addContactReply = command({
  name: 'add_contact_reply',
  summary: 'Accept or deny a contact request, or cancel your own',
  description: 'Status 1 accepts and 2 denies an incoming request; 3 withdraws your outgoing one. The other side gets an event.',
  body: AddContactReplyBody,
  reply: AddContactReplyReply,
  errors: [404, 409],
  run: ({ app, session }, body) => app.services.contacts.reply(session.userId, body.contact_uid, body.status as 1 | 2 | 3),
})

export const delContact = command({
  name: 'del_contact',
  summary: 'Remove a contact for both sides',
  description: 'The other side gets a `contact_deleted` event.',
  body: DelContactBody,
  reply: Empty,
  errors: [404],
  run: async ({ app, session }, body) => {
    await app.services.contacts.remove(session.userId, { contactUid: body.contact_uid, login: body.login })
    return {}
  },
})

export const blockUser = command({
  name: 'block_user',
  summary: 'Block a user',
  description:
    'They can no longer send you contact requests or direct messages, call you, invite you to rooms or see your presence ' +
    '(nor you theirs), and they cannot tell: each attempt gets the answer anyone else would get (a message or a call: ' +
    '403 `not_friends`; a request or an invitation: as if sent) and reaches nobody. History stays. Blocking twice is blocking once.',
  body: BlockBody,
  reply: Empty,
  errors: [404],
  run: async ({ app, session }, body) => (await app.services.blocks.block(session.userId, body.uid), {}),
})

export const unblockUser = command({
  name: 'unblock_user',
  summary: 'Unblock a user',
  description: 'What your contact status allows works again; what they tried while blocked is not delivered later.',
  body: BlockBody,
  reply: Empty,
  errors: [404],
  run: async ({ app, session }, body) => (await app.services.blocks.unblock(session.userId, body.uid), {}),
})

export const listBlocked = command({
  name: 'list_blocked',
  summary: 'The users I blocked',
  body: NoFields,
  reply: ListBlockedReply,
  run: ({ app, session }) => app.services.blocks.list(session.userId),
})
