import { Type } from 'typebox'
import { Fields, Id, Login, UnixSeconds } from './common.js'

export const ContactStatus = Type.Integer({
  minimum: 0,
  maximum: 3,
  description: 'As the caller sees the other side: 0 outgoing request, 1 friends, 2 denied, 3 incoming request.',
})

export const AddContactRequestBody = Fields({ login: Login }, { examples: [{ login: 'bob' }] })
export const AddContactRequestReply = Type.Object(
  { contact_uid: Id('The other user.'), login: Type.String(), status: ContactStatus },
  { examples: [{ contact_uid: 2, login: 'bob', status: 0 }] },
)

export const AddContactReplyBody = Fields(
  {
    contact_uid: Id('The user who asked (or whom you asked, to cancel).'),
    status: Type.Integer({ minimum: 1, maximum: 3, description: '1 accept, 2 deny, 3 cancel your own outgoing request.' }),
  },
  { examples: [{ contact_uid: 1, status: 1 }] },
)
export const AddContactReplyReply = Type.Object({ contact_uid: Id('The other user.'), status: Type.Integer() }, { examples: [{ contact_uid: 1, status: 1 }] })

export const DelContactBody = Fields(
  {
    contact_uid: Type.Optional(Id('The contact to remove.')),
    login: Type.Optional(Login),
  },
  { alternatives: ['contact_uid', 'login'], description: 'Name the contact by `contact_uid` or by `login`.', examples: [{ contact_uid: 2 }] },
)

export const BlockBody = Fields({ uid: Id('The user.') }, { examples: [{ uid: 3 }] })

export const BlockedUser = Type.Object(
  { uid: Id('The user.'), login: Login, blocked_at: UnixSeconds('When you blocked them.') },
  { $id: 'BlockedUser', description: 'A user you blocked.' },
)
export const ListBlockedReply = Type.Object(
  { blocked: Type.Array(BlockedUser, { description: 'The latest blocked first.' }) },
  { examples: [{ blocked: [{ uid: 3, login: 'mallory', blocked_at: 1796283500 }] }] },
)
