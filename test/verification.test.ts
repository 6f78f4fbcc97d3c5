// E-mail verification (REQUIRE_EMAIL_VERIFICATION), through HTTP with a real SMTP server
// on 127.0.0.1: registration mails a 6-digit code from MAIL_FROM; login answers 403
// `email_unverified` (only once the password matched) until `verify`; then login works by
// login and by e-mail in any case. Codes expire after EMAIL_CODE_TTL_SECONDS, work once,
// die after EMAIL_CODE_MAX_ATTEMPTS wrong tries; resend_code is limited to one mail per
// EMAIL_RESEND_INTERVAL_SECONDS and EMAIL_MAX_SENDS_PER_HOUR per hour (429 + Retry-After)
// and replaces the pending code; a mail that fails is a 503 and counts for nothing.
// resend_code answers {} for unknown accounts.
// Without SMTP_URL the mail lands in DATA_DIR/outbox as an .eml file. Without the setting,
// an e-mail address changes nothing about login. Time is moved by a ManualClock, never slept.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { SMTPServer } from 'smtp-server'
import t, { type Test } from 'tap'
import type { App } from '../src/app.js'
import { ManualClock } from '../src/clock.js'
import { build, call, eventually, uniqueLogin, wiki } from './helper.js'
import { freeLoopbackPort } from '../src/embedded-database.js'

const PASSWORD = 'secret1'
const MAIL_FROM = 'verify-test@messenger.test'
const CODE_TTL_MS = 600_000 // EMAIL_CODE_TTL_SECONDS
const MAX_ATTEMPTS = 5 // EMAIL_CODE_MAX_ATTEMPTS
const RESEND_INTERVAL_MS = 60_000 // EMAIL_RESEND_INTERVAL_SECONDS
const MAX_SENDS_PER_HOUR = 5 // EMAIL_MAX_SENDS_PER_HOUR
const HOUR_MS = 3600_000

// ---------------------------------------------------------------------------------------
// A real SMTP server for the whole file; every mail it accepts is kept until a test takes it.

interface DeliveredMail {
  /** Envelope sender (MAIL FROM). */
  from: string
  /** Envelope recipients (RCPT TO), lower case. */
  to: string[]
  /** The message as delivered: headers and body. */
  raw: string
}

const inbox: DeliveredMail[] = []

const smtp = new SMTPServer({
  authOptional: true,
  disabledCommands: ['STARTTLS'],
  logger: false,
  onData(stream, session, callback) {
    const chunks: Buffer[] = []
    stream.on('data', (chunk: Buffer) => chunks.push(chunk))
    stream.on('error', callback)
    stream.on('end', () => {
      const { mailFrom, rcptTo } = session.envelope
      inbox.push({
        from: mailFrom ? mailFrom.address : '',
        to: rcptTo.map((r) => r.address.toLowerCase()),
        raw: Buffer.concat(chunks).toString('utf8'),
      })
      callback()
    })
  },
})
await new Promise<void>((resolve, reject) => {
  smtp.once('error', reject)
  smtp.listen(0, '127.0.0.1', () => resolve())
})
const SMTP_URL = `smtp://127.0.0.1:${(smtp.server.address() as AddressInfo).port}`
t.teardown(() => new Promise<void>((resolve) => smtp.close(() => resolve())))

/** Takes the next mail to `address` out of the inbox, waiting for it up to `timeoutMs`. */
async function nextMail(address: string, timeoutMs = 5000): Promise<DeliveredMail> {
  const index = await eventually(() => 1 + inbox.findIndex((mail) => mail.to.includes(address.toLowerCase())), { what: `a mail to ${address}`, timeoutMs, everyMs: 10 })
  return inbox.splice(index - 1, 1)[0]!
}

/**
 * Mails to `address` still in the inbox. The app awaits the SMTP server's acceptance before
 * it answers, so once a reply is in, any mail it sent is here already.
 */
function pendingMails(address: string): number {
  return inbox.filter((mail) => mail.to.includes(address.toLowerCase())).length
}

