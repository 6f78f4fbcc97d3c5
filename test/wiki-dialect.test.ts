// The wiki dialect (PROTOCOL A.1, client-wire.md): every command as POST / with
// {"request": "<command>", ...}, the session echoed in the body and no Authorization
// header, exactly as the original desktop client sends it. Errors are bare JSON strings,
// an empty contact list is null, ids are numbers, success is exactly 200 with a JSON
// content type, and a reply never carries a key named `event_array`.
import t, { type Test } from 'tap'
import type { App } from '../src/app.js'
import { ManualClock } from '../src/clock.js'
import { advancingWhileHeld, backendsWaitingOn, befriend, build, call, eventually, signUp, sleep, uniqueLogin, wiki, type TestSession } from './helper.js'

type Json = Record<string, unknown>

/** JSON with object keys sorted at every level, as cpprest re-sorts them. */
function sortedJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Json).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  )
}

/**
 * POST / the way the desktop client does: compact JSON with sorted keys, Content-Type
 * exactly application/json, no Authorization header, and the session object echoed back
 * verbatim (whatever authorisation returned, extra fields included).
 */
async function desktop(app: App, request: string, body: Json = {}, session?: Json) {
  const envelope: Json = { ...body, request }
  if (session) envelope.session = session
  const response = await app.inject({
    method: 'POST',
    url: '/',
    headers: { 'content-type': 'application/json' },
    payload: sortedJson(envelope),
  })
  return { status: response.statusCode, body: response.json(), headers: response.headers, raw: response.body }
}

function isJsonContentType(t: Test, headers: Record<string, unknown>, what: string) {
  t.match(String(headers['content-type']), /^application\/json(;\s*charset=utf-8)?$/i, `${what}: content-type is application/json`)
}

/** Registration then authorisation through the wiki dialect; returns the session object as received. */
async function desktopLogin(app: App, login = uniqueLogin('desk'), password = 'secret1') {
  const registered = await desktop(app, 'registration', { login, password })
  if (registered.status !== 200) throw new Error(`registration: ${registered.status} ${registered.raw}`)
  const authorised = await desktop(app, 'authorisation', { login, password })
  if (authorised.status !== 200) throw new Error(`authorisation: ${authorised.status} ${authorised.raw}`)
  const session = authorised.body.session as Json
  const test: TestSession = { uid: session.uid as number, session_key: session.session_key as number, token: session.token as string, login }
  return { session, test, login }
}

t.test('registration: 200 with a numeric uid; a taken login is 409 with the JSON string "Login already exists"', async (t) => {
  const app = await build(t)
  const login = uniqueLogin('Reg')
  const first = await desktop(app, 'registration', { login, password: 'secret1' })
  t.equal(first.status, 200, 'exactly 200, never 201')
  isJsonContentType(t, first.headers, 'registration')
  t.type(first.body.uid, 'number', 'uid is a JSON number')
  t.ok(Number.isSafeInteger(first.body.uid) && first.body.uid > 0)

  const again = await desktop(app, 'registration', { login, password: 'secret2' })
  t.equal(again.status, 409)
  isJsonContentType(t, again.headers, '409 registration')
  t.equal(again.raw, '"Login already exists"', 'the body is exactly a JSON string')
  t.equal(again.body, 'Login already exists')

  const otherCase = await desktop(app, 'registration', { login: login.toUpperCase(), password: 'secret2' })
  t.equal(otherCase.status, 409, 'logins are unique regardless of case')
  t.equal(otherCase.body, 'Login already exists')
})

t.test('authorisation and authorization both answer the session with numeric uid and session_key', async (t) => {
  const app = await build(t)
  const login = uniqueLogin('auth')
  const registered = await desktop(app, 'registration', { login, password: 'secret1' })
  t.equal(registered.status, 200)

  for (const spelling of ['authorisation', 'authorization']) {
    const reply = await desktop(app, spelling, { login, password: 'secret1' })
    t.equal(reply.status, 200, `${spelling}: 200`)
    isJsonContentType(t, reply.headers, spelling)
    const session = reply.body.session
    t.type(session.uid, 'number', `${spelling}: uid is a number`)
    t.type(session.session_key, 'number', `${spelling}: session_key is a number`)
    t.type(session.token, 'string', `${spelling}: token is a string`)
    t.equal(session.uid, registered.body.uid, `${spelling}: the registered user`)
    t.equal(session.contact_uid, session.uid, `${spelling}: contact_uid repeats uid`)
  }

  const wrong = await desktop(app, 'authorisation', { login, password: 'wrong-password' })
  t.equal(wrong.status, 401)
  t.type(wrong.body, 'string', 'a wrong password is a JSON string body')
  const unknown = await desktop(app, 'authorisation', { login: uniqueLogin('nobody'), password: 'secret1' })
  t.equal(unknown.status, 401)
  t.equal(unknown.body, wrong.body, 'wrong login and wrong password are one and the same 401')
})

