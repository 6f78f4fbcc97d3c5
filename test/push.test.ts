// Web Push (routes/push.ts, src/services/push.ts, src/push-delivery.ts) through HTTP on a
// real PostgreSQL, against a push service of the test's own (test/push-service.ts): the
// browsers' keys are the test's, and it decrypts every push itself (RFC 8291) and checks
// the VAPID signature (RFC 8292).
//
// What this file proves:
// - a direct message, a mention and a call to a user with no live poll push once per
//   subscription, with the payload the service worker reads (text only where opted in,
//   cut to PUSH_TEXT_MAX_CHARS), TTL, urgency and topic; a plain room message, a user
//   who blocked the sender, and an unsubscribed browser get none;
// - no push while the user has a live poll, held on this process or on another (the
//   database's last_seen_at), including the moment between two polls; one once their last
//   poll ended more than two presence sweeps ago;
// - delivery: 404 and 410 remove the subscription; 5xx and 429 are retried after
//   PUSH_RETRY_BASE_MS, doubling (the app's clock), and given up after PUSH_RETRIES; a
//   push service that does not answer within PUSH_TIMEOUT_MS fails the attempt; at most
//   PUSH_CONCURRENCY in flight and PUSH_QUEUE_LIMIT waiting, the rest dropped; the send
//   answers 200 while its push is still on its way; a stored endpoint that is no URL fails
//   its push, counted, with no unhandled rejection (which would stop the process);
// - the commands: get_push_key, push_subscribe (400 on malformed keys or endpoints, or one
//   that matches the pattern but is no URL with a host and a port in range, both
//   dialects; idempotent; an endpoint moves to the user who registers it; at most
//   MAX_PUSH_SUBSCRIPTIONS_PER_USER, 409 beyond), push_unsubscribe (idempotent); 401
//   without a session;
// - a subscription belongs to the session that made it: none is pushed once that session
//   ended (logout, logout_session, logout_all, change_password, expiry), one registered
//   again from a new session is; registering an endpoint again moves it to the caller's
//   session; those of expired sessions do not count toward the cap.
import { randomBytes } from 'node:crypto'
import { Ajv } from 'ajv'
import t from 'tap'
import type { App } from '../src/app.js'
import { ManualClock } from '../src/clock.js'
import { DEFAULTS } from '../src/config.js'
import { PUSH_ENDPOINT_MAX_CHARS, PUSH_TEXT_MAX_CHARS } from '../src/schemas/push.js'
import {
  befriend,
  build,
  call,
  createTestSchema,
  drain,
  eventually,
  logIn,
  metrics,
  metricValue,
  ok,
  signUp,
  TEST_VAPID_KEYS,
  wiki,
  type TestSession,
} from './helper.js'
import { browser, decrypt, fakePushService, vapidClaims, type Browser, type FakePushService } from './push-service.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>

const subscribe = (app: App, user: TestSession, device: Browser, includeText = false) =>
  ok(app, 'push_subscribe', { ...device.subscription, include_text: includeText }, user)

/** The first `count` pushes to this browser, once they arrived. */
async function pushesTo(service: FakePushService, device: Browser, count: number) {
  await eventually(() => service.to(device.name).length >= count, { what: `${count} push(es) to ${device.name}` })
  return service.to(device.name)
}

/** Once the app has no push left to look up, send or try again: what was to be pushed has reached the push service. */
const settled = (app: App) => eventually(() => app.services.push.stats().pending === 0, { what: 'the pushes to be done' })

async function friends(app: App) {
  const [alice, bob] = await Promise.all([signUp(app), signUp(app)])
  await befriend(app, alice, bob)
  return { alice, bob }
}

