// Accounts and sessions (PROTOCOL A.3 and part B): registration with optional e-mail
// verification, login by login or e-mail, token renewal, sessions, password change.
// Logout of any kind takes effect at once on every server process (src/services/accounts.ts).
import { defineCommand } from './command.js'
import {
  AuthorizationBody,
  AuthorizationReply,
  ChangePasswordBody,
  GetDataBody,
  GetDataReply,
  ListSessionsBody,
  ListSessionsReply,
  LogoutAllBody,
  LogoutAllReply,
  LogoutBody,
  LogoutSessionBody,
  RegistrationBody,
  RegistrationReply,
  RenewTokenBody,
  RenewTokenReply,
  ResendCodeBody,
  VerifyBody,
  VerifyReply,
} from '../src/schemas/accounts.js'
import { Empty } from '../src/schemas/common.js'
import { BadRequest } from '../src/errors.js'
import type { AccountRef } from '../src/services/verification.js'

/** `login` or `email`, exactly one. */
function accountRef(body: { login?: string; email?: string }): AccountRef {
  if ((body.login === undefined) === (body.email === undefined)) throw new BadRequest('Name the account with login or email (one of them)')
  return body.login !== undefined ? { login: body.login } : { email: body.email! }
}

function sessionReply(session: { uid: number; sessionId: number; token: string }) {
  return { uid: session.uid, contact_uid: session.uid, session_key: session.sessionId, token: session.token }
}

export const registration = defineCommand({
  name: 'registration',
  summary: 'Create an account',
  description:
    'Logins are unique regardless of case (409 `login_taken`), e-mail addresses too (409 `email_taken`). With ' +
    'REQUIRE_EMAIL_VERIFICATION, `email` is required, a 6-digit code is mailed to it and `authorization` answers 403 ' +
    '`email_unverified` until `verify`.',
  tags: ['accounts'],
  authenticated: false,
  body: RegistrationBody,
  reply: RegistrationReply,
  limit: 'registration',
  errors: [409],
  run: async ({ app }, body) => {
    const { uid, verificationRequired } = await app.services.accounts.register(body)
    return { uid, verification_required: verificationRequired }
  },
})

export const authorization = defineCommand({
  name: 'authorization',
  aliases: ['authorisation'],
  summary: 'Log in: open a session',
  description:
    'By `login` or by `email`. Returns the session (send `token` as a bearer token, or echo the whole `session` object ' +
    'in the body) and the current end of the event log. Wrong login, unknown e-mail and wrong password get one and the ' +
    'same 401. After LOGIN_MAX_FAILURES failures within LOGIN_FAILURE_WINDOW_SECONDS the account answers 429 with ' +
    'Retry-After. 403 `email_unverified` while the account waits for its e-mail code.',
  tags: ['accounts'],
  authenticated: false,
  body: AuthorizationBody,
  reply: AuthorizationReply,
  errors: [401, 403],
  run: async ({ app }, body) => {
    const session = await app.services.accounts.authorize(accountRef(body), body.password)
    return { session: sessionReply(session), cursor: session.cursor }
  },
})

export const verify = defineCommand({
  name: 'verify',
  summary: 'Confirm an e-mail address with the mailed code',
  description:
    'Codes expire after EMAIL_CODE_TTL_SECONDS (600), work once, and die after EMAIL_CODE_MAX_ATTEMPTS (5) wrong tries. ' +
    'Errors: 400 `invalid_code`, `code_expired`, `too_many_attempts` (then ask for a new code with `resend_code`).',
  tags: ['accounts'],
  authenticated: false,
  body: VerifyBody,
  reply: VerifyReply,
  run: async ({ app }, body) => ({ uid: await app.services.verification.verify(accountRef(body), body.code) }),
})

export const resendCode = defineCommand({
  name: 'resend_code',
  summary: 'Mail a new verification code',
  description:
    'Replaces the pending code. At most one mail per EMAIL_RESEND_INTERVAL_SECONDS (60) and EMAIL_MAX_SENDS_PER_HOUR (5) ' +
    'per hour for an account, else 429 with Retry-After. Answers `{}` for unknown or already verified accounts too.',
  tags: ['accounts'],
  authenticated: false,
  body: ResendCodeBody,
  reply: Empty,
  run: async ({ app }, body) => {
    await app.services.verification.resend(accountRef(body))
    return {}
  },
})

export const logout = defineCommand({
  name: 'logout',
  summary: 'Log out: revoke this session',
  description: 'The token is refused from then on by every server process; held polls of the session end with 401.',
  tags: ['sessions'],
  authenticated: true,
  body: LogoutBody,
  reply: Empty,
  run: async ({ app, session }) => {
    await app.services.accounts.logout(session.sessionId)
    return {}
  },
})

export const renewToken = defineCommand({
  name: 'renew_token',
  summary: 'A new token for this session',
  description: 'The session now lives SESSION_TTL_SECONDS from now; the old token keeps working until it expires or the session ends.',
  tags: ['sessions'],
  authenticated: true,
  body: RenewTokenBody,
  reply: RenewTokenReply,
  run: async ({ app, session }) => ({ session: sessionReply(await app.services.accounts.renew(session.userId, session.sessionId)) }),
})

export const listSessions = defineCommand({
  name: 'list_sessions',
  summary: 'My live sessions',
  tags: ['sessions'],
  authenticated: true,
  body: ListSessionsBody,
  reply: ListSessionsReply,
  run: async ({ app, session }) => ({
    sessions: (await app.services.accounts.sessions(session.userId)).map((s) => ({ ...s, current: s.session_key === session.sessionId })),
  }),
})

export const logoutSession = defineCommand({
  name: 'logout_session',
  summary: 'End one of my sessions',
  description: '404 when you have no such live session.',
  tags: ['sessions'],
  authenticated: true,
  body: LogoutSessionBody,
  reply: Empty,
  errors: [404],
  run: async ({ app, session }, body) => {
    await app.services.accounts.logoutSession(session.userId, body.session_key)
    return {}
  },
})

export const logoutAll = defineCommand({
  name: 'logout_all',
  summary: 'End all my sessions',
  description: 'All of them, this one included unless `keep_current`.',
  tags: ['sessions'],
  authenticated: true,
  body: LogoutAllBody,
  reply: LogoutAllReply,
  run: async ({ app, session }, body) => ({
    ended: await app.services.accounts.logoutAll(session.userId, body.keep_current ? session.sessionId : undefined),
  }),
})

export const changePassword = defineCommand({
  name: 'change_password',
  summary: 'Change my password',
  description: 'Needs the current password (401 when wrong). Every other session ends; this one stays.',
  tags: ['sessions'],
  authenticated: true,
  body: ChangePasswordBody,
  reply: Empty,
  run: async ({ app, session }, body) => {
    await app.services.accounts.changePassword(session.userId, session.sessionId, body.old_password, body.new_password)
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