t.test('get_data: contacts is null when empty in the wiki dialect, [] in the modern one, a list otherwise', async (t) => {
  const app = await build(t)
  const alice = await desktopLogin(app)

  const empty = await desktop(app, 'get_data', {}, alice.session)
  t.equal(empty.status, 200)
  isJsonContentType(t, empty.headers, 'get_data')
  t.ok('contacts' in empty.body, 'the contacts key is present')
  t.equal(empty.body.contacts, null, 'wiki dialect: null, never []')
  t.match(empty.raw, /"contacts":null/)

  const modern = await call(app, 'get_data', {}, alice.test.token)
  t.equal(modern.status, 200)
  t.same(modern.body.contacts, [], 'modern dialect: []')

  const bob = await signUp(app)
  await befriend(app, alice.test, bob)
  const full = await desktop(app, 'get_data', {}, alice.session)
  t.equal(full.status, 200)
  t.same(full.body.contacts, [{ friend_login: bob.login, friend_uid: bob.uid, status: 1 }])
  t.type(full.body.contacts[0].friend_uid, 'number')
  t.type(full.body.contacts[0].status, 'number')
})

t.test('add_contact_request, add_contact_reply and del_contact through POST /', async (t) => {
  const app = await build(t)
  const alice = await desktopLogin(app)
  const bob = await desktopLogin(app)

  const asked = await desktop(app, 'add_contact_request', { login: bob.login }, alice.session)
  t.equal(asked.status, 200)
  isJsonContentType(t, asked.headers, 'add_contact_request')
  t.equal(asked.body.contact_uid, bob.test.uid)
  t.type(asked.body.contact_uid, 'number', 'contact_uid is a number')
  t.equal(asked.body.status, 0)

  const bobSees = await desktop(app, 'get_data', {}, bob.session)
  t.same(bobSees.body.contacts, [{ friend_login: alice.login, friend_uid: alice.test.uid, status: 3 }])

  const accepted = await desktop(app, 'add_contact_reply', { contact_uid: alice.test.uid, status: 1 }, bob.session)
  t.equal(accepted.status, 200)
  t.same(accepted.body, { contact_uid: alice.test.uid, status: 1 })

  const aliceSees = await desktop(app, 'get_data', {}, alice.session)
  t.same(aliceSees.body.contacts, [{ friend_login: bob.login, friend_uid: bob.test.uid, status: 1 }])

  const removed = await desktop(app, 'del_contact', { contact_uid: bob.test.uid }, alice.session)
  t.equal(removed.status, 200)
  t.same(removed.body, {})
  t.equal((await desktop(app, 'get_data', {}, alice.session)).body.contacts, null, 'alice has no contacts left')
  t.equal((await desktop(app, 'get_data', {}, bob.session)).body.contacts, null, 'bob has no contacts left')

  // Deny: No in the "add new contact" dialog.
  await desktop(app, 'add_contact_request', { login: bob.login }, alice.session)
  const denied = await desktop(app, 'add_contact_reply', { contact_uid: alice.test.uid, status: 2 }, bob.session)
  t.equal(denied.status, 200)
  t.same(denied.body, { contact_uid: alice.test.uid, status: 2 })
  t.same((await desktop(app, 'get_data', {}, alice.session)).body.contacts, [
    { friend_login: bob.login, friend_uid: bob.test.uid, status: 2 },
  ])
  // "Retry" on a denied contact re-sends the same request.
  const retried = await desktop(app, 'add_contact_request', { login: bob.login }, alice.session)
  t.equal(retried.status, 200)
  t.equal(retried.body.status, 0)
})