t.test('a direct message to a user with no live poll: one push per subscription, encrypted for it, text only where opted in', async (t) => {
  const service = await fakePushService(t)
  const app = await build(t)
  const { alice, bob } = await friends(app)
  const [laptop, phone] = [browser(service, 'laptop'), browser(service, 'phone')]
  t.strictSame(await subscribe(app, bob, laptop, true), { subscribed: true })
  t.strictSame(await subscribe(app, bob, phone), { subscribed: true }, 'include_text defaults to false')

  const sent = await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'hi bob' }, alice)
  const [toLaptop] = await pushesTo(service, laptop, 1)
  const [toPhone] = await pushesTo(service, phone, 1)
  const from = { from_uid: alice.uid, from_login: alice.login }
  t.strictSame(decrypt(toLaptop, laptop), { type: 'message', ...from, msg_id: sent.msg_id, text: 'hi bob' }, 'opted in: the text')
  t.strictSame(decrypt(toPhone, phone), { type: 'message', ...from, msg_id: sent.msg_id }, 'not opted in: who wrote, no text')
  const documented = new Ajv({ strict: false }).compile((app.swagger() as { components: { schemas: Record<string, object> } }).components.schemas.PushPayload!)
  t.ok(documented(decrypt(toLaptop, laptop)) && documented(decrypt(toPhone, phone)), "both are the OpenAPI document's PushPayload, which clients generate their types from")
  await settled(app)
  t.equal(service.received.length, 2, 'one push per subscription')

  t.equal(toLaptop.headers['content-encoding'], 'aes128gcm')
  t.equal(toLaptop.headers.ttl, String(DEFAULTS.PUSH_TTL_SECONDS), 'TTL: PUSH_TTL_SECONDS')
  t.equal(toLaptop.headers.urgency, 'normal', 'a chat message')
  t.equal(toLaptop.headers.topic, `dm-${alice.uid}`, "one waiting push per conversation: the latest replaces the one before")
  const claims = vapidClaims(toLaptop, TEST_VAPID_KEYS.publicKey)
  t.equal(claims.aud, service.url, 'VAPID: signed for the push service, with the public key get_push_key gives')
  t.equal(claims.sub, DEFAULTS.VAPID_SUBJECT)
  t.ok(claims.exp > Date.now() / 1000)

  const long = '😀'.repeat(PUSH_TEXT_MAX_CHARS + 100)
  await ok(app, 'send_msg', { to_uid: bob.uid, msg: long }, alice)
  const text = (decrypt((await pushesTo(service, laptop, 2))[1], laptop) as Json).text as string
  t.equal([...text].length, PUSH_TEXT_MAX_CHARS, `the text is cut to ${PUSH_TEXT_MAX_CHARS} characters`)
  t.equal(text, '😀'.repeat(PUSH_TEXT_MAX_CHARS - 1) + '…', 'the last one says so')
  const exact = 'x'.repeat(PUSH_TEXT_MAX_CHARS)
  await ok(app, 'send_msg', { to_uid: bob.uid, msg: exact }, alice)
  t.equal((decrypt((await pushesTo(service, laptop, 3))[2], laptop) as Json).text, exact, `${PUSH_TEXT_MAX_CHARS} characters go whole`)
})

t.test('no push while the user has a live poll, on this process or another, nor between two polls; one once the last poll ended two sweeps ago', async (t) => {
  const SWEEP_SECONDS = 30
  const clock = new ManualClock()
  const database = await createTestSchema(t)
  const config = { presenceSweepSeconds: SWEEP_SECONDS, presenceGraceSeconds: 2 * SWEEP_SECONDS }
  const here = await build(t, config, database, clock)
  const there = await build(t, config, database, clock)
  const service = await fakePushService(t)
  const { alice, bob } = await friends(here)
  const phone = browser(service, 'phone')
  await subscribe(here, bob, phone)

  for (const [app, where] of [
    [here, 'this process'],
    [there, 'another process'],
  ] as const) {
    const cursor = await drain(app, bob)
    const held = call(app, 'update_data', { cursor, timeout: 25 }, bob.token)
    await eventually(() => app.eventLog.polls.size === 1, { what: `bob's poll to be held on ${where}` })
    await ok(here, 'send_msg', { to_uid: bob.uid, msg: `while bob polls on ${where}` }, alice)
    t.equal((await held).body.msg_array.length, 1, `bob's poll on ${where} has it`)
    await ok(here, 'send_msg', { to_uid: bob.uid, msg: 'before his next poll' }, alice)
    await settled(here)
    t.equal(service.received.length, 0, `no push: a poll held on ${where}, then a moment between two polls`)
  }

  clock.advance(2 * SWEEP_SECONDS * 1000 + 1000)
  const late = await ok(here, 'send_msg', { to_uid: bob.uid, msg: 'are you there?' }, alice)
  const [push] = await pushesTo(service, phone, 1)
  t.equal((decrypt(push, phone) as Json).msg_id, late.msg_id, 'his last poll ended more than two presence sweeps ago: pushed')
})