/** The 6-digit code of a verification mail (raw message text, soft line breaks undone). */
function codeOf(raw: string): string {
  const match = /Your verification code is (\d{6})\b/.exec(raw.replace(/=\r?\n/g, ''))
  if (!match) throw new Error(`no verification code in the mail:\n${raw}`)
  return match[1]!
}

/** A 6-digit code that is surely not `code`. */
function wrongCode(code: string, offset = 1): string {
  return String((Number(code) + offset) % 1_000_000).padStart(6, '0')
}

// ---------------------------------------------------------------------------------------

type Reply = { status: number; body: any; headers: Record<string, unknown> }

function smtpApp(t: Test, clock?: ManualClock): Promise<App> {
  return build(t, { requireEmailVerification: true, smtpUrl: SMTP_URL, mailFrom: MAIL_FROM }, undefined, clock)
}

function newAccount(prefix = 'v') {
  const login = uniqueLogin(prefix)
  return { login, email: `${login}@example.test`, password: PASSWORD }
}

/** Registers with an e-mail address and returns the uid and the code from the first mail. */
async function registerWithCode(t: Test, app: App, account: { login: string; email: string; password: string }) {
  const registered = await call(app, 'registration', account)
  t.equal(registered.status, 200, `registration of ${account.login}: 200`)
  const code = codeOf((await nextMail(account.email)).raw)
  return { uid: registered.body.uid as number, code }
}

function isError(t: Test, response: Reply, status: number, error: string, what: string) {
  t.equal(response.status, status, `${what}: ${status}`)
  t.match(response.body, { error, message: String }, `${what}: ${error}`)
}

function isRateLimited(t: Test, response: Reply, retryAfter: number, what: string) {
  isError(t, response, 429, 'rate_limited', what)
  t.equal(response.headers['retry-after'], String(retryAfter), `${what}: Retry-After ${retryAfter}`)
}

// ---------------------------------------------------------------------------------------

t.test('full flow: registration mails a code; login waits for verify, then works by login and by e-mail in any case', async (t) => {
  const app = await smtpApp(t)
  const login = uniqueLogin('flow')
  const email = `${login}.Mixed@Example.TEST`

  const registered = await call(app, 'registration', { login, password: PASSWORD, email })
  t.equal(registered.status, 200, 'registration: 200')
  t.same(Object.keys(registered.body).sort(), ['uid', 'verification_required'], 'registration reply: uid and verification_required only')
  t.type(registered.body.uid, 'number', 'uid is a number')
  t.equal(registered.body.verification_required, true, 'verification is required')
  const uid = registered.body.uid as number

  const mail = await nextMail(email)
  t.same(mail.to, [email.toLowerCase()], 'the mail goes to the registered address, and to it alone')
  t.equal(mail.from, MAIL_FROM, 'envelope sender is MAIL_FROM')
  t.match(mail.raw, new RegExp(`^From: .*${MAIL_FROM.replace(/\./g, '\\.')}`, 'mi'), 'From header is MAIL_FROM')
  t.match(mail.raw, /^To: .*@Example\.TEST/im, 'To header is the registered address')
  t.match(mail.raw, /^Subject: Your verification code: \d{6}\r?$/im, 'the subject carries the code')
  const code = codeOf(mail.raw)
  t.match(mail.raw, new RegExp(`^Subject: .*${code}`, 'mi'), 'subject and body carry the same code')
  t.equal(pendingMails(email), 0, 'exactly one mail for a registration')

  // Before verify: a wrong password is the usual 401, never revealing the pending state.
  isError(t, await call(app, 'authorization', { login, password: 'wrong-password' }), 401, 'unauthorized', 'unverified, wrong password')
  isError(t, await call(app, 'authorization', { email, password: 'wrong-password' }), 401, 'unauthorized', 'unverified by e-mail, wrong password')
  isError(t, await call(app, 'authorization', { login, password: PASSWORD }), 403, 'email_unverified', 'unverified, right password')
  isError(t, await call(app, 'authorization', { email, password: PASSWORD }), 403, 'email_unverified', 'unverified by e-mail, right password')

  const verified = await call(app, 'verify', { login, code })
  t.equal(verified.status, 200, 'verify with the mailed code: 200')
  t.same(verified.body, { uid }, 'verify answers the uid')

  const byLogin = await call(app, 'authorization', { login, password: PASSWORD })
  t.equal(byLogin.status, 200, 'authorization by login after verify: 200')
  t.equal(byLogin.body.session.uid, uid, 'the session is of the registered user')
  t.type(byLogin.body.session.token, 'string', 'with a token')

  for (const variant of [email, email.toLowerCase(), email.toUpperCase()]) {
    const byEmail = await call(app, 'authorization', { email: variant, password: PASSWORD })
    t.equal(byEmail.status, 200, `authorization by e-mail "${variant}": 200`)
    t.equal(byEmail.body.session?.uid, uid, `authorization by e-mail "${variant}": the same user`)
  }
  isError(t, await call(app, 'authorization', { email, password: 'wrong-password' }), 401, 'unauthorized', 'verified by e-mail, wrong password')

  const me = await call(app, 'whoami', {}, byLogin.body.session.token)
  t.equal(me.status, 200, 'whoami: 200')
  t.match(me.body.user, { uid, username: login, email, email_verified: true }, 'whoami shows the address (as given) and that it is verified')
  t.equal(pendingMails(email), 0, 'no further mail was sent')
})

