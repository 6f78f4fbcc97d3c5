// Sessions and authentication (PROTOCOL A.2, A.3): logout revokes at once (also held polls
// and on other app instances sharing the database), forged or mismatched credentials are
// 401, and failed logins are limited per login.
import { createHmac } from 'node:crypto'
import t, { type Test } from 'tap'
import { ManualClock } from '../src/clock.js'
import { PROMPT_MS, befriend, build, call, createTestSchema, eventually, logIn, signUp, sleep, TEST_JWT_SECRET, uniqueLogin, wiki } from './helper.js'

const PASSWORD = 'secret1' // signUp's default

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

/** A JWT signed by hand: HS256/HS384/HS512 over `header.payload` with `secret`. */
function hmacToken(payload: Record<string, unknown>, secret: string, alg: 'HS256' | 'HS384' | 'HS512' = 'HS256'): string {
  const signingInput = `${b64url({ alg, typ: 'JWT' })}.${b64url(payload)}`
  const digest = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg]
  return `${signingInput}.${createHmac(digest, secret).update(signingInput).digest('base64url')}`
}

/** An unsigned token: `alg: none` and an empty signature. */
function noneToken(payload: Record<string, unknown>): string {
  return `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(payload)}.`
}

function isUnauthorized(t: Test, response: { status: number; body: unknown }, what: string) {
  t.equal(response.status, 401, `${what}: 401`)
  t.match(response.body, { error: 'unauthorized', message: String }, `${what}: unauthorized body`)
}

function isWikiUnauthorized(t: Test, response: { status: number; body: unknown }, what: string) {
  t.equal(response.status, 401, `${what} (wiki): 401`)
  t.type(response.body, 'string', `${what} (wiki): the error is a bare JSON string`)
}

t.test('logout revokes the token at once; other sessions of the user keep working', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const alice2 = await logIn(app, alice)
  const alice3 = await logIn(app, alice)
  t.not(alice2.session_key, alice.session_key, 'a second login is a second session')

  // Before: every session works.
  for (const s of [alice, alice2, alice3]) t.equal((await call(app, 'get_data', {}, s.token)).status, 200, 'works before logout')

  const out = await call(app, 'logout', {}, alice.token)
  t.equal(out.status, 200)
  t.same(out.body, {})

  isUnauthorized(t, await call(app, 'get_data', {}, alice.token), 'get_data after logout')
  isUnauthorized(t, await call(app, 'send_msg', { to_uid: bob.uid, msg: 'after logout' }, alice.token), 'send_msg after logout')
  isUnauthorized(t, await call(app, 'update_data', { cursor: 0, timeout: 0 }, alice.token), 'update_data after logout')
  isUnauthorized(t, await call(app, 'update_data', { timeout: 0 }, alice.token), 'cursorless update_data after logout')
  isUnauthorized(t, await call(app, 'logout', {}, alice.token), 'a second logout')

  // The session echoed in the body, as the desktop client does.
  isWikiUnauthorized(t, await wiki(app, 'get_data', {}, alice), 'get_data after logout')
  isWikiUnauthorized(t, await wiki(app, 'send_msg', { to_uid: bob.uid, msg: 'after logout' }, alice), 'send_msg after logout')
  isWikiUnauthorized(t, await wiki(app, 'update_data', { last_update: 0, timeout: 0 }, alice), 'update_data after logout')
  // Modern dialect with the session in the body instead of a header.
  const echoed = { uid: alice.uid, session_key: alice.session_key, token: alice.token }
  isUnauthorized(t, await call(app, 'get_data', { session: echoed }), 'get_data, body session, after logout')

  // Nothing was sent by the refused send_msg.
  const bobSees = await call(app, 'update_data', { cursor: 0, timeout: 0 }, bob.token)
  t.equal(bobSees.status, 200)
  t.notMatch(JSON.stringify(bobSees.body.msg_array), 'after logout', 'the refused send_msg stored nothing')

  // The user's other sessions are untouched, in both dialects.
  t.equal((await call(app, 'get_data', {}, alice2.token)).status, 200, 'other session: get_data')
  const sent = await call(app, 'send_msg', { to_uid: bob.uid, msg: 'still here' }, alice2.token)
  t.equal(sent.status, 200, 'other session: send_msg')
  t.equal((await call(app, 'update_data', { cursor: 0, timeout: 0 }, alice2.token)).status, 200, 'other session: update_data')
  t.equal((await wiki(app, 'get_data', {}, alice3)).status, 200, 'other session (wiki): get_data')
  t.equal((await wiki(app, 'send_msg', { to_uid: bob.uid, msg: 'wiki still here' }, alice3)).status, 200, 'other session (wiki): send_msg')
  t.equal((await wiki(app, 'update_data', { last_update: 0, timeout: 0 }, alice3)).status, 200, 'other session (wiki): update_data')

  // Logout in the wiki dialect revokes as well.
  const wikiOut = await wiki(app, 'logout', {}, alice3)
  t.equal(wikiOut.status, 200, 'wiki logout')
  isWikiUnauthorized(t, await wiki(app, 'get_data', {}, alice3), 'get_data after a wiki logout')
  isUnauthorized(t, await call(app, 'get_data', {}, alice3.token), 'bearer after a wiki logout')
  t.equal((await call(app, 'get_data', {}, alice2.token)).status, 200, 'the remaining session still works')
  t.equal((await call(app, 'get_data', {}, bob.token)).status, 200, 'another user is unaffected')
})