t.test('a mention in a room pushes the mentioned (not the others, not those who blocked the sender); a plain room message pushes nobody', async (t) => {
  const service = await fakePushService(t)
  const app = await build(t)
  const [alice, bob, carol] = await Promise.all([signUp(app), signUp(app), signUp(app)])
  const room = (await ok(app, 'create_room', { name: 'General', type: 'public' }, alice)).room
  for (const user of [bob, carol]) await ok(app, 'join_room', { room_id: room.room_id }, user)
  const [bobs, carols] = [browser(service, 'bob'), browser(service, 'carol')]
  await subscribe(app, bob, bobs, true)
  await subscribe(app, carol, carols, true)

  await ok(app, 'send_msg', { room_id: room.room_id, msg: 'good morning' }, alice)
  await settled(app)
  t.equal(service.received.length, 0, 'a room message that mentions nobody pushes nobody')

  const text = `lunch, @${bob.login}?`
  const sent = await ok(app, 'send_msg', { room_id: room.room_id, msg: text }, alice)
  const [push] = await pushesTo(service, bobs, 1)
  t.strictSame(decrypt(push, bobs), {
    type: 'mention',
    from_uid: alice.uid,
    from_login: alice.login,
    room_id: room.room_id,
    room_name: 'General',
    msg_id: sent.msg_id,
    text,
  })
  t.equal(push.headers.topic, `room-${room.room_id}`)
  t.equal(push.headers.urgency, 'normal')
  await settled(app)
  t.equal(service.to('carol').length, 0, 'carol was not mentioned')

  await ok(app, 'block_user', { uid: alice.uid }, carol)
  await ok(app, 'send_msg', { room_id: room.room_id, msg: 'all hands at 3, @all' }, alice)
  await pushesTo(service, bobs, 2)
  await settled(app)
  t.equal(service.to('carol').length, 0, '@all: carol blocked alice, so her devices stay quiet')
})

t.test('a call to a user with no live poll ends as offline and pushes them, urgent', async (t) => {
  const service = await fakePushService(t)
  const app = await build(t)
  const { alice, bob } = await friends(app)
  const phone = browser(service, 'phone')
  await subscribe(app, bob, phone)
  const placed = await ok(app, 'call', { to_uid: bob.uid, offer: { type: 'offer', sdp: 'v=0' } }, alice)
  t.equal(placed.status, 'offline')
  const [push] = await pushesTo(service, phone, 1)
  t.strictSame(decrypt(push, phone), { type: 'call', from_uid: alice.uid, from_login: alice.login, call_id: placed.call_id })
  t.equal(push.headers.urgency, 'high')
  t.equal(push.headers.topic, `call-${alice.uid}`)
})

t.test('404 and 410 from the push service remove the subscription', async (t) => {
  const service = await fakePushService(t)
  const app = await build(t)
  const { alice, bob } = await friends(app)
  const [expired, unknown, fine] = [browser(service, 'expired'), browser(service, 'unknown'), browser(service, 'fine')]
  service.script('expired', [410])
  service.script('unknown', [404])
  for (const device of [expired, unknown, fine]) await subscribe(app, bob, device)

  await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'one' }, alice)
  await settled(app)
  const endpoints = await app.db('push_subscriptions').where({ user_id: bob.uid }).pluck('endpoint')
  t.strictSame(endpoints, [fine.subscription.endpoint], 'the gone ones are removed, the other stays')
  const text = await metrics(app)
  t.equal(metricValue(text, 'messenger_push_subscriptions_removed_total'), 2)
  t.equal(metricValue(text, 'messenger_pushes_sent_total'), 1)
  t.equal(metricValue(text, 'messenger_push_lookups_total'), 1, "bob holds no poll: the message's notice was looked up")
  t.equal(metricValue(text, 'messenger_push_lookup_statements_total'), 1, 'in one statement')

  await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'two' }, alice)
  await pushesTo(service, fine, 2)
  await settled(app)
  t.strictSame([service.to('expired').length, service.to('unknown').length], [1, 1], 'and are not pushed again')
})