t.test('registration and login input: e-mail required, unique in any case; login or e-mail, exactly one', async (t) => {
  const app = await smtpApp(t)

  const noEmail = await call(app, 'registration', { login: uniqueLogin('noemail'), password: PASSWORD })
  isError(t, noEmail, 400, 'bad_request', 'registration without e-mail while verification is required')

  const first = newAccount('dup')
  const { uid } = await registerWithCode(t, app, first)
  const second = { login: uniqueLogin('dup'), password: PASSWORD, email: first.email.toUpperCase() }
  isError(t, await call(app, 'registration', second), 409, 'email_taken', 'the same address in another case')
  t.equal(pendingMails(first.email), 0, 'a refused registration sends no mail')
  // The login of the refused registration stays free.
  const retried = await call(app, 'registration', { ...second, email: `${second.login}@example.test` })
  t.equal(retried.status, 200, 'the refused login registers with another address')
  t.not(retried.body.uid, uid, 'as a new user')
  await nextMail(`${second.login}@example.test`)

  const both = await call(app, 'authorization', { login: first.login, email: first.email, password: PASSWORD })
  isError(t, both, 400, 'bad_request', 'authorization with both login and e-mail')
  isError(t, await call(app, 'authorization', { password: PASSWORD }), 400, 'bad_request', 'authorization with neither login nor e-mail')
  isError(t, await call(app, 'verify', { login: first.login, email: first.email, code: '123456' }), 400, 'bad_request', 'verify with both')
  isError(t, await call(app, 'verify', { code: '123456' }), 400, 'bad_request', 'verify with neither')
  isError(t, await call(app, 'resend_code', { login: first.login, email: first.email }), 400, 'bad_request', 'resend_code with both')
  isError(t, await call(app, 'resend_code', {}), 400, 'bad_request', 'resend_code with neither')
  isError(t, await call(app, 'verify', { login: first.login, code: '12345' }), 400, 'bad_request', 'verify with a 5-digit code')
  t.equal(pendingMails(first.email), 0, 'none of these sent a mail')
})

