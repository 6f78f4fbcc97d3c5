import { Type } from 'typebox'
import { CommandBody, Id, Login, Password } from './common.js'

export const Credentials = CommandBody({ login: Login, password: Password })

export const RegistrationReply = Type.Object({ uid: Id('The new user id.') })

export const Session = Type.Object({
  uid: Id('The user id.'),
  contact_uid: Id('The same as uid (the wiki name for it).'),
  session_key: Id('The session id: a number, not a secret.'),
  token: Type.String({ description: 'Bearer JWT: send as `Authorization: Bearer <token>` or inside `session`.' }),
})

export const AuthorizationReply = Type.Object({
  session: Session,
  cursor: Type.Integer({ minimum: 0, description: 'The current end of the user\'s event log: a new device polls from here.' }),
})

export const LogoutBody = CommandBody({})
export const GetDataBody = CommandBody({})

export const ContactEntry = Type.Object({
  friend_login: Type.String(),
  friend_uid: Id('The contact\'s user id.'),
  status: Type.Integer({ minimum: 0, maximum: 3, description: '0 outgoing, 1 friends, 2 denied, 3 incoming.' }),
})

export const GetDataReply = Type.Object({
  contacts: Type.Array(ContactEntry, { description: 'Empty list: `[]` here, `null` in the wiki dialect.' }),
  settings: Type.Array(Type.Unknown()),
})

export const UserQuery = Type.Object({ id: Id('The user id.') })
export const UserReply = Type.Object({
  user: Type.Object({ uid: Id('The user id.'), username: Type.String({ description: 'The login.' }) }),
})