t.test('5xx and 429 are tried again after PUSH_RETRY_BASE_MS, then twice as long each time, until delivered', async (t) => {
  const BASE_MS = 1000
  const clock = new ManualClock()
  const service = await fakePushService(t)
  const app = await build(t, { pushRetries: 3, pushRetryBaseMs: BASE_MS }, undefined, clock)
  const { alice, bob } = await friends(app)
  const flaky = browser(service, 'flaky')
  service.script('flaky', [500, 503, 429, 201])
  await subscribe(app, bob, flaky)

  const sent = await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'third time lucky' }, alice)
  const stats = () => app.services.push.stats()
  for (const [attempt, waitMs] of [
    [1, BASE_MS],
    [2, 2 * BASE_MS],
    [3, 4 * BASE_MS],
  ]) {
    await eventually(() => stats().retrying === 1, { what: `attempt ${attempt} to fail` })
    t.equal(service.to('flaky').length, attempt)
    clock.advance(waitMs - 1)
    t.equal(stats().retrying, 1, `not tried again within ${waitMs - 1} ms`)
    clock.advance(1)
    t.equal(stats().retrying, 0, `tried again after ${waitMs} ms`)
  }
  const pushes = await pushesTo(service, flaky, 4)
  await settled(app)
  t.equal(stats().sent, 1, 'delivered at the fourth attempt')
  t.equal(stats().failed, 0)
  for (const push of pushes) t.equal((decrypt(push, flaky) as Json).msg_id, sent.msg_id, 'each attempt carries the push, encrypted afresh')
})

t.test('a push service that keeps failing: given up after PUSH_RETRIES retries; the send was answered at once all the same', async (t) => {
  const BASE_MS = 1000
  const RETRIES = 2
  const clock = new ManualClock()
  const service = await fakePushService(t)
  const app = await build(t, { pushRetries: RETRIES, pushRetryBaseMs: BASE_MS }, undefined, clock)
  const { alice, bob } = await friends(app)
  const down = browser(service, 'down')
  service.script('down', ['hang', 500])
  await subscribe(app, bob, down)

  const sent = await call(app, 'send_msg', { to_uid: bob.uid, msg: 'hello?' }, alice.token)
  t.equal(sent.status, 200)
  await pushesTo(service, down, 1)
  t.equal(app.services.push.stats().pending, 1, 'answered while the push service still holds its push')
  service.release() // answered 201 at last
  await settled(app)
  t.equal(app.services.push.stats().sent, 1)

  await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'anyone?' }, alice)
  for (let retry = 1; retry <= RETRIES; retry++) {
    await eventually(() => app.services.push.stats().retrying === 1, { what: `attempt ${retry} to fail` })
    clock.advance(BASE_MS * 2 ** (retry - 1))
  }
  await eventually(() => app.services.push.stats().failed === 1, { what: 'the push to be given up' })
  await settled(app)
  clock.advance(60_000)
  t.equal(app.services.push.stats().pending, 0, 'nothing left to try, a minute later')
  t.equal(service.to('down').length, 1 + 1 + RETRIES, 'the second push: one attempt and PUSH_RETRIES retries')
  t.equal(metricValue(await metrics(app), 'messenger_pushes_failed_total'), 1)
})