t.test('contact errors are bare JSON strings (the client terminates on anything else)', async (t) => {
  const app = await build(t)
  const alice = await desktopLogin(app)
  const bob = await desktopLogin(app)
  const carol = await desktopLogin(app)

  const unknown = await desktop(app, 'add_contact_request', { login: uniqueLogin('ghost') }, alice.session)
  t.equal(unknown.status, 404)
  isJsonContentType(t, unknown.headers, '404 add_contact_request')
  t.type(unknown.body, 'string', '404 body is a JSON string')
  t.match(unknown.raw, /^".*"$/)

  const self = await desktop(app, 'add_contact_request', { login: alice.login }, alice.session)
  t.equal(self.status, 400)
  t.type(self.body, 'string')

  await befriend(app, alice.test, bob.test)
  const already = await desktop(app, 'add_contact_request', { login: bob.login }, alice.session)
  t.equal(already.status, 409)
  t.equal(already.body, 'Already your contact')

  const notContact = await desktop(app, 'del_contact', { contact_uid: carol.test.uid }, alice.session)
  t.equal(notContact.status, 404)
  t.type(notContact.body, 'string', 'del_contact of a non-contact: a JSON string body')
  t.match(notContact.raw, /^".*"$/)

  const noSuchUser = await desktop(app, 'del_contact', { contact_uid: 987654321 }, alice.session)
  t.equal(noSuchUser.status, 404)
  t.type(noSuchUser.body, 'string')

  const noRequest = await desktop(app, 'add_contact_reply', { contact_uid: carol.test.uid, status: 1 }, alice.session)
  t.equal(noRequest.status, 404)
  t.type(noRequest.body, 'string')

  const notFriends = await desktop(app, 'send_msg', { to_uid: carol.test.uid, msg: 'hi' }, alice.session)
  t.equal(notFriends.status, 403)
  t.type(notFriends.body, 'string')
})

t.test('send_msg and update_data with last_update 0: reply shape as the desktop client reads it', async (t) => {
  const app = await build(t, { pollDefaultSeconds: 1 })
  const alice = await desktopLogin(app)
  const bob = await desktopLogin(app)
  await befriend(app, alice.test, bob.test)

  const text = 'hi bob "quoted" ünï'
  const before = Math.floor(Date.now() / 1000)
  const sent = await desktop(app, 'send_msg', { msg: text, to_uid: bob.test.uid }, alice.session)
  t.equal(sent.status, 200)
  isJsonContentType(t, sent.headers, 'send_msg')
  t.type(sent.body.msg_id, 'number')
  t.type(sent.body.time, 'number')

  const polled = await desktop(app, 'update_data', { last_update: 0 }, bob.session)
  t.equal(polled.status, 200)
  isJsonContentType(t, polled.headers, 'update_data')
  t.type(polled.body.server_time, 'number', 'server_time is a number')
  t.ok(polled.body.server_time >= before && polled.body.server_time <= Math.floor(Date.now() / 1000) + 1, 'server_time is UNIX seconds')
  t.notOk('event_array' in polled.body, 'no event_array key')
  t.notMatch(polled.raw, /"event_array"/, 'event_array appears nowhere in the reply')
  t.ok(Array.isArray(polled.body.msg_array))
  t.equal(polled.body.msg_array.length, 1)
  const item = polled.body.msg_array[0]
  t.equal(item.sender_login, alice.login)
  t.equal(item.sender_uid, alice.test.uid)
  t.type(item.sender_uid, 'number')
  t.equal(item.text, text, 'text round-trips with quotes and non-ASCII')
  t.type(item.time, 'number', 'time is a number')
  t.ok(item.time >= before - 1 && item.time <= Math.floor(Date.now() / 1000) + 1, 'time is UNIX seconds')
  t.equal(item.msg_id, sent.body.msg_id)
})