t.test('a poll held by a session is answered 401 promptly when that session logs out', async (t) => {
  // The app's clock does not move unless told: no poll can end at its timeout by itself.
  const clock = new ManualClock()
  const app = await build(t, {}, undefined, clock)
  const alice = await signUp(app)
  const alice2 = await logIn(app, alice)

  const started = performance.now()
  const held = call(app, 'update_data', { cursor: 0, timeout: 5 }, alice.token).then((r) => ({ ...r, at: performance.now() }))
  // The other session's poll must outlive the logout.
  let otherDone = false
  const other = call(app, 'update_data', { cursor: 0, timeout: 1 }, alice2.token).then((r) => {
    otherDone = true
    return { ...r, at: clock.now() }
  })
  const otherStartedAt = clock.now()
  await eventually(() => app.eventLog.polls.size === 2, { what: 'both polls to be held' })

  const loggedOut = await call(app, 'logout', {}, alice.token)
  const loggedOutAt = performance.now()
  t.equal(loggedOut.status, 200, 'logout')

  const answer = await held
  isUnauthorized(t, answer, 'the held poll')
  const afterLogout = answer.at - loggedOutAt
  const total = answer.at - started
  t.ok(total < PROMPT_MS, `answered ${Math.round(total)} ms after it started, well under its 5 s timeout`)
  t.ok(afterLogout < PROMPT_MS, `answered ${Math.round(afterLogout)} ms after the logout's reply`)

  // The other session's poll (timeout 1 s) is still held after the logout, to its timeout.
  await sleep(50)
  t.notOk(otherDone, 'the poll of the other session is still held after the logout')
  t.equal(app.eventLog.polls.size, 1, 'one poll held')
  clock.advance(999)
  await sleep(50)
  t.notOk(otherDone, 'and still 1 ms before its 1 s timeout')
  clock.advance(1)
  const otherAnswer = await other
  t.equal(otherAnswer.status, 200, 'the poll of the other session ends normally')
  t.same(otherAnswer.body.msg_array, [])
  t.equal(otherAnswer.at - otherStartedAt, 1000, 'the other session held its poll to its own timeout')
  t.equal(app.eventLog.polls.size, 0, 'no poll left held')
})