t.test('no answer within PUSH_TIMEOUT_MS fails the attempt', async (t) => {
  const service = await fakePushService(t)
  const app = await build(t, { pushTimeoutMs: 100, pushRetries: 0 })
  const { alice, bob } = await friends(app)
  const mute = browser(service, 'mute')
  service.script('mute', ['hang'])
  await subscribe(app, bob, mute)
  await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'hm' }, alice)
  await eventually(() => app.services.push.stats().failed === 1, { what: 'the attempt to time out' })
  t.equal(service.to('mute').length, 1)
  t.equal(app.services.push.stats().pending, 0)
})

t.test('at most PUSH_CONCURRENCY pushes in flight and PUSH_QUEUE_LIMIT waiting: the rest are dropped', async (t) => {
  const service = await fakePushService(t)
  const app = await build(t, { pushConcurrency: 1, pushQueueLimit: 2 })
  const { alice, bob } = await friends(app)
  const devices = Array.from({ length: 5 }, (_, i) => browser(service, `device${i}`))
  service.script('device0', ['hang'])
  for (const device of devices) await subscribe(app, bob, device)

  await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'to all my devices' }, alice)
  await pushesTo(service, devices[0], 1)
  t.equal(app.services.push.stats().dropped, 2, 'one in flight, two waiting, two dropped')
  t.equal(service.received.length, 1, 'one at a time')
  service.release()
  await settled(app)
  t.strictSame(
    service.received.map((push) => push.name),
    ['device0', 'device1', 'device2'],
    'the waiting ones go once the one in flight is done',
  )
  t.equal(metricValue(await metrics(app), 'messenger_pushes_dropped_total'), 2)
})

t.test('get_push_key: the VAPID public key, the same for every process of the server; 401 without a session', async (t) => {
  const database = await createTestSchema(t)
  const [one, two] = [await build(t, {}, database), await build(t, {}, database)]
  const user = await signUp(one)
  t.strictSame(await ok(one, 'get_push_key', {}, user), { public_key: TEST_VAPID_KEYS.publicKey })
  t.strictSame(await ok(two, 'get_push_key', {}, user), { public_key: TEST_VAPID_KEYS.publicKey })
  t.strictSame((await wiki(one, 'get_push_key', {}, user)).body, { public_key: TEST_VAPID_KEYS.publicKey }, 'the wiki dialect')
  const subscription = browser(await fakePushService(t), 'phone').subscription
  const bodies: [string, Json][] = [
    ['get_push_key', {}],
    ['push_subscribe', subscription],
    ['push_unsubscribe', { endpoint: subscription.endpoint }],
  ]
  for (const [command, body] of bodies) {
    t.equal((await call(one, command, body)).status, 401, `${command} without a session`)
    t.equal((await wiki(one, command, body)).status, 401, `${command} without a session, wiki dialect`)
  }
})

