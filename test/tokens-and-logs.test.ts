// Tokens, logs, limits and operations under hostile conditions:
// - a session token is refused (401, both dialects) after logout, after expiry (its `exp`
//   passed, or its session expired in the database), after change_password (the other
//   sessions), with a bad signature, with alg "none", when signed HS384/HS512 (or labelled
//   RS256) with the same secret, when malformed, and when it names another user's session;
// - no log line of a real server process at LOG_LEVEL=trace carries a password, a token,
//   the JWT secret or a verification code, through registration, verification, login,
//   bearer and body-session requests, change_password, renewals and failing requests;
// - the per-user send rate (both dialects, shared), the registrations per IP, the held
//   polls per user; /healthz, /readyz and the /metrics series.
// Slow and vanishing clients over a real socket are in vanishing-clients.test.ts.
import { createHmac, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import type { App } from '../src/app.js'
import { ManualClock } from '../src/clock.js'
import { TEST_JWT_SECRET, befriend, build, call, createTestSchema, eventually, signUp, sleep, uniqueLogin, wiki, type TestSession } from './helper.js'
import { spawnServerOnFreePort } from './processes.js'

type Json = Record<string, any>

// ---------------------------------------------------------------------------------------
// Tokens made by hand

const b64url = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
const HMAC: Record<string, string> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512', RS256: 'sha256' }

/** A JWT signed with HMAC (any of HS256/384/512; RS256 here means "labelled RS256, HMAC-signed"). */
function forge(payload: Json, { alg = 'HS256', secret = TEST_JWT_SECRET }: { alg?: string; secret?: string } = {}): string {
  const signing = `${b64url({ alg, typ: 'JWT' })}.${b64url(payload)}`
  if (!HMAC[alg]) return `${signing}.`
  return `${signing}.${createHmac(HMAC[alg]!, secret).update(signing).digest('base64url')}`
}

const now = () => Math.floor(Date.now() / 1000)
const claims = (session: TestSession, extra: Json = {}) => ({ uid: session.uid, sid: session.session_key, iat: now(), exp: now() + 600, ...extra })

/** The token gets 401 `unauthorized` on a modern command, GET /get_user and the wiki dialect. */
async function refused(t: Test, app: App, token: string, session: Pick<TestSession, 'uid' | 'session_key'>, what: string) {
  const modern = await call(app, 'whoami', {}, token)
  t.equal(modern.status, 401, `${what}: POST /whoami 401`)
  t.match(modern.body, { error: 'unauthorized', message: String }, `${what}: {error: "unauthorized"}`)
  const get = await app.inject({ method: 'GET', url: `/get_user?id=${session.uid}`, headers: { authorization: `Bearer ${token}` } })
  t.equal(get.statusCode, 401, `${what}: GET /get_user 401`)
  const inBody = await wiki(app, 'whoami', { session: { uid: session.uid, session_key: session.session_key, token } })
  t.equal(inBody.status, 401, `${what}: wiki dialect 401`)
  t.type(inBody.body, 'string', `${what}: wiki error is a string`)
}

async function accepted(t: Test, app: App, token: string, what: string) {
  const reply = await call(app, 'whoami', {}, token)
  t.equal(reply.status, 200, `${what}: accepted`)
}

async function logIn(app: App, login: string, password = 'secret1'): Promise<TestSession> {
  const reply = await call(app, 'authorization', { login, password })
  if (reply.status !== 200) throw new Error(`authorization failed: ${reply.status} ${JSON.stringify(reply.body)}`)
  const { uid, session_key, token } = reply.body.session
  return { uid, session_key, token, login }
}

t.test('tokens that must be refused', async (t) => {
  const clock = new ManualClock()
  const app = await build(t, { sessionTtlSeconds: 60 }, undefined, clock)
  const alice = await signUp(app)
  const bob = await signUp(app)

  t.test('control: a hand-made HS256 token for a live session is accepted', async (t) => {
    await accepted(t, app, forge(claims(alice)), 'HS256 with the secret')
  })

  t.test('after logout', async (t) => {
    const session = await logIn(app, alice.login)
    await accepted(t, app, session.token, 'before logout')
    t.equal((await call(app, 'logout', {}, session.token)).status, 200)
    await refused(t, app, session.token, session, 'after logout')
    await refused(t, app, forge(claims(session)), session, 'a fresh token for the logged-out session')
  })

  t.test('after expiry: the token\'s exp has passed', async (t) => {
    await refused(t, app, forge(claims(alice, { iat: now() - 120, exp: now() - 60 })), alice, 'exp a minute ago')
    await refused(t, app, forge(claims(alice, { iat: now() - 120, exp: now() - 1 })), alice, 'exp a second ago')
    await refused(t, app, forge(claims(alice, { nbf: now() + 300 })), alice, 'not valid before five minutes from now')
  })

  // Verified tokens are cached (src/plugins/auth.ts): the cache must not outlive `exp`,
  // which is read on the app's clock.
  t.test('after expiry: a token accepted (so remembered as verified) is refused once its exp passes', async (t) => {
    // A few seconds ahead of both clocks (the library checks exp against the system's too).
    const exp = Math.floor(Math.max(clock.now(), Date.now()) / 1000) + 5
    const shortLived = forge(claims(alice, { iat: exp - 5, exp }))
    await accepted(t, app, shortLived, 'before its exp')
    await accepted(t, app, shortLived, 'again, from the cache')
    clock.advance(exp * 1000 - 1 - clock.now())
    await accepted(t, app, shortLived, '1 ms before its exp')
    clock.advance(1)
    await refused(t, app, shortLived, alice, 'at its exp')
  })

  t.test('after expiry: the session expired in the database', async (t) => {
    const session = await logIn(app, alice.login)
    await app.db('sessions').where({ id: session.session_key }).update({ expires_at: app.db.raw("now() - interval '1 second'") })
    await refused(t, app, session.token, session, 'session expired')
    t.equal((await call(app, 'renew_token', {}, session.token)).status, 401, 'and it cannot be renewed')
  })

  t.test('after change_password: every other session', async (t) => {
    const login = uniqueLogin()
    const first = await signUp(app, login, 'secret1')
    const second = await logIn(app, login)
    const third = await logIn(app, login)
    t.equal((await call(app, 'change_password', { old_password: 'secret1', new_password: 'secret2' }, first.token)).status, 200)
    await accepted(t, app, first.token, 'the session that changed it')
    await refused(t, app, second.token, second, 'another session')
    await refused(t, app, third.token, third, 'a third session')
  })

  t.test('with a bad signature', async (t) => {
    const [header, payload, signature] = alice.token.split('.') as [string, string, string]
    const flipped = signature.slice(0, -2) + (signature.at(-2) === 'A' ? 'B' : 'A') + signature.at(-1)
    await refused(t, app, `${header}.${payload}.${flipped}`, alice, 'one character of the signature changed')
    await refused(t, app, `${header}.${payload}.`, alice, 'no signature')
    await refused(t, app, forge(claims(alice), { secret: 'another-secret-another-secret-0123456789' }), alice, 'signed with another secret')
    const tampered = `${header}.${b64url({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), uid: bob.uid })}.${signature}`
    await refused(t, app, tampered, alice, 'the payload changed under the old signature')
  })

  t.test('with alg none', async (t) => {
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) await refused(t, app, forge(claims(alice), { alg }), alice, `alg ${alg}`)
  })

  t.test('signed HS384, HS512 or labelled RS256 with the same secret', async (t) => {
    for (const alg of ['HS384', 'HS512', 'RS256']) await refused(t, app, forge(claims(alice), { alg }), alice, alg)
  })

  t.test('malformed tokens', async (t) => {
    const good = forge(claims(alice))
    const [h, p] = good.split('.') as [string, string]
    const sign = (payloadPart: string) => `${h}.${payloadPart}.${createHmac('sha256', TEST_JWT_SECRET).update(`${h}.${payloadPart}`).digest('base64url')}`
    const malformed: [string, string][] = [
      ['one word', 'abc'],
      ['two parts', `${h}.${p}`],
      ['four parts', `${good}.x`],
      ['empty parts', '..'],
      ['base64 garbage', '!!!.@@@.###'],
      ['a header that is not JSON', `${b64url('not json')}.${p}.x`],
      ['a signed payload that is not JSON', sign(b64url('not json'))],
      ['a signed array payload', sign(b64url([alice.uid, alice.session_key]))],
      ['uid as a string', sign(b64url(claims(alice, { uid: String(alice.uid) })))],
      ['sid as a string', sign(b64url(claims(alice, { sid: String(alice.session_key) })))],
      ['no sid', sign(b64url({ uid: alice.uid, iat: now(), exp: now() + 600 }))],
      ['fractional sid', sign(b64url(claims(alice, { sid: alice.session_key + 0.5 })))],
      ['negative uid', sign(b64url(claims(alice, { uid: -alice.uid })))],
      ['huge sid', sign(b64url(claims(alice, { sid: 2 ** 64 })))],
      ['sid 0', sign(b64url(claims(alice, { sid: 0 })))],
      ['exp as a string', sign(b64url(claims(alice, { exp: 'never' })))],
      ['a 4 KiB token', 'x'.repeat(4096)],
    ]
    for (const [what, token] of malformed) {
      const reply = await call(app, 'whoami', {}, token)
      t.equal(reply.status, 401, `${what}: 401`)
      t.match(reply.body, { error: 'unauthorized' }, `${what}: unauthorized`)
    }
    for (const header of ['Bearer', 'Basic abc', `Bearer ${good} extra`, `Token ${good}`]) {
      const reply = await app.inject({ method: 'POST', url: '/whoami', headers: { authorization: header, 'content-type': 'application/json' }, payload: '{}' })
      t.equal(reply.statusCode, 401, `Authorization: ${header.slice(0, 20)}…: 401`)
    }
  })

  t.test("with a token for another user's session (uid/sid mismatch)", async (t) => {
    await refused(t, app, forge({ ...claims(alice), sid: bob.session_key }), { uid: alice.uid, session_key: bob.session_key }, "alice's uid, bob's session")
    await refused(t, app, forge({ ...claims(bob), sid: alice.session_key }), { uid: bob.uid, session_key: alice.session_key }, "bob's uid, alice's session")
    const mixed = await wiki(app, 'whoami', { session: { uid: alice.uid, session_key: alice.session_key, token: bob.token } })
    t.equal(mixed.status, 401, "the wiki session names alice's session with bob's token: 401")
    const disagree = await app.inject({
      method: 'POST',
      url: '/whoami',
      headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ session: { uid: bob.uid, session_key: bob.session_key, token: bob.token } }),
    })
    t.equal(disagree.statusCode, 401, 'bearer and body session of different users: 401')
  })
})