t.test('cursorless polling (last_update 0, repeatedly, paced like the client): a message arrives exactly once', async (t) => {
  // The desktop client sends no timeout: an idle poll is held POLL_DEFAULT_SECONDS (1 s
  // here), on the app's clock, which the test moves past it instead of waiting.
  const clock = new ManualClock()
  const app = await build(t, { pollDefaultSeconds: 1 }, undefined, clock)
  const alice = await desktopLogin(app)
  const bob = await desktopLogin(app)
  await befriend(app, alice.test, bob.test)
  const bobPolls = () => advancingWhileHeld(app, clock, desktop(app, 'update_data', { last_update: 0 }, bob.session), 1000)

  // Bob has nothing yet (the contact_accepted event went to alice): the idle poll is empty.
  const initial = await bobPolls()
  t.equal(initial.status, 200)
  t.same(initial.body.msg_array, [], 'nothing for bob yet')

  const received: string[] = []
  const texts = ['one', 'two', 'three']
  for (const text of texts) {
    const sent = await desktop(app, 'send_msg', { msg: text, to_uid: bob.test.uid }, alice.session)
    t.equal(sent.status, 200, `send ${text}`)
    // Several consecutive polls after each send; the client pauses between polls (2 s, shortened here).
    for (let i = 0; i < 3; i++) {
      await sleep(50)
      const polled = await bobPolls()
      t.equal(polled.status, 200)
      t.type(polled.body.server_time, 'number')
      t.notOk('event_array' in polled.body)
      for (const message of polled.body.msg_array as Json[]) received.push(message.text as string)
    }
  }
  t.same(received, texts, 'each message exactly once, in order, across consecutive polls')

  // Two messages sent back to back before a poll arrive together, once.
  await desktop(app, 'send_msg', { msg: 'four', to_uid: bob.test.uid }, alice.session)
  await desktop(app, 'send_msg', { msg: 'five', to_uid: bob.test.uid }, alice.session)
  const batch = await bobPolls()
  t.same(
    (batch.body.msg_array as Json[]).map((m) => m.text),
    ['four', 'five'],
  )
  await sleep(50)
  const after = await bobPolls()
  t.same(after.body.msg_array, [], 'nothing repeated on the next poll')

  // A modern client polling with a cursor on the same account is unaffected by the kept position.
  const modern = await call(app, 'update_data', { cursor: 0, timeout: 0 }, bob.test.token)
  t.same(
    (modern.body.msg_array as Json[]).map((m) => m.text),
    ['one', 'two', 'three', 'four', 'five'],
  )
})

t.test('cursorless polling back to back: the poll sent as soon as a reply is read never repeats it', async (t) => {
  // PROTOCOL A.6: without a cursor, the kept position moves once the reply was written out
  // in full, and the desktop client stores every message it receives (a repeat is a visible
  // duplicate). Many rounds of send, poll, poll-at-once, so that a race would show.
  const app = await build(t, { pollDefaultSeconds: 0 })
  const alice = await desktopLogin(app)
  const bob = await desktopLogin(app)
  await befriend(app, alice.test, bob.test)

  const rounds = 50
  const received: string[] = []
  const repeatedIn: number[] = []
  for (let i = 0; i < rounds; i++) {
    const sent = await desktop(app, 'send_msg', { msg: `m${i}`, to_uid: bob.test.uid }, alice.session)
    if (sent.status !== 200) t.fail(`send m${i}: ${sent.status}`)
    const first = await desktop(app, 'update_data', { last_update: 0 }, bob.session)
    const second = await desktop(app, 'update_data', { last_update: 0 }, bob.session)
    for (const message of [...first.body.msg_array, ...second.body.msg_array] as Json[]) received.push(message.text as string)
    if (second.body.msg_array.length > 0) repeatedIn.push(i)
  }
  t.same(repeatedIn, [], 'no round delivered a message twice')
  t.same(
    received,
    Array.from({ length: rounds }, (_, i) => `m${i}`),
    'every message exactly once, in order',
  )
})

t.test('cursorless polling while a writer holds the log: a reply read in full is still not repeated', async (t) => {
  // Any append to bob's log holds his users row (FOR NO KEY UPDATE, as its UPDATE of
  // log_head does) until it commits. Bob reading a reply and polling again at once in that
  // window must not get the reply again.
  const app = await build(t, { pollDefaultSeconds: 0 })
  const alice = await desktopLogin(app)
  const bob = await desktopLogin(app)
  await befriend(app, alice.test, bob.test)
  // Bob polls once first: that records him as seen (a write to his row), so his polls
  // below, within the presence sweep interval, do not wait on the writer's lock.
  await desktop(app, 'update_data', { last_update: 0 }, bob.session)

  const sent = await desktop(app, 'send_msg', { msg: 'only once', to_uid: bob.test.uid }, alice.session)
  t.equal(sent.status, 200)

  const writer = await app.db.transaction()
  const writerPid: number = (await writer.raw('SELECT pg_backend_pid() AS pid')).rows[0].pid
  // The writer gives up once both polls have answered, or once something has waited on it
  // for 200 ms (a poll stuck behind it), and after 5 s at most: the test never hangs on it.
  let polled = false
  let waitingSince: number | undefined
  const mayRollBack = async () => {
    if (polled) return true
    waitingSince = (await backendsWaitingOn(app, writerPid)) > 0 ? (waitingSince ?? performance.now()) : undefined
    return waitingSince !== undefined && performance.now() - waitingSince >= 200
  }
  const rolledBack = eventually(mayRollBack, { what: 'the polls to answer or to wait on the writer' })
    .catch(() => {})
    .then(() => (writer.isCompleted() ? undefined : writer.rollback()))
  let first: Awaited<ReturnType<typeof desktop>>
  let second: Awaited<ReturnType<typeof desktop>>
  try {
    await writer.raw('SELECT id FROM users WHERE id = ? FOR NO KEY UPDATE', [bob.test.uid])
    first = await desktop(app, 'update_data', { last_update: 0 }, bob.session)
    second = await desktop(app, 'update_data', { last_update: 0 }, bob.session)
    t.notOk(writer.isCompleted(), 'both polls answered while the writer still held the lock')
  } finally {
    polled = true
    await rolledBack
    if (!writer.isCompleted()) await writer.rollback()
  }
  t.equal(first.status, 200)
  t.same((first.body.msg_array as Json[]).map((m) => m.text), ['only once'], 'the first poll delivers the message')
  t.equal(second.status, 200)
  t.same(second.body.msg_array, [], 'the poll right after it does not deliver it again')

  await sleep(100)
  const third = await desktop(app, 'update_data', { last_update: 0 }, bob.session)
  t.same(third.body.msg_array, [], 'nor does a later one')
})