t.test('push_subscribe refuses malformed endpoints and keys with 400, in both dialects', async (t) => {
  const service = await fakePushService(t)
  const app = await build(t)
  const user = await signUp(app)
  const good = browser(service, 'good').subscription
  const keys = good.keys
  const longest = 'https://push.example/' + 'a'.repeat(PUSH_ENDPOINT_MAX_CHARS - 'https://push.example/'.length)
  const bad: [string, Json][] = [
    ['an endpoint that is not http(s)', { ...good, endpoint: 'ftp://push.example/x' }],
    ['an endpoint with a space', { ...good, endpoint: 'https://push.example/a b' }],
    [`an endpoint over ${PUSH_ENDPOINT_MAX_CHARS} characters`, { ...good, endpoint: longest + 'a' }],
    ['a p256dh a character short', { ...good, keys: { ...keys, p256dh: keys.p256dh.slice(0, -1) } }],
    ['a p256dh in base64, not base64url', { ...good, keys: { ...keys, p256dh: '+' + keys.p256dh.slice(1) } }],
    ['a p256dh not on the curve', { ...good, keys: { ...keys, p256dh: 'B' + 'A'.repeat(86) } }],
    ['a p256dh that is not an uncompressed point', { ...good, keys: { ...keys, p256dh: 'Bw' + keys.p256dh.slice(2) } }],
    ['an auth of 15 bytes', { ...good, keys: { ...keys, auth: randomBytes(15).toString('base64url') } }],
    ['an auth of 17 bytes', { ...good, keys: { ...keys, auth: randomBytes(17).toString('base64url') } }],
    ['no keys', { endpoint: good.endpoint }],
    ['a key too many', { ...good, keys: { ...keys, extra: 'x' } }],
    ['include_text not a boolean', { ...good, include_text: 'yes' }],
  ]
  for (const [what, body] of bad) {
    const modern = await call(app, 'push_subscribe', body, user.token)
    t.equal(modern.status, 400, what)
    t.equal(modern.body.error, 'bad_request', `${what}: the error's code`)
    const old = await wiki(app, 'push_subscribe', body, user)
    t.equal(old.status, 400, `${what}, wiki dialect`)
    t.equal(typeof old.body, 'string', `${what}, wiki dialect: the message as a JSON string`)
  }
  t.equal((await app.db('push_subscriptions').count({ n: '*' }))[0].n, 0, 'none was stored')

  t.strictSame(await ok(app, 'push_subscribe', { ...good, endpoint: longest }, user), { subscribed: true }, `an endpoint of ${PUSH_ENDPOINT_MAX_CHARS} characters is fine`)
  const padded = { ...good, keys: { p256dh: `${keys.p256dh}=`, auth: `${keys.auth}==` } }
  t.strictSame(await ok(app, 'push_subscribe', padded, user), { subscribed: true }, 'keys with base64 padding are fine')
  t.strictSame((await wiki(app, 'push_subscribe', { ...good, include_text: true }, user)).body, { subscribed: true }, 'the wiki dialect')
})

/** Endpoints the schema's pattern lets through that are no URL: web-push throws on the first two, fetch refuses the third. */
const NOT_URLS = ['https://[', 'http://x:99999/', 'https://a%zz']

t.test('an endpoint that passes the pattern but is not a URL (https://[, http://x:99999/, https://a%zz, port 0) is 400 at push_subscribe, in both dialects', async (t) => {
  const service = await fakePushService(t)
  const app = await build(t)
  const user = await signUp(app)
  const good = browser(service, 'good').subscription
  for (const endpoint of [...NOT_URLS, 'https://push.example:0/x']) {
    const modern = await call(app, 'push_subscribe', { ...good, endpoint }, user.token)
    t.equal(modern.status, 400, endpoint)
    t.equal(modern.body.error, 'bad_request', `${endpoint}: the error's code`)
    const old = await wiki(app, 'push_subscribe', { ...good, endpoint }, user)
    t.equal(old.status, 400, `${endpoint}, wiki dialect`)
    t.equal(typeof old.body, 'string', `${endpoint}, wiki dialect: the message as a JSON string`)
  }
  t.equal((await app.db('push_subscriptions').count({ n: '*' }))[0].n, 0, 'none was stored')
  t.strictSame(await ok(app, 'push_subscribe', { ...good, endpoint: 'http://push.example:65535/x' }, user), { subscribed: true }, 'port 65535 is fine')
})