t.test('a poll held in the wiki dialect is answered 401 when its session logs out', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const held = wiki(app, 'update_data', { last_update: 0, timeout: 5 }, alice).then((r) => ({ ...r, at: performance.now() }))
  await eventually(() => app.eventLog.polls.size === 1, { what: 'the poll to be held' })
  t.equal((await wiki(app, 'logout', {}, alice)).status, 200)
  const loggedOutAt = performance.now()
  const answer = await held
  isWikiUnauthorized(t, answer, 'the held poll')
  t.ok(answer.at - loggedOutAt < PROMPT_MS, `answered ${Math.round(answer.at - loggedOutAt)} ms after the logout`)
})

// A poll that passed authentication while the process's LISTEN connection was still being
// opened (the first poll after start, or any poll during a reconnect) and that is then
// logged out must end with 401 like any held poll, and must never hand out what arrives
// after the logout. Here the LISTEN connect is held until the logout has returned, which
// makes the interleaving deterministic; without that, firing update_data and logout
// together on a fresh app shows the same thing nearly every time.
t.test('a poll whose LISTEN connection comes up after the logout is still refused', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const cursor = (await call(app, 'authorization', { login: alice.login, password: PASSWORD })).body.cursor as number
  t.equal(app.eventLog.polls.size, 0, 'no poll has opened the LISTEN connection yet')

  const listen = app.eventLog.listener.listen.bind(app.eventLog.listener)
  let subscribing!: () => void
  const reachedSubscribe = new Promise<void>((resolve) => (subscribing = resolve))
  let releaseListen!: () => void
  const listenGate = new Promise<void>((resolve) => (releaseListen = resolve))
  app.eventLog.listener.listen = async () => {
    subscribing()
    await listenGate
    return listen()
  }

  const started = performance.now()
  const held = call(app, 'update_data', { cursor, timeout: 3 }, alice.token).then((r) => ({ ...r, at: performance.now() }))
  await reachedSubscribe // the poll is authenticated and subscribing
  const out = await call(app, 'logout', {}, alice.token)
  t.equal(out.status, 200, 'logout')
  isUnauthorized(t, await call(app, 'get_data', {}, alice.token), 'the token right after the logout')
  releaseListen()

  const sent = await call(app, 'send_msg', { to_uid: alice.uid, msg: 'after alice logged out' }, bob.token)
  t.equal(sent.status, 200, 'bob sends alice a message after her logout')
  const answer = await held
  t.comment(`the poll answered ${answer.status} after ${Math.round(answer.at - started)} ms: ${JSON.stringify(answer.body)}`)
  isUnauthorized(t, answer, 'the poll of the logged-out session')
  t.notMatch(JSON.stringify(answer.body), 'after alice logged out', 'the logged-out session is not handed the later message')
})