t.test('logout through POST /: 200, then the echoed session is refused with 401 and a string body', async (t) => {
  const app = await build(t, { pollDefaultSeconds: 1 })
  const alice = await desktopLogin(app)

  const out = await desktop(app, 'logout', {}, alice.session)
  t.equal(out.status, 200)
  isJsonContentType(t, out.headers, 'logout')
  t.same(out.body, {})

  const poll = await desktop(app, 'update_data', { last_update: 0 }, alice.session)
  t.equal(poll.status, 401, 'update_data after logout is 401 (stops the polling thread)')
  t.type(poll.body, 'string')
  const data = await desktop(app, 'get_data', {}, alice.session)
  t.equal(data.status, 401)
  t.type(data.body, 'string')
})

t.test('the session object is echoed verbatim: extra fields pass, no Authorization header needed', async (t) => {
  const app = await build(t)
  const alice = await desktopLogin(app)
  const withExtras = { ...alice.session, extra: [1, 2], note: 'xyz' }
  const data = await desktop(app, 'get_data', {}, withExtras)
  t.equal(data.status, 200)
  t.equal(data.body.contacts, null)

  const missing = await desktop(app, 'get_data', {})
  t.equal(missing.status, 401, 'no session at all: 401')
  t.type(missing.body, 'string')
})