t.test('a stored endpoint that is not a URL crashed the server: its push now fails, counted, with no unhandled rejection, and the server keeps answering', async (t) => {
  const rejections: unknown[] = []
  const onRejection = (reason: unknown) => void rejections.push(reason)
  process.on('unhandledRejection', onRejection)
  t.teardown(() => void process.off('unhandledRejection', onRejection))
  const clock = new ManualClock()
  const service = await fakePushService(t)
  const app = await build(t, { pushRetries: 1, pushRetryBaseMs: 1000 }, undefined, clock)
  const { alice, bob } = await friends(app)
  const fine = browser(service, 'fine')
  await subscribe(app, bob, fine)
  // Stored as an older server (or a hand-made row) might have: past push_subscribe's check.
  const { keys } = browser(service, 'bad').subscription
  await app.db('push_subscriptions').insert(
    NOT_URLS.map((endpoint) => ({ user_id: bob.uid, session_id: bob.session_key, endpoint, p256dh: keys.p256dh, auth: keys.auth })),
  )

  /** A message to bob; the push web-push builds but fetch refuses is tried again, then given up after PUSH_RETRIES. */
  async function sendAndSettle(msg: string, pushes: number) {
    await ok(app, 'send_msg', { to_uid: bob.uid, msg }, alice)
    await pushesTo(service, fine, pushes)
    await eventually(() => app.services.push.stats().retrying === 1, { what: 'https://a%zz to be tried again' })
    clock.advance(1000)
    await settled(app)
    await new Promise((resolve) => setImmediate(resolve))
  }

  await sendAndSettle('one', 1)
  t.strictSame(rejections, [], 'no unhandled rejection')
  t.equal(app.services.push.stats().failed, NOT_URLS.length, 'each failed push is counted')
  t.equal(metricValue(await metrics(app), 'messenger_pushes_failed_total'), NOT_URLS.length)

  await sendAndSettle('two', 2)
  t.equal(app.services.push.stats().failed, 2 * NOT_URLS.length, 'and again: the server is still up')
  t.strictSame(rejections, [], 'still none')
})

t.test('signing out left the browser subscribed: after logout, logout_session, logout_all or change_password elsewhere, or its expiry, the session\'s browser gets no push; subscribed again after signing in, it does', async (t) => {
  const TTL_SECONDS = 3600
  const clock = new ManualClock()
  const service = await fakePushService(t)
  const app = await build(t, { sessionTtlSeconds: TTL_SECONDS }, undefined, clock)
  const ends: [how: string, end: (bob: TestSession) => Promise<unknown>, password?: string][] = [
    ['logout', (bob) => ok(app, 'logout', {}, bob)],
    ['logout_session from another session', async (bob) => ok(app, 'logout_session', { session_key: bob.session_key }, await logIn(app, bob))],
    ['logout_all from another session, which stays', async (bob) => ok(app, 'logout_all', { keep_current: true }, await logIn(app, bob))],
    ['change_password from another session', async (bob) => ok(app, 'change_password', { old_password: 'secret1', new_password: 'secret2' }, await logIn(app, bob)), 'secret2'],
    ['the session expired', async () => clock.advance(TTL_SECONDS * 1000 + 1000)],
  ]
  for (const [how, end, password] of ends) {
    const { alice, bob } = await friends(app)
    const shared = browser(service, `shared-by-${bob.uid}`)
    await subscribe(app, bob, shared, true)
    await end(bob)
    const sender = await logIn(app, alice) // a session of hers that has not expired
    await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'for bob only' }, sender)
    await settled(app)
    t.equal(service.to(shared.name).length, 0, `${how}: no push to the browser bob signed out of`)
    if (!how.includes('expired')) t.equal((await app.db('push_subscriptions').where({ user_id: bob.uid }).count({ n: '*' }))[0].n, 0, `${how}: its subscription is deleted`)

    const again = await logIn(app, bob, password)
    await subscribe(app, again, shared, true)
    const sent = await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'welcome back' }, sender)
    const [push] = await pushesTo(service, shared, 1)
    t.strictSame(decrypt(push, shared), { type: 'message', from_uid: alice.uid, from_login: alice.login, msg_id: sent.msg_id, text: 'welcome back' }, `${how}: signed in and subscribed again, pushed`)
  }
})

t.test('a subscription belongs to the session that registered it: registered again from another session, it moves there', async (t) => {
  const service = await fakePushService(t)
  const app = await build(t)
  const { alice, bob } = await friends(app)
  const [first, second] = [bob, await logIn(app, bob)]
  const laptop = browser(service, 'laptop')
  await subscribe(app, first, laptop)
  await subscribe(app, second, laptop)
  const row = await app.db('push_subscriptions').where({ endpoint: laptop.subscription.endpoint }).first('session_id')
  t.equal(Number(row.session_id), second.session_key, 'the second session has it now')
  await ok(app, 'logout', {}, first)
  await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'still here?' }, alice)
  await pushesTo(service, laptop, 1)
  t.pass('the first session signed out: the laptop, now the second session\'s, is still pushed')
  await ok(app, 'logout', {}, second)
  await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'gone?' }, alice)
  await settled(app)
  t.equal(service.to('laptop').length, 1, 'the second signed out too: no more')
})