t.test('a code expires after EMAIL_CODE_TTL_SECONDS; a resent code works', async (t) => {
  const clock = new ManualClock()
  const app = await smtpApp(t, clock)
  const account = newAccount('expiry')
  const { uid, code } = await registerWithCode(t, app, account)

  clock.advance(CODE_TTL_MS - 1000)
  // A wrong code just before expiry: counted, but the code stays valid.
  isError(t, await call(app, 'verify', { login: account.login, code: wrongCode(code) }), 400, 'invalid_code', 'a wrong code before expiry')
  clock.advance(1000)
  isError(t, await call(app, 'verify', { login: account.login, code }), 400, 'code_expired', 'the right code at exactly the TTL')
  clock.advance(60_000)
  isError(t, await call(app, 'verify', { login: account.login, code }), 400, 'code_expired', 'the right code past the TTL')
  isError(t, await call(app, 'authorization', { login: account.login, password: PASSWORD }), 403, 'email_unverified', 'still unverified')

  const resent = await call(app, 'resend_code', { login: account.login })
  t.equal(resent.status, 200, 'resend_code: 200')
  t.same(resent.body, {}, 'resend_code answers {}')
  const fresh = codeOf((await nextMail(account.email)).raw)
  isError(t, await call(app, 'verify', { login: account.login, code }), 400, 'invalid_code', 'the expired code is replaced')
  const verified = await call(app, 'verify', { email: account.email.toUpperCase(), code: fresh })
  t.equal(verified.status, 200, 'the new code works (named by e-mail in another case)')
  t.same(verified.body, { uid }, 'verify answers the uid')
  t.equal((await call(app, 'authorization', { login: account.login, password: PASSWORD })).status, 200, 'login works')
})

t.test('a code works once', async (t) => {
  const app = await smtpApp(t)
  const account = newAccount('once')
  const { uid, code } = await registerWithCode(t, app, account)

  const first = await call(app, 'verify', { login: account.login, code })
  t.equal(first.status, 200, 'first verify: 200')
  t.same(first.body, { uid }, 'first verify answers the uid')
  isError(t, await call(app, 'verify', { login: account.login, code }), 400, 'invalid_code', 'the same code again')
  isError(t, await call(app, 'verify', { email: account.email, code }), 400, 'invalid_code', 'the same code again, by e-mail')

  // A verified account gets no more codes, and stays verified.
  const resent = await call(app, 'resend_code', { login: account.login })
  t.equal(resent.status, 200, 'resend_code for a verified account: 200')
  t.same(resent.body, {}, 'resend_code for a verified account answers {}')
  t.equal(pendingMails(account.email), 0, 'and mails nothing')
  t.equal((await call(app, 'authorization', { login: account.login, password: PASSWORD })).status, 200, 'login works')
})

t.test('EMAIL_CODE_MAX_ATTEMPTS wrong codes kill the code; a resent code works', async (t) => {
  const clock = new ManualClock()
  const app = await smtpApp(t, clock)
  const account = newAccount('tries')
  const { uid, code } = await registerWithCode(t, app, account)

  for (let i = 1; i <= MAX_ATTEMPTS; i++) {
    const wrong = await call(app, 'verify', { login: account.login, code: wrongCode(code, i) })
    isError(t, wrong, 400, 'invalid_code', `wrong code #${i}`)
  }
  isError(t, await call(app, 'verify', { login: account.login, code }), 400, 'too_many_attempts', 'the right code after the last try')
  isError(t, await call(app, 'verify', { email: account.email, code }), 400, 'too_many_attempts', 'the right code by e-mail, too')
  isError(t, await call(app, 'authorization', { login: account.login, password: PASSWORD }), 403, 'email_unverified', 'still unverified')

  clock.advance(RESEND_INTERVAL_MS)
  const resent = await call(app, 'resend_code', { email: account.email })
  t.equal(resent.status, 200, 'resend_code by e-mail: 200')
  const fresh = codeOf((await nextMail(account.email)).raw)
  // The new code starts with a full set of tries.
  for (let i = 1; i < MAX_ATTEMPTS; i++) {
    isError(t, await call(app, 'verify', { login: account.login, code: wrongCode(fresh, i) }), 400, 'invalid_code', `new code, wrong try #${i}`)
  }
  const verified = await call(app, 'verify', { login: account.login, code: fresh })
  t.equal(verified.status, 200, `the fresh code works after ${MAX_ATTEMPTS - 1} wrong tries`)
  t.same(verified.body, { uid }, 'verify answers the uid')
})