// ---------------------------------------------------------------------------------------

t.test('no secret in the logs of a real server at LOG_LEVEL=trace', async (t) => {
  const { schema } = await createTestSchema(t)
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'messenger-logs-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const server = await spawnServerOnFreePort(t, schema, dataDir, {
    LOG_LEVEL: 'trace',
    REQUIRE_EMAIL_VERIFICATION: 'true',
    EMAIL_RESEND_INTERVAL_SECONDS: '0',
  })
  let stderr = ''
  server.child.stderr!.on('data', (chunk: string) => (stderr += chunk))

  const secrets: { what: string; value: string }[] = [{ what: 'the JWT secret', value: TEST_JWT_SECRET }]
  const keep = (what: string, value: string) => {
    secrets.push({ what, value })
    return value
  }
  const send = async (url: string, body: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`${server.base}${url}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    })
    return { status: response.status, body: (await response.json().catch(() => undefined)) as Json }
  }
  const outboxCodes = async (): Promise<string[]> => {
    const dir = path.join(dataDir, 'outbox')
    const files = await readdir(dir).catch(() => [] as string[])
    const codes: string[] = []
    for (const file of files.sort()) {
      const match = /verification code is (\d{6})/.exec(await readFile(path.join(dir, file), 'utf8'))
      if (match) codes.push(match[1]!)
    }
    return codes
  }

  const login = uniqueLogin('logs')
  const email = `${login}@example.com`
  const password = keep('the password', `Pw-${randomBytes(8).toString('hex')}`)
  const newPassword = keep('the new password', `Pw-${randomBytes(8).toString('hex')}`)
  const wrongPassword = keep('a wrong password', `Pw-${randomBytes(8).toString('hex')}`)

  t.equal((await send('/registration', { login, password, email })).status, 200, 'registration (a code is mailed)')
  t.equal((await send('/registration', { login, password: keep('a second password', `Pw-${randomBytes(8).toString('hex')}`), email })).status, 409, 'a duplicate registration')
  t.equal((await send('/authorization', { login, password })).status, 403, 'login before verify: 403')
  t.equal((await send('/resend_code', { email })).status, 200, 'resend_code (a new code)')
  let codes: string[] = []
  await eventually(async () => (codes = await outboxCodes()).length >= 2, { what: 'two codes in the outbox', everyMs: 50 }).catch(() => {})
  t.equal(codes.length, 2, 'two codes were mailed')
  for (const code of codes) keep('a verification code', code)
  const wrongCode = codes.includes('000000') ? '000001' : '000000'
  t.equal((await send('/verify', { email, code: wrongCode })).status, 400, 'verify with a wrong code')
  t.equal((await send('/verify', { email, code: codes.at(-1) })).status, 200, 'verify with the code')
  t.equal((await send('/authorization', { login, password: wrongPassword })).status, 401, 'login with a wrong password')

  const first = (await send('/authorization', { login, password })).body.session
  const second = (await send('/', { request: 'authorisation', login, password })).body.session
  keep('a bearer token', first.token)
  keep('a body-session token', second.token)
  const bearer = { authorization: `Bearer ${first.token}` }
  t.equal((await send('/whoami', {}, bearer)).status, 200, 'bearer request')
  t.equal((await send('/update_data', { cursor: 0, timeout: 0 }, bearer)).status, 200, 'bearer poll')
  t.equal((await send('/', { request: 'get_data', session: second })).status, 200, 'body-session request (wiki)')
  t.equal((await send('/get_data', { session: second })).status, 200, 'body-session request (modern)')
  const renewed = (await send('/renew_token', {}, bearer)).body.session
  keep('a renewed token', renewed.token)
  const getUser = await fetch(`${server.base}/get_user?id=${first.uid}`, { headers: bearer })
  t.equal(getUser.status, 200, 'GET with a bearer token')

  // Failing requests that carry secrets.
  t.equal((await send('/change_password', { old_password: wrongPassword, new_password: newPassword }, bearer)).status, 401, 'change_password, wrong old password')
  t.equal((await send('/registration', `{"login": "${login}x", "password": "${password}"`)).status, 400, 'malformed JSON holding a password')
  t.ok((await send('/authorization', { login: `${login}-nobody`, password })).status >= 400, 'login as someone else with the password')
  t.equal((await send('/whoami', {}, { authorization: `Bearer ${first.token}x` })).status, 401, 'a broken token')
  t.equal((await send('/', { request: 'no_such_command', session: second, password })).status, 400, 'an unknown wiki command with a session and a password')
  t.equal((await send('/', { request: 'send_msg', session: { ...second, uid: second.uid + 1 }, to_uid: 1, msg: 'x' })).status, 401, 'a mismatched session')
  // A server-side failure carrying a token in the body (PostgreSQL refuses the NUL).
  const failed = await send('/update_profile', { name: 'nul \u0000 here', session: second })
  t.ok(failed.status >= 400, `a request that fails on the server: ${failed.status}`)
  t.equal((await send('/change_password', { old_password: password, new_password: newPassword }, bearer)).status, 200, 'change_password')
  t.equal((await send('/', { request: 'get_data', session: second })).status, 401, 'the other session is gone')
  t.equal((await send('/logout', {}, bearer)).status, 200, 'logout')

  await sleep(300) // the last lines
  const lines = [...server.lines, ...stderr.split('\n')]
  t.ok(server.lines.some((line) => line.includes('request completed')), 'request lines were logged (the hot ones at debug)')
  t.ok(server.lines.some((line) => line.includes('request refused')), 'refusals were logged')
  t.ok(server.lines.length > 30, `${server.lines.length} lines`)
  t.ok(lines.some((line) => line.includes(email)), 'control: the search sees what is logged (the outbox line names the address)')
  for (const { what, value } of secrets) {
    const isCode = /^\d{6}$/.test(value)
    // A code counts only as a number of its own, not inside a timestamp or a duration.
    const pattern = isCode ? new RegExp(`(?<![0-9.])${value}(?![0-9])`) : undefined
    const hits = lines.filter((line) => (pattern ? pattern.test(line) : line.includes(value)))
    t.same(hits.slice(0, 3), [], `${what} is in no log line`)
    if (!isCode && value.split('.').length === 3) {
      const signature = value.split('.')[2]!
      t.same(lines.filter((line) => line.includes(signature)).slice(0, 3), [], `${what}: not even its signature`)
    }
  }
})

// ---------------------------------------------------------------------------------------

async function isRateLimited(t: Test, reply: { status: number; headers: Json; body: unknown }, dialect: 'modern' | 'wiki', what: string) {
  t.equal(reply.status, 429, `${what}: 429`)
  t.ok(Number(reply.headers['retry-after']) >= 1, `${what}: Retry-After ${reply.headers['retry-after']}`)
  if (dialect === 'modern') t.match(reply.body, { error: 'rate_limited', message: String }, `${what}: rate_limited`)
  else t.type(reply.body, 'string', `${what}: a JSON string`)
}

t.test('per-user send rate (SEND_RATE_PER_MINUTE 5)', async (t) => {
  const app = await build(t, { sendRatePerMinute: 5 })
  const alice = await signUp(app)
  const bob = await signUp(app)
  const carol = await signUp(app)
  await befriend(app, alice, bob)
  await befriend(app, carol, bob)

  t.test('the 6th send of the minute is 429 with Retry-After; another user is unaffected', async (t) => {
    for (let i = 1; i <= 5; i++) t.equal((await call(app, 'send_msg', { to_uid: bob.uid, msg: `m${i}` }, alice.token)).status, 200, `send ${i}`)
    await isRateLimited(t, await call(app, 'send_msg', { to_uid: bob.uid, msg: 'm6' }, alice.token), 'modern', 'send 6')
    await isRateLimited(t, await wiki(app, 'send_msg', { to_uid: bob.uid, msg: 'm7' }, alice), 'wiki', 'send 7 in the wiki dialect')
    t.equal((await call(app, 'send_msg', { to_uid: bob.uid, msg: 'from carol' }, carol.token)).status, 200, 'carol still sends')
    t.equal((await call(app, 'send_msg', { to_uid: alice.uid, msg: 'from bob' }, bob.token)).status, 200, 'bob still sends')
    const history = await call(app, 'get_history', { to_uid: alice.uid }, bob.token)
    t.same(history.body.messages.filter((m: Json) => m.sender_uid === alice.uid).map((m: Json) => m.text), ['m1', 'm2', 'm3', 'm4', 'm5'], 'refused sends stored nothing')
  })

  t.test('the wiki dialect counts against the same limit', async (t) => {
    const dave = await signUp(app)
    await befriend(app, dave, bob)
    for (let i = 1; i <= 3; i++) t.equal((await wiki(app, 'send_msg', { to_uid: bob.uid, msg: `w${i}` }, dave)).status, 200, `wiki send ${i}`)
    for (let i = 4; i <= 5; i++) t.equal((await call(app, 'send_msg', { to_uid: bob.uid, msg: `w${i}` }, dave.token)).status, 200, `modern send ${i}`)
    await isRateLimited(t, await wiki(app, 'send_msg', { to_uid: bob.uid, msg: 'w6' }, dave), 'wiki', 'wiki send 6')
    await isRateLimited(t, await call(app, 'send_msg', { to_uid: bob.uid, msg: 'w7' }, dave.token), 'modern', 'modern send 7')
  })
})

t.test('registrations per IP (REGISTRATIONS_PER_IP_PER_HOUR 3)', async (t) => {
  const app = await build(t, { registrationsPerIpPerHour: 3 })
  const register = async (ip: string, dialect: 'modern' | 'wiki' = 'modern') => {
    const body = { login: uniqueLogin('ip'), password: 'secret1', ...(dialect === 'wiki' ? { request: 'registration' } : {}) }
    const response = await app.inject({ method: 'POST', url: dialect === 'wiki' ? '/' : '/registration', remoteAddress: ip, payload: body })
    return { status: response.statusCode, headers: response.headers as Json, body: response.json() }
  }
  for (let i = 1; i <= 3; i++) t.equal((await register('10.0.0.1')).status, 200, `registration ${i} from 10.0.0.1`)
  await isRateLimited(t, await register('10.0.0.1'), 'modern', 'registration 4 from 10.0.0.1')
  await isRateLimited(t, await register('10.0.0.1', 'wiki'), 'wiki', 'registration 5 from 10.0.0.1, wiki dialect')
  t.equal((await register('10.0.0.2')).status, 200, 'another address registers')
  t.equal((await register('10.0.0.2', 'wiki')).status, 200, 'and in the wiki dialect')
  t.equal((await call(app, 'authorization', { login: 'nobody', password: 'secret1' })).status, 401, 'logins are not counted as registrations')
})

t.test('held polls per user are capped (MAX_HELD_POLLS_PER_USER 2)', async (t) => {
  const app = await build(t, { maxHeldPollsPerUser: 2 })
  const first = await signUp(app)
  const sessions = [first, await logIn(app, first.login), await logIn(app, first.login), await logIn(app, first.login)]
  const done = sessions.map(() => false)
  const polls: Promise<{ status: number; body: any }>[] = []
  for (const [i, session] of sessions.entries()) {
    polls.push(
      call(app, 'update_data', { cursor: 0, timeout: 15 }, session.token).then((reply) => {
        done[i] = true
        return reply
      }),
    )
    // Once things settle: at most 2 held, the oldest beyond the cap answered.
    await eventually(() => app.eventLog.polls.size === Math.min(i + 1, 2) && (i < 2 || done[i - 2]!), { what: `poll ${i + 1} to settle` })
    await sleep(50)
    t.equal(app.eventLog.polls.size, Math.min(i + 1, 2), `after poll ${i + 1}: ${Math.min(i + 1, 2)} held`)
    t.equal(done.slice(0, i + 1).filter((d) => !d).length, Math.min(i + 1, 2), `after poll ${i + 1}: ${Math.min(i + 1, 2)} unanswered`)
  }
  const [oldest, second] = await Promise.all([polls[0]!, polls[1]!])
  for (const [what, reply] of [['the oldest', oldest], ['the second', second]] as const) {
    t.equal(reply.status, 200, `${what} was answered 200`)
    t.same([reply.body.msg_array, reply.body.events_array], [[], []], `${what}: with empty arrays`)
  }
  t.same(done, [true, true, false, false], 'the two newest are still held')
  for (const session of sessions.slice(2)) await call(app, 'update_data', { cursor: 0, timeout: 0 }, session.token)
  await Promise.all(polls)
  t.equal(app.eventLog.polls.size, 0, 'all ended')
})

// ---------------------------------------------------------------------------------------

t.test('/healthz, /readyz and /metrics', async (t) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'messenger-metrics-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const app = await build(t, { dataDir })
  const metric = async () => (await app.inject({ method: 'GET', url: '/metrics' })).body
  const value = (text: string, series: string) => {
    const escaped = series.replace(/[{}"=.]/g, (c) => `\\${c}`)
    const match = new RegExp(`^${escaped} ([0-9.e+-]+)$`, 'm').exec(text)
    return match ? Number(match[1]) : undefined
  }

  const healthz = await app.inject({ method: 'GET', url: '/healthz' })
  t.equal(healthz.statusCode, 200)
  t.same(healthz.json(), { status: 'ok' })
  const readyz = await app.inject({ method: 'GET', url: '/readyz' })
  t.equal(readyz.statusCode, 200)
  t.same(readyz.json(), { status: 'ready' })

  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const cursor = (await call(app, 'update_data', { cursor: 0, timeout: 0 }, bob.token)).body.cursor
  const held = call(app, 'update_data', { cursor, timeout: 10 }, bob.token)
  await eventually(() => app.eventLog.polls.size === 1, { what: 'the poll to be held' })

  const during = await metric()
  t.ok((value(during, 'messenger_held_polls') ?? 0) >= 1, `messenger_held_polls ${value(during, 'messenger_held_polls')} with a held poll`)
  t.match(during, /^http_request_duration_seconds_bucket\{le="0\.001",method="POST",route="\/registration",status="200"\} \d+$/m, 'request latencies per route')
  t.match(during, /^http_request_duration_seconds_count\{method="POST",route="\/update_data",status="200"\} [1-9]/m, 'update_data is counted')
  for (const pool of ['main', 'hot']) {
    for (const state of ['used', 'free', 'pending']) {
      const series = `messenger_db_pool_connections{pool="${pool}",state="${state}"}`
      t.ok(value(during, series) !== undefined, series)
    }
  }
  t.match(during, /^process_resident_memory_bytes \d+/m, "Node's own metrics")

  t.equal((await call(app, 'send_msg', { to_uid: bob.uid, msg: 'measured' }, alice.token)).status, 200)
  const delivered = await held
  t.same(delivered.body.msg_array.map((m: Json) => m.text), ['measured'], 'the held poll delivered the message')
  const after = await metric()
  t.ok((value(after, 'messenger_event_delivery_lag_seconds_count') ?? 0) >= 1, `messenger_event_delivery_lag_seconds_count ${value(after, 'messenger_event_delivery_lag_seconds_count')} after a delivery`)
  t.ok((value(after, 'messenger_event_delivery_lag_seconds_sum') ?? Infinity) < 5, 'a lag of seconds at most')
  t.equal(value(after, 'messenger_held_polls'), 0, 'messenger_held_polls back to 0')

  // Error replies are counted by stable code, in both dialects.
  const errorsBefore = value(after, 'http_errors_total{code="not_friends"}') ?? 0
  t.equal((await call(app, 'send_msg', { to_uid: 999_999, msg: 'x' }, alice.token)).status, 403)
  t.equal((await wiki(app, 'send_msg', { to_uid: 999_999, msg: 'x' }, alice)).status, 403)
  t.equal(value(await metric(), 'http_errors_total{code="not_friends"}'), errorsBefore + 2, 'http_errors_total counts the modern and the wiki error')

  // Labels are route templates: ids and unknown URLs never become series of their own.
  const random = `nope-${randomBytes(4).toString('hex')}`
  await app.inject({ method: 'GET', url: `/${random}` })
  await app.inject({ method: 'GET', url: '/files/424242', headers: { authorization: `Bearer ${alice.token}` } })
  const labels = await metric()
  t.notOk(labels.includes(random), 'an unknown URL is not a label')
  t.match(labels, /route="unmatched"/, 'it is counted as unmatched')
  t.notOk(labels.includes('424242'), 'an id is not a label')
  t.match(labels, /route="\/files\/:file_id"/, 'the route template is')
  t.notOk(labels.includes(alice.token) || labels.includes(bob.token), 'no token in the metrics')
})