t.test('forged and mismatched credentials are 401', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const alice2 = await logIn(app, alice)
  const bob = await signUp(app)
  const mine = { uid: alice.uid, sid: alice.session_key }
  const now = Math.floor(Date.now() / 1000)

  // Control: a token signed by hand the right way is accepted, so the refusals below are
  // about what was forged, not about the hand-made signature.
  const handMade = hmacToken({ ...mine, iat: now }, TEST_JWT_SECRET)
  t.equal((await call(app, 'get_data', {}, handMade)).status, 200, 'a correctly signed HS256 token is accepted')

  const forged: Array<[string, string]> = [
    ['alg none, empty signature', noneToken(mine)],
    ['alg none, with iat/exp', noneToken({ ...mine, iat: now, exp: now + 3600 })],
    ['alg none, the real token signature kept', `${b64url({ alg: 'none', typ: 'JWT' })}.${alice.token.split('.')[1]}.${alice.token.split('.')[2]}`],
    ['signed with another secret', hmacToken({ ...mine, iat: now }, 'another-secret-another-secret-another-secret-42')],
    ['HS512 with the right secret', hmacToken({ ...mine, iat: now }, TEST_JWT_SECRET, 'HS512')],
    ['HS384 with the right secret', hmacToken({ ...mine, iat: now }, TEST_JWT_SECRET, 'HS384')],
    ['expired', hmacToken({ ...mine, iat: now - 7200, exp: now - 3600 }, TEST_JWT_SECRET)],
    ['expired a second ago', hmacToken({ ...mine, iat: now - 100, exp: now - 1 }, TEST_JWT_SECRET)],
    ["sid of another user's session", hmacToken({ uid: alice.uid, sid: bob.session_key, iat: now }, TEST_JWT_SECRET)],
    ["uid of another user, sid mine", hmacToken({ uid: bob.uid, sid: alice.session_key, iat: now }, TEST_JWT_SECRET)],
    ['sid of no session', hmacToken({ uid: alice.uid, sid: 987654321, iat: now }, TEST_JWT_SECRET)],
    ['no sid', hmacToken({ uid: alice.uid, iat: now }, TEST_JWT_SECRET)],
    ['ids as strings', hmacToken({ uid: String(alice.uid), sid: String(alice.session_key), iat: now }, TEST_JWT_SECRET)],
    ['payload altered, signature kept', `${alice.token.split('.')[0]}.${b64url({ uid: bob.uid, sid: bob.session_key })}.${alice.token.split('.')[2]}`],
    ['signature stripped', alice.token.split('.').slice(0, 2).join('.') + '.'],
    ['not a JWT', 'garbage'],
  ]
  for (const [what, token] of forged) {
    isUnauthorized(t, await call(app, 'get_data', {}, token), `bearer: ${what}`)
    const inBody = await wiki(app, 'get_data', {}, { ...alice, token })
    isWikiUnauthorized(t, inBody, `body session: ${what}`)
  }
  // A forged token must not send anything either.
  await befriend(app, alice, bob)
  isUnauthorized(t, await call(app, 'send_msg', { to_uid: bob.uid, msg: 'forged' }, noneToken(mine)), 'send_msg with alg none')
  isUnauthorized(t, await call(app, 'update_data', { cursor: 0, timeout: 0 }, noneToken(mine)), 'update_data with alg none')

  // The body session must match the token.
  isUnauthorized(
    t,
    await call(app, 'get_data', { session: { uid: bob.uid, session_key: alice.session_key } }, alice.token),
    "body session with another user's uid, my bearer token",
  )
  isWikiUnauthorized(
    t,
    await wiki(app, 'get_data', {}, { ...alice, uid: bob.uid }),
    "body session with another user's uid and my token",
  )
  isWikiUnauthorized(
    t,
    await wiki(app, 'get_data', {}, { ...alice, session_key: alice2.session_key }),
    "body session_key of my other session with this session's token",
  )
  isWikiUnauthorized(
    t,
    await wiki(app, 'get_data', {}, { ...alice, session_key: bob.session_key }),
    "body session_key of another user's session",
  )
  isUnauthorized(
    t,
    await call(app, 'get_data', { session: { uid: bob.uid, session_key: bob.session_key } }, alice.token),
    "bob's whole session reference in the body, alice's bearer token",
  )

  // Authorization header and body session.token disagreeing.
  isUnauthorized(
    t,
    await call(app, 'get_data', { session: { uid: alice.uid, session_key: alice.session_key, token: alice2.token } }, alice.token),
    'header and body token of two sessions of one user',
  )
  isUnauthorized(
    t,
    await call(app, 'get_data', { session: { uid: bob.uid, session_key: bob.session_key, token: bob.token } }, alice.token),
    "header alice's token, body bob's session",
  )
  isUnauthorized(
    t,
    await call(app, 'get_data', { session: { uid: alice.uid, session_key: alice.session_key, token: alice.token } }, noneToken(mine)),
    'a forged header next to a valid body session',
  )

  // Malformed Authorization headers: 401, never a silent fallback to the body session.
  const echoed = { uid: alice.uid, session_key: alice.session_key, token: alice.token }
  for (const header of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer ', `Bearer ${alice.token} extra`, alice.token, `Token ${alice.token}`]) {
    const response = await app.inject({ method: 'POST', url: '/get_data', headers: { authorization: header }, payload: {} })
    isUnauthorized(t, { status: response.statusCode, body: response.json() }, `Authorization: ${JSON.stringify(header.slice(0, 20))}`)
    const withBody = await app.inject({ method: 'POST', url: '/get_data', headers: { authorization: header }, payload: { session: echoed } })
    t.equal(withBody.statusCode, 401, `Authorization: ${JSON.stringify(header.slice(0, 20))} next to a valid body session: 401`)
  }
  isUnauthorized(t, await call(app, 'get_data', {}), 'no credentials at all')

  // After all of that, the real sessions still work.
  t.equal((await call(app, 'get_data', {}, alice.token)).status, 200, "alice's token still works")
  t.equal((await wiki(app, 'get_data', {}, alice2)).status, 200, "alice's body session still works")
  t.equal((await call(app, 'get_data', {}, bob.token)).status, 200, "bob's token still works")
  t.same((await call(app, 'update_data', { cursor: 0, timeout: 0 }, bob.token)).body.msg_array, [], 'no forged message reached bob')
})