t.test('resend_code: one mail per interval, EMAIL_MAX_SENDS_PER_HOUR per hour, with Retry-After', async (t) => {
  const clock = new ManualClock()
  const app = await smtpApp(t, clock)
  const account = newAccount('resend')
  const { uid, code: first } = await registerWithCode(t, app, account) // send 1 of the hour

  isRateLimited(t, await call(app, 'resend_code', { login: account.login }), RESEND_INTERVAL_MS / 1000, 'resend right after registration')
  clock.advance(RESEND_INTERVAL_MS - 1000)
  isRateLimited(t, await call(app, 'resend_code', { email: account.email }), 1, 'resend a second before the interval ends')
  t.equal(pendingMails(account.email), 0, 'refused resends mail nothing')
  // The refused resends left the pending code alone.
  isError(t, await call(app, 'verify', { login: account.login, code: wrongCode(first) }), 400, 'invalid_code', 'a wrong code still counts')

  clock.advance(1000)
  const resent = await call(app, 'resend_code', { login: account.login })
  t.equal(resent.status, 200, 'resend once the interval passed: 200')
  t.same(resent.body, {}, 'resend answers {}')
  const second = codeOf((await nextMail(account.email)).raw)
  isError(t, await call(app, 'verify', { login: account.login, code: first }), 400, 'invalid_code', 'the replaced code no longer works')

  let latest = second
  for (let send = 3; send <= MAX_SENDS_PER_HOUR; send++) {
    clock.advance(RESEND_INTERVAL_MS)
    const again = await call(app, 'resend_code', { login: account.login })
    t.equal(again.status, 200, `send #${send} within the hour: 200`)
    latest = codeOf((await nextMail(account.email)).raw)
  }
  // Sends 1..5 at 0, 60, 120, 180, 240 s of the hour; now 300 s.
  clock.advance(RESEND_INTERVAL_MS)
  const elapsed = RESEND_INTERVAL_MS * MAX_SENDS_PER_HOUR
  isRateLimited(t, await call(app, 'resend_code', { login: account.login }), (HOUR_MS - elapsed) / 1000, `send #${MAX_SENDS_PER_HOUR + 1} within the hour`)
  clock.advance(HOUR_MS - elapsed - 1000)
  isRateLimited(t, await call(app, 'resend_code', { email: account.email }), 1, 'a second before the hour is over')
  t.equal(pendingMails(account.email), 0, 'the hourly limit mails nothing')

  clock.advance(1000)
  const afterHour = await call(app, 'resend_code', { login: account.login })
  t.equal(afterHour.status, 200, 'once the hour passed: 200')
  const fresh = codeOf((await nextMail(account.email)).raw)
  isError(t, await call(app, 'verify', { login: account.login, code: latest }), 400, 'invalid_code', 'the code before it no longer works')
  // A new hour: the interval applies again, the count started over.
  isRateLimited(t, await call(app, 'resend_code', { login: account.login }), RESEND_INTERVAL_MS / 1000, 'resend right after, in the new hour')
  const verified = await call(app, 'verify', { login: account.login, code: fresh })
  t.equal(verified.status, 200, 'the newest code works')
  t.same(verified.body, { uid }, 'verify answers the uid')
})