t.test('subscriptions of a session that expired do not count toward MAX_PUSH_SUBSCRIPTIONS_PER_USER', async (t) => {
  const TTL_SECONDS = 3600
  const clock = new ManualClock()
  const service = await fakePushService(t)
  const app = await build(t, { sessionTtlSeconds: TTL_SECONDS, maxPushSubscriptionsPerUser: 1 }, undefined, clock)
  const bob = await signUp(app)
  await subscribe(app, bob, browser(service, 'old-phone'))
  clock.advance(TTL_SECONDS * 1000 + 1000)
  const again = await logIn(app, bob)
  t.strictSame(await subscribe(app, again, browser(service, 'new-phone')), { subscribed: true }, 'the expired session\'s subscription is not in the way')
  t.strictSame(await app.db('push_subscriptions').where({ user_id: bob.uid }).pluck('endpoint'), [browser(service, 'new-phone').subscription.endpoint], 'and is forgotten')
})

t.test('subscriptions: at most MAX_PUSH_SUBSCRIPTIONS_PER_USER; subscribing again updates; an endpoint moves to its new user; unsubscribing is idempotent', async (t) => {
  const CAP = 3
  const service = await fakePushService(t)
  const app = await build(t, { maxPushSubscriptionsPerUser: CAP })
  const { alice, bob } = await friends(app)
  const carol = await signUp(app)
  const devices = Array.from({ length: CAP + 1 }, (_, i) => browser(service, `device${i}`))
  for (const device of devices.slice(0, CAP)) await subscribe(app, bob, device)
  const over = await call(app, 'push_subscribe', devices[CAP].subscription, bob.token)
  t.equal(over.status, 409, `subscription ${CAP + 1} is refused`)
  t.equal(over.body.error, 'invalid_state')
  t.strictSame(await subscribe(app, bob, devices[0], true), { subscribed: true }, 'at the cap, subscribing one of mine again is an update')
  const includeText = await app.db('push_subscriptions').where({ endpoint: devices[0].subscription.endpoint }).first('include_text')
  t.equal(includeText.include_text, true, 'its include_text changed')

  t.strictSame(await ok(app, 'push_unsubscribe', { endpoint: devices[1].subscription.endpoint }, bob), {})
  t.strictSame(await ok(app, 'push_unsubscribe', { endpoint: devices[1].subscription.endpoint }, bob), {}, 'twice is once')
  t.strictSame(await ok(app, 'push_unsubscribe', { endpoint: 'https://push.example/never' }, bob), {}, 'an unknown endpoint: {} too')
  await subscribe(app, bob, devices[CAP])

  await subscribe(app, carol, devices[2])
  const owners = await app.db('push_subscriptions').select('endpoint', 'user_id').orderBy('id')
  t.equal(owners.find((row: Json) => row.endpoint === devices[2].subscription.endpoint).user_id, carol.uid, "carol registered bob's endpoint: it is hers now")
  t.strictSame(await ok(app, 'push_unsubscribe', { endpoint: devices[2].subscription.endpoint }, bob), {}, "bob's unsubscribe of it: {} …")
  t.equal((await app.db('push_subscriptions').where({ user_id: carol.uid }).count({ n: '*' }))[0].n, 1, '… and carol keeps it')
  await subscribe(app, bob, devices[1])
  t.equal((await call(app, 'push_subscribe', browser(service, 'one-more').subscription, bob.token)).status, 409, 'bob is at the cap again')

  await ok(app, 'push_unsubscribe', { endpoint: devices[0].subscription.endpoint }, bob)
  await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'hi' }, alice)
  await settled(app)
  t.strictSame(service.received.map((push) => push.name).sort(), ['device1', 'device3'], 'pushes go to his subscriptions now, and no other')
})