t.test('a session whose uid or session_key does not match its token is 401', async (t) => {
  const app = await build(t)
  const alice = await desktopLogin(app)
  const bob = await desktopLogin(app)

  const wrongUid = await desktop(app, 'get_data', {}, { ...alice.session, uid: bob.test.uid })
  t.equal(wrongUid.status, 401)
  t.type(wrongUid.body, 'string')

  const wrongKey = await desktop(app, 'get_data', {}, { ...alice.session, session_key: bob.test.session_key })
  t.equal(wrongKey.status, 401)
  t.type(wrongKey.body, 'string')

  // Through the helper too (uid, session_key and token only).
  const viaHelper = await wiki(app, 'send_msg', { to_uid: alice.test.uid, msg: 'x' }, { ...bob.test, uid: alice.test.uid })
  t.equal(viaHelper.status, 401)
  t.type(viaHelper.body, 'string')

  // The same session object with a token the header contradicts.
  const disagree = await app.inject({
    method: 'POST',
    url: '/get_data',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${bob.test.token}` },
    payload: JSON.stringify({ session: alice.session }),
  })
  t.equal(disagree.statusCode, 401, 'header and body session disagree: 401')
})

t.test('unknown command → 400 with a JSON string body', async (t) => {
  const app = await build(t)
  const alice = await desktopLogin(app)
  const reply = await desktop(app, 'make_coffee', {}, alice.session)
  t.equal(reply.status, 400)
  isJsonContentType(t, reply.headers, 'unknown command')
  t.type(reply.body, 'string')
  t.match(reply.body, /make_coffee/)

  const noRequest = await app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/json' }, payload: '{}' })
  t.equal(noRequest.statusCode, 400, 'an envelope without request is 400')
  t.type(noRequest.json(), 'string')
})

t.test('wiki-dialect body validation error → 400 with a JSON string body', async (t) => {
  const app = await build(t)
  const alice = await desktopLogin(app)
  const bob = await desktopLogin(app)
  await befriend(app, alice.test, bob.test)

  const stringUid = await desktop(app, 'send_msg', { to_uid: String(bob.test.uid), msg: 'hi' }, alice.session)
  t.equal(stringUid.status, 400, 'to_uid as a string is not an id (no coercion)')
  t.type(stringUid.body, 'string')
  t.match(stringUid.raw, /^".*"$/)

  const noMsg = await desktop(app, 'send_msg', { to_uid: bob.test.uid }, alice.session)
  t.equal(noMsg.status, 400)
  t.type(noMsg.body, 'string')

  const badStatus = await desktop(app, 'add_contact_reply', { contact_uid: bob.test.uid, status: 7 }, alice.session)
  t.equal(badStatus.status, 400)
  t.type(badStatus.body, 'string')

  const badJson = await app.inject({ method: 'POST', url: '/', headers: { 'content-type': 'application/json' }, payload: '{"request":' })
  t.equal(badJson.statusCode, 400, 'malformed JSON is 400')
  t.type(badJson.json(), 'string', 'malformed JSON: a JSON string body too')

  // Nothing was stored by the refused send.
  const modern = await call(app, 'update_data', { cursor: 0, timeout: 0 }, bob.test.token)
  t.same(modern.body.msg_array, [])
})

t.test('modern dialect: a request field that names another command → 400 {error, message}', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)

  const mismatch = await call(app, 'send_msg', { request: 'logout', to_uid: bob.uid, msg: 'hi' }, alice.token)
  t.equal(mismatch.status, 400)
  t.equal(mismatch.body.error, 'bad_request')
  t.type(mismatch.body.message, 'string')

  // The session was not logged out and nothing was sent.
  const data = await call(app, 'get_data', {}, alice.token)
  t.equal(data.status, 200, 'the session is still alive')
  const polled = await call(app, 'update_data', { cursor: 0, timeout: 0 }, bob.token)
  t.same(polled.body.msg_array, [], 'no message was stored')

  const matching = await call(app, 'send_msg', { request: 'send_msg', to_uid: bob.uid, msg: 'hi' }, alice.token)
  t.equal(matching.status, 200, 'a matching request field is accepted')
  const alias = await call(app, 'authorization', { request: 'authorisation', login: alice.login, password: 'secret1' })
  t.equal(alias.status, 200, 'an alias of the command is a match')
})

t.test('one error, two renderings: the wiki string is the modern message; the modern body has the stable code', async (t) => {
  const app = await build(t)
  const alice = await desktopLogin(app)
  const bob = await desktopLogin(app)

  const cases: { command: string; body: Json; session?: TestSession; status: number; code: string }[] = [
    { command: 'registration', body: { login: alice.login, password: 'secret1' }, status: 409, code: 'login_taken' },
    { command: 'authorization', body: { login: alice.login, password: 'wrong-password' }, status: 401, code: 'unauthorized' },
    { command: 'add_contact_request', body: { login: uniqueLogin('ghost') }, session: alice.test, status: 404, code: 'not_found' },
    { command: 'del_contact', body: { contact_uid: bob.test.uid }, session: alice.test, status: 404, code: 'not_found' },
    { command: 'send_msg', body: { to_uid: bob.test.uid, msg: 'hi' }, session: alice.test, status: 403, code: 'not_friends' },
  ]
  for (const c of cases) {
    const asWiki = await wiki(app, c.command, c.body, c.session)
    const asModern = await call(app, c.command, c.body, c.session?.token)
    t.equal(asWiki.status, c.status, `${c.command}: wiki status ${c.status}`)
    t.equal(asModern.status, c.status, `${c.command}: modern status ${c.status}`)
    t.type(asWiki.body, 'string', `${c.command}: wiki body is a string`)
    t.same(Object.keys(asModern.body).sort(), ['error', 'message'], `${c.command}: modern body is {error, message}`)
    t.equal(asModern.body.error, c.code, `${c.command}: stable code ${c.code}`)
    t.equal(asWiki.body, asModern.body.message, `${c.command}: the wiki string is the modern message`)
  }

  await befriend(app, alice.test, bob.test)
  const already = await call(app, 'add_contact_request', { login: bob.login }, alice.test.token)
  t.equal(already.status, 409)
  t.equal(already.body.error, 'already_contact', 'asking a friend: already_contact')
})