t.test('no probing: unknown logins and addresses get the answers known accounts get', async (t) => {
  const app = await smtpApp(t)
  const known = newAccount('known')
  const { code } = await registerWithCode(t, app, known)
  t.equal((await call(app, 'verify', { login: known.login, code })).status, 200, 'the known account is verified')

  const unknownLogin = uniqueLogin('ghost')
  const unknownEmail = `${unknownLogin}@example.test`

  // resend_code: {} whoever is named.
  for (const [what, body] of [
    ['unknown login', { login: unknownLogin }],
    ['unknown e-mail', { email: unknownEmail }],
    ['verified login', { login: known.login }],
    ['verified e-mail', { email: known.email }],
  ] as const) {
    const resent = await call(app, 'resend_code', body)
    t.equal(resent.status, 200, `resend_code, ${what}: 200`)
    t.same(resent.body, {}, `resend_code, ${what}: {}`)
  }
  // Repeated at once (inside the resend interval): still {} for an unknown account.
  const again = await call(app, 'resend_code', { login: unknownLogin })
  t.equal(again.status, 200, 'resend_code, unknown login again at once: 200')
  t.same(again.body, {}, 'resend_code, unknown login again at once: {}')
  t.equal(pendingMails(unknownEmail), 0, 'nothing mailed to the unknown address')
  t.equal(pendingMails(known.email), 0, 'nothing mailed to the verified address')

  // verify: a known account without a pending code and an unknown one answer alike.
  const knownVerify = await call(app, 'verify', { login: known.login, code: '123456' })
  isError(t, knownVerify, 400, 'invalid_code', 'verify, verified login')
  for (const [what, body] of [
    ['unknown login', { login: unknownLogin, code: '123456' }],
    ['unknown e-mail', { email: unknownEmail, code: '123456' }],
    ['verified e-mail', { email: known.email, code: '123456' }],
  ] as const) {
    const answer = await call(app, 'verify', body)
    isError(t, answer, 400, 'invalid_code', `verify, ${what}`)
    t.same(answer.body, knownVerify.body, `verify, ${what}: the very body a known account gets`)
  }
  // Many tries at an unknown account never turn into anything else.
  for (let i = 0; i < MAX_ATTEMPTS + 1; i++) await call(app, 'verify', { login: unknownLogin, code: '123456' })
  isError(t, await call(app, 'verify', { login: unknownLogin, code: '123456' }), 400, 'invalid_code', 'verify, unknown login after many tries')

  // A pending account gives the same status and code for a wrong code.
  const pending = newAccount('pending')
  const { code: pendingCode } = await registerWithCode(t, app, pending)
  isError(t, await call(app, 'verify', { login: pending.login, code: wrongCode(pendingCode) }), 400, 'invalid_code', 'verify, pending login, wrong code')

  // Login: unknown e-mail and wrong password are one and the same 401.
  isError(t, await call(app, 'authorization', { email: unknownEmail, password: PASSWORD }), 401, 'unauthorized', 'authorization, unknown e-mail')
  isError(t, await call(app, 'authorization', { login: unknownLogin, password: PASSWORD }), 401, 'unauthorized', 'authorization, unknown login')
})

t.test('without SMTP_URL the mail is written to DATA_DIR/outbox, and its code works', async (t) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'messenger-verification-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const app = await build(t, { requireEmailVerification: true, dataDir, mailFrom: MAIL_FROM })
  const account = newAccount('outbox')

  const registered = await call(app, 'registration', account)
  t.equal(registered.status, 200, 'registration: 200')
  t.equal(registered.body.verification_required, true, 'verification is required')
  t.equal(pendingMails(account.email), 0, 'nothing went to the SMTP server')

  const outbox = path.join(dataDir, 'outbox')
  const files = await readdir(outbox)
  t.equal(files.length, 1, 'one file in the outbox')
  t.match(files[0], /\.eml$/, 'an .eml file')
  const raw = await readFile(path.join(outbox, files[0]!), 'utf8')
  t.match(raw, new RegExp(`^To: ${account.email.replace(/\./g, '\\.')}$`, 'mi'), 'addressed to the registered address')
  t.match(raw, new RegExp(`^From: ${MAIL_FROM.replace(/\./g, '\\.')}$`, 'mi'), 'from MAIL_FROM')
  const code = codeOf(raw)

  isError(t, await call(app, 'authorization', { login: account.login, password: PASSWORD }), 403, 'email_unverified', 'unverified')
  const verified = await call(app, 'verify', { login: account.login, code })
  t.equal(verified.status, 200, 'verify with the code from the outbox: 200')
  t.same(verified.body, { uid: registered.body.uid }, 'verify answers the uid')
  t.equal((await call(app, 'authorization', { login: account.login, password: PASSWORD })).status, 200, 'login works')
})