t.test('a token works on a second app instance; a logout through one is refused by the other', async (t) => {
  const database = await createTestSchema(t)
  const appA = await build(t, {}, database)
  const appB = await build(t, {}, database)
  const alice = await signUp(appA)
  const alice2 = await logIn(appA, alice)
  const bob = await signUp(appB)
  await befriend(appB, alice, bob)

  t.equal((await call(appB, 'get_data', {}, alice.token)).status, 200, 'a token from A works on B')
  t.equal((await wiki(appB, 'get_data', {}, alice)).status, 200, 'and in the wiki dialect')
  t.equal((await call(appA, 'get_data', {}, bob.token)).status, 200, 'a token from B works on A')

  // A poll held on B by the session that logs out through A.
  const cursor = (await call(appB, 'update_data', { cursor: 0, timeout: 0 }, alice.token)).body.cursor as number
  const held = call(appB, 'update_data', { cursor, timeout: 5 }, alice.token).then((r) => ({ ...r, at: performance.now() }))
  await eventually(() => appB.eventLog.polls.size === 1, { what: 'the poll to be held on B' })

  const out = await call(appA, 'logout', {}, alice.token)
  const loggedOutAt = performance.now()
  t.equal(out.status, 200, 'logout through A')
  const answer = await held
  isUnauthorized(t, answer, 'the poll held on B')
  t.ok(answer.at - loggedOutAt < PROMPT_MS, `B answered its held poll ${Math.round(answer.at - loggedOutAt)} ms after the logout through A`)

  isUnauthorized(t, await call(appB, 'get_data', {}, alice.token), 'B refuses the token')
  isUnauthorized(t, await call(appB, 'send_msg', { to_uid: bob.uid, msg: 'x' }, alice.token), 'B refuses send_msg')
  isUnauthorized(t, await call(appB, 'update_data', { cursor, timeout: 0 }, alice.token), 'B refuses update_data')
  isWikiUnauthorized(t, await wiki(appB, 'get_data', {}, alice), 'B refuses the body session')
  isUnauthorized(t, await call(appA, 'get_data', {}, alice.token), 'A refuses it too')

  t.equal((await call(appB, 'get_data', {}, alice2.token)).status, 200, "alice's other session works on B")
  t.equal((await call(appB, 'send_msg', { to_uid: bob.uid, msg: 'from B' }, alice2.token)).status, 200)
  // And the other way round: logout through B is refused by A.
  t.equal((await call(appB, 'logout', {}, alice2.token)).status, 200, 'logout through B')
  isUnauthorized(t, await call(appA, 'get_data', {}, alice2.token), 'A refuses the token logged out through B')
})

