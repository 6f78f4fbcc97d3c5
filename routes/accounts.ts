import { defineCommand } from './command.js'
import { AuthorizationReply, Credentials, GetDataBody, GetDataReply, LogoutBody, RegistrationReply } from '../src/schemas/accounts.js'
import { Empty } from '../src/schemas/common.js'

export const registration = defineCommand({
  name: 'registration',
  summary: 'Create an account',
  description: 'Logins are unique regardless of case; 409 `login_taken` when used.',
  tags: ['accounts'],
  authenticated: false,
  body: Credentials,
  reply: RegistrationReply,
  errors: [409],
  run: async ({ app }, body) => ({ uid: await app.services.accounts.register(body.login, body.password) }),
})

export const authorization = defineCommand({
  name: 'authorization',
  aliases: ['authorisation'],
  summary: 'Log in: open a session',
  description:
    'Returns the session (send `token` as a bearer token, or echo the whole `session` object in the body) and the ' +
    'current end of the event log. A wrong login and a wrong password get the same 401. After LOGIN_MAX_FAILURES ' +
    'failures within LOGIN_FAILURE_WINDOW_SECONDS a login answers 429 with Retry-After.',
  tags: ['accounts'],
  authenticated: false,
  body: Credentials,
  reply: AuthorizationReply,
  errors: [401],
  run: async ({ app }, body) => {
    const session = await app.services.accounts.authorize(body.login, body.password)
    return {
      session: { uid: session.uid, contact_uid: session.uid, session_key: session.sessionId, token: session.token },
      cursor: session.cursor,
    }
  },
})

export const logout = defineCommand({
  name: 'logout',
  summary: 'Log out: revoke this session',
  description: 'The token is refused from then on by every server process; held polls of the session end with 401.',
  tags: ['accounts'],
  authenticated: true,
  body: LogoutBody,
  reply: Empty,
  run: async ({ app, session }) => {
    await app.services.accounts.logout(session.sessionId)
    return {}
  },
})

export const getData = defineCommand({
  name: 'get_data',
  summary: 'My contact list',
  tags: ['contacts'],
  authenticated: true,
  body: GetDataBody,
  reply: GetDataReply,
  run: async ({ app, session }) => ({ contacts: await app.services.accounts.contacts(session.userId), settings: [] }),
  // The desktop client crashes on an empty array here.
  wiki: (reply) => ({ ...reply, contacts: reply.contacts.length > 0 ? reply.contacts : null }),
})