t.test('without REQUIRE_EMAIL_VERIFICATION an address changes nothing about login', async (t) => {
  // SMTP is configured, so any mail sent would show up in the inbox.
  const app = await build(t, { smtpUrl: SMTP_URL, mailFrom: MAIL_FROM })
  const account = newAccount('plain')

  const registered = await call(app, 'registration', account)
  t.equal(registered.status, 200, 'registration with e-mail: 200')
  t.same(registered.body, { uid: registered.body.uid, verification_required: false }, 'verification is not required')
  t.equal(pendingMails(account.email), 0, 'no mail is sent')

  const byLogin = await call(app, 'authorization', { login: account.login, password: PASSWORD })
  t.equal(byLogin.status, 200, 'login at once by login')
  const byEmail = await call(app, 'authorization', { email: account.email.toUpperCase(), password: PASSWORD })
  t.equal(byEmail.status, 200, 'login at once by e-mail, any case')
  t.equal(byEmail.body.session?.uid, registered.body.uid, 'the same user')
  const me = await call(app, 'whoami', {}, byLogin.body.session.token)
  t.match(me.body.user, { email: account.email, email_verified: false }, 'whoami: the address, not verified')

  // Verifying later changes the profile whoami keeps in memory.
  t.equal((await call(app, 'resend_code', { login: account.login })).status, 200, 'a code can still be asked for')
  const code = codeOf((await nextMail(account.email)).raw)
  t.equal((await call(app, 'verify', { login: account.login, code })).status, 200, 'and verified')
  const after = await call(app, 'whoami', {}, byLogin.body.session.token)
  t.match(after.body.user, { email: account.email, email_verified: true }, 'whoami: verified at once')

  const bare = await call(app, 'registration', { login: uniqueLogin('plain'), password: PASSWORD })
  t.equal(bare.status, 200, 'registration without e-mail: 200')
  t.equal(bare.body.verification_required, false, 'verification is not required')
  isError(t, await call(app, 'registration', { ...account, login: uniqueLogin('plain') }), 409, 'email_taken', 'the address is still unique')
})

t.test('wiki dialect: a wrong code is a 400 with a bare JSON string', async (t) => {
  const app = await smtpApp(t)
  const account = newAccount('wiki')
  const { uid, code } = await registerWithCode(t, app, account)

  const wrong = await wiki(app, 'verify', { login: account.login, code: wrongCode(code) })
  t.equal(wrong.status, 400, 'wrong code (wiki): 400')
  t.type(wrong.body, 'string', 'wrong code (wiki): the error is a bare JSON string')
  t.ok(wrong.raw.startsWith('"'), 'the raw body is a JSON string literal')
  t.match(String(wrong.headers['content-type']), /^application\/json/, 'with a JSON content type')

  const unverified = await wiki(app, 'authorization', { login: account.login, password: PASSWORD })
  t.equal(unverified.status, 403, 'login before verify (wiki): 403')
  t.type(unverified.body, 'string', 'login before verify (wiki): a bare JSON string')

  const right = await wiki(app, 'verify', { login: account.login, code })
  t.equal(right.status, 200, 'the right code (wiki): 200')
  t.same(right.body, { uid }, 'the right code (wiki): {uid}')
  t.equal((await wiki(app, 'authorization', { login: account.login, password: PASSWORD })).status, 200, 'login (wiki) works')
})

t.test('a mail that cannot be sent: 503, and it does not count against the resend limit', async (t) => {
  // An SMTP port nothing listens on.
  const closedPort = await freeLoopbackPort()
  const app = await build(t, { requireEmailVerification: true, smtpUrl: `smtp://127.0.0.1:${closedPort}`, mailFrom: MAIL_FROM })
  const account = newAccount('nosmtp')
  const registered = await call(app, 'registration', account)
  t.equal(registered.status, 200, 'the account is created even though its first mail failed')
  const retried = await call(app, 'resend_code', { login: account.login })
  isError(t, retried, 503, 'unavailable', 'resend while SMTP is down (not 429: the failed mail did not count)')
  isError(t, await call(app, 'resend_code', { login: account.login }), 503, 'unavailable', 'and again')
  isError(t, await call(app, 'authorization', { login: account.login, password: PASSWORD }), 403, 'email_unverified', 'still unverified')
})
