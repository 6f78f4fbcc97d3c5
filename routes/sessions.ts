// Sessions (PROTOCOL A.2 and part B): logout of one or all sessions, token renewal, the
// list of my sessions, password change. Logout of any kind takes effect at once on every
// server process (src/event-log/ revokeSessions).
import { commandsOf } from './command.js'
import { ChangePasswordBody, ListSessionsReply, LogoutAllBody, LogoutAllReply, LogoutSessionBody, NoFields, RenewTokenReply } from '../src/schemas/accounts.js'
import { Empty } from '../src/schemas/common.js'
import { sessionReply } from '../src/services/accounts.js'

const command = commandsOf('sessions')

export const logout = command({
  name: 'logout',
  summary: 'Log out: revoke this session',
  description: 'The token is refused from then on by every server process; held polls of the session end with 401.',
  body: NoFields,
  reply: Empty,
  run: async ({ app, session }) => {
    await app.services.accounts.logout(session.sessionId)
    return {}
  },
})

export const renewToken = command({
  name: 'renew_token',
  summary: 'A new token for this session',
  description: 'The session now lives SESSION_TTL_SECONDS from now; the old token keeps working until it expires or the session ends.',
  body: NoFields,
  reply: RenewTokenReply,
  run: async ({ app, session }) => ({ session: sessionReply(await app.services.accounts.renew(session.userId, session.sessionId)) }),
})

export const listSessions = command({
  name: 'list_sessions',
  summary: 'My live sessions',
  body: NoFields,
  reply: ListSessionsReply,
  run: async ({ app, session }) => ({
    sessions: (await app.services.accounts.sessions(session.userId)).map((s) => ({ ...s, current: s.session_key === session.sessionId })),
  }),
})

export const logoutSession = command({
  name: 'logout_session',
  summary: 'End one of my sessions',
  description: '404 when you have no such live session.',
  body: LogoutSessionBody,
  reply: Empty,
  errors: [404],
  run: async ({ app, session }, body) => {
    await app.services.accounts.logoutSession(session.userId, body.session_key)
    return {}
  },
})

export const logoutAll = command({
  name: 'logout_all',
  summary: 'End all my sessions',
  description: 'All of them, this one included unless `keep_current`.',
  body: LogoutAllBody,
  reply: LogoutAllReply,
  run: async ({ app, session }, body) => ({
    ended: await app.services.accounts.logoutAll(session.userId, body.keep_current ? session.sessionId : undefined),
  }),
})

export const changePassword = command({
  name: 'change_password',
  summary: 'Change my password',
  description: 'Needs the current password (401 when wrong). Every other session ends; this one stays.',
  body: ChangePasswordBody,
  reply: Empty,
  run: async ({ app, session }, body) => {
    await app.services.accounts.changePassword(session.userId, session.sessionId, body.old_password, body.new_password)
    return {}
  },
})