t.test('failed logins: one 401 for wrong password and unknown login; 429 after LOGIN_MAX_FAILURES', async (t) => {
  const app = await build(t, { loginMaxFailures: 3 })
  const alice = await signUp(app)
  const bob = await signUp(app)

  const wrongPassword = await call(app, 'authorization', { login: alice.login, password: 'not-the-password' })
  const unknownLogin = await call(app, 'authorization', { login: uniqueLogin('nobody'), password: 'not-the-password' })
  t.equal(wrongPassword.status, 401, 'wrong password: 401')
  t.equal(unknownLogin.status, 401, 'unknown login: 401')
  t.same(unknownLogin.body, wrongPassword.body, 'the same body, so logins cannot be probed')
  t.equal(wrongPassword.body.error, 'unauthorized')
  const wikiWrong = await wiki(app, 'authorization', { login: alice.login, password: 'not-the-password' })
  const wikiUnknown = await wiki(app, 'authorization', { login: uniqueLogin('nobody'), password: 'not-the-password' })
  t.equal(wikiWrong.status, 401)
  t.equal(wikiUnknown.status, 401)
  t.equal(wikiUnknown.raw, wikiWrong.raw, 'the same body in the wiki dialect')
  // alice has 2 failures now (one per dialect), the limit is 3.

  const third = await call(app, 'authorization', { login: alice.login.toUpperCase(), password: 'still-wrong' })
  t.equal(third.status, 401, 'the third failure (in another case) is still a plain 401')

  const limited = await call(app, 'authorization', { login: alice.login, password: PASSWORD })
  t.equal(limited.status, 429, 'after 3 failures even the right password is 429')
  t.equal(limited.body.error, 'rate_limited')
  const retryAfter = Number(limited.headers['retry-after'])
  t.ok(Number.isInteger(retryAfter) && retryAfter > 0 && retryAfter <= 300, `Retry-After is a positive number of seconds (${limited.headers['retry-after']})`)
  const limitedWrong = await call(app, 'authorization', { login: alice.login, password: 'wrong-again' })
  t.equal(limitedWrong.status, 429, 'a wrong password is 429 too')
  const limitedOtherCase = await call(app, 'authorization', { login: alice.login.toUpperCase(), password: PASSWORD })
  t.equal(limitedOtherCase.status, 429, 'the limit holds whatever the case of the login')
  t.ok(limitedOtherCase.headers['retry-after'], 'with Retry-After')
  const limitedWiki = await wiki(app, 'authorisation', { login: alice.login, password: PASSWORD })
  t.equal(limitedWiki.status, 429, 'the wiki dialect (and the alias) is limited too')
  t.type(limitedWiki.body, 'string')
  t.ok(limitedWiki.headers['retry-after'], 'with Retry-After')

  // Another login is unaffected, and alice's existing session still works.
  const other = await call(app, 'authorization', { login: bob.login, password: PASSWORD })
  t.equal(other.status, 200, 'another login logs in')
  t.equal(other.body.session.uid, bob.uid)
  t.equal((await call(app, 'get_data', {}, alice.token)).status, 200, "alice's open session is not affected")

  // Unknown logins are limited the same way, so 429 does not tell them apart either.
  const ghost = uniqueLogin('ghost')
  for (let i = 0; i < 3; i++) t.equal((await call(app, 'authorization', { login: ghost, password: 'whatever1' })).status, 401)
  const ghostLimited = await call(app, 'authorization', { login: ghost, password: 'whatever1' })
  t.equal(ghostLimited.status, 429, 'an unknown login is limited after as many failures')
  t.ok(ghostLimited.headers['retry-after'])
})

t.test('a successful login clears the failure count', async (t) => {
  const app = await build(t, { loginMaxFailures: 3 })
  const alice = await signUp(app)
  for (let i = 0; i < 2; i++) t.equal((await call(app, 'authorization', { login: alice.login, password: 'wrong-one' })).status, 401)
  t.equal((await call(app, 'authorization', { login: alice.login, password: PASSWORD })).status, 200, 'the right password under the limit')
  for (let i = 0; i < 2; i++) t.equal((await call(app, 'authorization', { login: alice.login, password: 'wrong-two' })).status, 401)
  t.equal((await call(app, 'authorization', { login: alice.login, password: PASSWORD })).status, 200, 'the count started again')
})
