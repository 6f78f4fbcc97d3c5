// Accounts (PROTOCOL A.3 and part B): registration with optional e-mail verification,
// and login by login or by e-mail, which opens a session (routes/sessions.ts).
import { commandsOf } from './command.js'
import { AuthorizationBody, AuthorizationReply, RegistrationBody, RegistrationReply, ResendCodeBody, VerifyBody, VerifyReply } from '../src/schemas/accounts.js'
import { Empty } from '../src/schemas/common.js'
import { BadRequest } from '../src/errors.js'
import type { AccountRef } from '../src/services/verification.js'
import { sessionReply } from '../src/services/accounts.js'

/** `login` or `email`, exactly one. */
function accountRef(body: { login?: string; email?: string }): AccountRef {
  if ((body.login === undefined) === (body.email === undefined)) throw new BadRequest('Name the account with login or email (one of them)')
  return body.login !== undefined ? { login: body.login } : { email: body.email! }
}

const command = commandsOf('accounts')

export const registration = command({
  name: 'registration',
  summary: 'Create an account',
  description:
    'Logins are unique regardless of case (409 `login_taken`), e-mail addresses too (409 `email_taken`). With ' +
    'REQUIRE_EMAIL_VERIFICATION, `email` is required, a 6-digit code is mailed to it and `authorization` answers 403 ' +
    '`email_unverified` until `verify`.',
  public: true,
  body: RegistrationBody,
  reply: RegistrationReply,
  limit: 'registration',
  errors: [409],
  run: async ({ app }, body) => {
    const { uid, verificationRequired } = await app.services.accounts.register(body)
    return { uid, verification_required: verificationRequired }
  },
})

export const authorization = command({
  name: 'authorization',
  aliases: ['authorisation'],
  summary: 'Log in: open a session',
  description:
    'By `login` or by `email`. Returns the session (send `token` as a bearer token, or echo the whole `session` object ' +
    'in the body) and the current end of the event log. Wrong login, unknown e-mail and wrong password get one and the ' +
    'same 401. After LOGIN_MAX_FAILURES failures within LOGIN_FAILURE_WINDOW_SECONDS the account answers 429 with ' +
    'Retry-After. 403 `email_unverified` while the account waits for its e-mail code.',
  public: true,
  body: AuthorizationBody,
  reply: AuthorizationReply,
  errors: [401, 403],
  run: async ({ app }, body) => {
    const session = await app.services.accounts.authorize(accountRef(body), body.password)
    return { session: sessionReply(session), cursor: session.cursor }
  },
})

export const verify = command({
  name: 'verify',
  summary: 'Confirm an e-mail address with the mailed code',
  description:
    'Codes expire after EMAIL_CODE_TTL_SECONDS (600), work once, and die after EMAIL_CODE_MAX_ATTEMPTS (5) wrong tries. ' +
    'Errors: 400 `invalid_code`, `code_expired`, `too_many_attempts` (then ask for a new code with `resend_code`).',
  public: true,
  body: VerifyBody,
  reply: VerifyReply,
  run: async ({ app }, body) => ({ uid: await app.services.verification.verify(accountRef(body), body.code) }),
})

export const resendCode = command({
  name: 'resend_code',
  summary: 'Mail a new verification code',
  description:
    'Replaces the pending code. At most one mail per EMAIL_RESEND_INTERVAL_SECONDS (60) and EMAIL_MAX_SENDS_PER_HOUR (5) ' +
    'per hour for an account, else 429 with Retry-After. Answers `{}` for unknown or already verified accounts too.',
  public: true,
  body: ResendCodeBody,
  reply: Empty,
  run: async ({ app }, body) => {
    await app.services.verification.resend(accountRef(body))
    return {}
  },
})
