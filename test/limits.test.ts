// Limits and robustness: bad input is a 4xx JSON error (never a 5xx), the configured caps
// (message length, rate limit, long-poll hold, held polls, batch size) and the transport
// guarantees (cursorless position, keep-alive, graceful shutdown) of PROTOCOL.md part A.
import http from 'node:http'
import net, { type AddressInfo, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import type { App } from '../src/app.js'
import { ManualClock } from '../src/clock.js'
import { createKnex } from '../src/database.js'
import { PROMPT_MS, backendsWaitingOn, drain, eventually, sleep, befriend, build, call, poll, signUp, type TestSession } from './helper.js'

type Json = Record<string, unknown>

interface RawReply {
  status: number
  headers: Record<string, unknown>
  text: string
  body: unknown
}

/** POST with a raw (string) payload through app.inject. */
async function post(app: App, url: string, payload: string | Buffer, headers: Record<string, string> = {}): Promise<RawReply> {
  const response = await app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': 'application/json', ...headers },
    payload,
  })
  let body: unknown
  try {
    body = JSON.parse(response.body)
  } catch {
    body = undefined
  }
  return { status: response.statusCode, headers: response.headers, text: response.body, body }
}

/** Asserts a modern-dialect error: the status, JSON content type and `{error: code, message}`. */
function isError(t: Test, reply: { status: number; headers: Json; body: unknown }, status: number, code: string, what: string) {
  t.equal(reply.status, status, `${what}: status ${status}`)
  t.match(String(reply.headers['content-type']), /^application\/json/, `${what}: JSON content type`)
  t.match(reply.body, { error: code, message: String }, `${what}: {error: "${code}", message}`)
  t.same(Object.keys((reply.body ?? {}) as Json).sort(), ['error', 'message'], `${what}: only error and message`)
}


/** A second session of the same user. */
async function login(app: App, user: TestSession, password = 'secret1'): Promise<TestSession> {
  const authorized = await call(app, 'authorization', { login: user.login, password })
  if (authorized.status !== 200) throw new Error(`authorization failed: ${JSON.stringify(authorized.body)}`)
  const session = authorized.body.session
  return { uid: session.uid, session_key: session.session_key, token: session.token, login: user.login }
}

/** An update_data through app.inject that records when it was answered. */
function heldPoll(app: App, session: TestSession, body: Json) {
  const started = Date.now()
  const state: { done: boolean; elapsed: number } = { done: false, elapsed: 0 }
  const promise = call(app, 'update_data', body, session.token).then((reply) => {
    state.done = true
    state.elapsed = Date.now() - started
    return reply
  })
  return { state, promise }
}

/**
 * A poll held on an app with a ManualClock, whose hold began at `began` on that clock:
 * moves the clock to 1 ms before `holdMs`, checks that the poll is still held, then to
 * `holdMs`, and returns the reply, which must come at once.
 */
async function answeredAtTimeout(t: Test, clock: ManualClock, held: ReturnType<typeof heldPoll>, began: number, holdMs: number, what: string) {
  clock.advance(began + holdMs - 1 - clock.now())
  await sleep(50) // time to answer, were it to answer early
  t.notOk(held.state.done, `${what}: still held 1 ms before ${holdMs} ms`)
  clock.advance(1)
  await eventually(() => held.state.done, { what: `${what} to answer at ${holdMs} ms`, timeoutMs: 2000 })
  t.pass(`${what}: answered at ${holdMs} ms on the app's clock`)
  return held.promise
}

interface HttpReply {
  status: number
  headers: http.IncomingHttpHeaders
  body: unknown
  socket: Socket
  reusedSocket: boolean
}

/** A real HTTP request to a listening app. */
function httpRequest(
  port: number,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: string; agent?: http.Agent | false },
): { request: http.ClientRequest; reply: Promise<HttpReply> } {
  const request = http.request({
    host: '127.0.0.1',
    port,
    method: options.method ?? 'GET',
    path: options.path,
    headers: { ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}), ...options.headers },
    agent: options.agent ?? false,
  })
  const reply = new Promise<HttpReply>((resolve, reject) => {
    request.on('error', reject)
    request.on('response', (response) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk) => (text += chunk))
      response.on('error', reject)
      response.on('end', () => {
        let body: unknown
        try {
          body = JSON.parse(text)
        } catch {
          body = text
        }
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body, socket: request.socket as Socket, reusedSocket: request.reusedSocket })
      })
    })
  })
  request.end(options.body)
  return { request, reply }
}

async function listen(app: App): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as AddressInfo).port
}

function nested(depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth)
}

t.test('bad input is a 4xx JSON error with a stable code, never a 5xx', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const auth = { authorization: `Bearer ${alice.token}` }

  t.test('malformed and empty JSON bodies', async (t) => {
    isError(t, await post(app, '/send_msg', '{"to_uid": 1, "msg": ', auth), 400, 'bad_request', 'truncated JSON')
    isError(t, await post(app, '/send_msg', "{to_uid: 1, 'msg': 'x'}", auth), 400, 'bad_request', 'not JSON at all')
    isError(t, await post(app, '/registration', '{"login": "a",}'), 400, 'bad_request', 'trailing comma')
    isError(t, await post(app, '/send_msg', '', auth), 400, 'bad_request', 'empty body with content-type json')
    const wikiReply = await post(app, '/', '{"request": "update_data"')
    t.equal(wikiReply.status, 400, 'malformed JSON, wiki route: 400')
    t.type(wikiReply.body, 'string', 'malformed JSON, wiki route: the error is a bare JSON string')
  })

  t.test('wrong types', async (t) => {
    const cases: [string, Json, Record<string, string>][] = [
      ['to_uid as string', { to_uid: String(bob.uid), msg: 'hi' }, auth],
      ['msg as number', { to_uid: bob.uid, msg: 42 }, auth],
      ['msg as null', { to_uid: bob.uid, msg: null }, auth],
      ['msg as array', { to_uid: bob.uid, msg: ['hi'] }, auth],
      ['to_uid as boolean', { to_uid: true, msg: 'hi' }, auth],
    ]
    for (const [what, body, headers] of cases) isError(t, await post(app, '/send_msg', JSON.stringify(body), headers), 400, 'bad_request', what)
    isError(t, await post(app, '/registration', JSON.stringify({ login: { a: 1 }, password: 'secret1' })), 400, 'bad_request', 'login as object')
    isError(t, await post(app, '/authorization', JSON.stringify({ login: ['x'], password: 'secret1' })), 400, 'bad_request', 'login as array')
    isError(t, await post(app, '/update_data', JSON.stringify({ cursor: '0' }), auth), 400, 'bad_request', 'cursor as string')
    isError(t, await post(app, '/update_data', JSON.stringify({ timeout: '1' }), auth), 400, 'bad_request', 'timeout as string')
    isError(t, await post(app, '/send_msg', '[]', auth), 400, 'bad_request', 'body is an array')
    isError(t, await post(app, '/send_msg', '"hello"', auth), 400, 'bad_request', 'body is a string')
    isError(t, await post(app, '/send_msg', 'null', auth), 400, 'bad_request', 'body is null')
  })

  t.test('missing required fields', async (t) => {
    isError(t, await post(app, '/send_msg', JSON.stringify({ msg: 'hi' }), auth), 400, 'bad_request', 'send_msg without to_uid')
    isError(t, await post(app, '/send_msg', JSON.stringify({ to_uid: bob.uid }), auth), 400, 'bad_request', 'send_msg without msg')
    isError(t, await post(app, '/send_msg', '{}', auth), 400, 'bad_request', 'send_msg with {}')
    isError(t, await post(app, '/registration', JSON.stringify({ login: 'nopassword' })), 400, 'bad_request', 'registration without password')
    isError(t, await post(app, '/authorization', JSON.stringify({ password: 'secret1' })), 400, 'bad_request', 'authorization without login')
    isError(t, await post(app, '/add_contact_reply', JSON.stringify({ contact_uid: bob.uid }), auth), 400, 'bad_request', 'reply without status')
  })

  t.test('negative, fractional, zero and oversized ids', async (t) => {
    const ids: [string, string][] = [
      ['negative', '-1'],
      ['zero', '0'],
      ['fractional', '1.5'],
      ['2^53 + 1', '9007199254740993'],
      ['2^53', '9007199254740992'],
      ['2^64', '18446744073709551616'],
      ['1e300', '1e300'],
    ]
    for (const [what, id] of ids) {
      isError(t, await post(app, '/send_msg', `{"to_uid": ${id}, "msg": "hi"}`, auth), 400, 'bad_request', `to_uid ${what}`)
      isError(t, await post(app, '/add_contact_reply', `{"contact_uid": ${id}, "status": 1}`, auth), 400, 'bad_request', `contact_uid ${what}`)
    }
    isError(t, await post(app, '/update_data', '{"cursor": -1, "timeout": 0}', auth), 400, 'bad_request', 'negative cursor')
    isError(t, await post(app, '/update_data', '{"cursor": 1.5, "timeout": 0}', auth), 400, 'bad_request', 'fractional cursor')
    isError(t, await post(app, '/update_data', '{"cursor": 9007199254740993, "timeout": 0}', auth), 400, 'bad_request', 'cursor above 2^53')
    isError(t, await post(app, '/update_data', '{"timeout": -1}', auth), 400, 'bad_request', 'negative timeout')
    // A valid id still works: the refusals were about the values, not the route.
    const sent = await post(app, '/send_msg', `{"to_uid": ${bob.uid}, "msg": "hi"}`, auth)
    t.equal(sent.status, 200, 'a well-formed send_msg is accepted')
  })

  t.test('unknown route', async (t) => {
    isError(t, await post(app, '/no_such_command', '{}', auth), 404, 'not_found', 'POST to an unknown command')
    const get = await app.inject({ method: 'GET', url: '/definitely/not/here?x=1' })
    isError(t, { status: get.statusCode, headers: get.headers, body: get.json() }, 404, 'not_found', 'GET of an unknown path')
    isError(t, await post(app, '/send_msg/extra', '{}', auth), 404, 'not_found', 'a command path with a suffix')
  })

  t.test('wrong content type', async (t) => {
    const body = JSON.stringify({ to_uid: bob.uid, msg: 'hi' })
    isError(t, await post(app, '/send_msg', body, { ...auth, 'content-type': 'text/plain' }), 415, 'unsupported_media_type', 'text/plain')
    isError(t, await post(app, '/registration', 'login=a&password=b', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type', 'form-urlencoded')
  })

  t.test('body over 1 MiB', async (t) => {
    const big = JSON.stringify({ to_uid: bob.uid, msg: 'x'.repeat(1024 * 1024 + 10) })
    isError(t, await post(app, '/send_msg', big, auth), 413, 'payload_too_large', 'send_msg with 1 MiB of text')
    const extra = JSON.stringify({ login: 'biggy', password: 'secret1', padding: 'y'.repeat(1024 * 1024) })
    isError(t, await post(app, '/registration', extra), 413, 'payload_too_large', 'registration with a 1 MiB extra field')
    const reply = await post(app, '/', JSON.stringify({ request: 'registration', login: 'biggy2', password: 'secret1', padding: 'z'.repeat(1024 * 1024) }))
    t.equal(reply.status, 413, 'wiki dialect: 413 too')
    t.type(reply.body, 'string', 'wiki dialect: the error is a bare JSON string')
  })

  t.test('deeply nested JSON', async (t) => {
    const depth = 10_000
    // In a validated field: refused by the schema.
    isError(t, await post(app, '/send_msg', `{"to_uid": ${bob.uid}, "msg": ${nested(depth)}}`, auth), 400, 'bad_request', 'nested arrays as msg')
    // In an extra field of an otherwise bad request: the request's own fault is reported.
    isError(t, await post(app, '/registration', `{"login": "deep", "extra": ${nested(depth)}}`), 400, 'bad_request', 'nested extra, no password')
    isError(t, await post(app, '/send_msg', `{"to_uid": ${bob.uid}, "msg": "hi", "extra": ${nested(depth)}}`), 400, 'bad_request', 'nested extra, no token: the unknown field first')
    isError(t, await post(app, '/send_msg', `{"to_uid": "x", "extra": ${nested(depth)}}`, auth), 400, 'bad_request', 'nested extra, bad to_uid')
    // Deeper still, in objects, and with a __proto__ key that makes the parser scan the tree.
    const objects = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)
    isError(t, await post(app, '/send_msg', `{"to_uid": -5, "msg": "hi", "extra": ${objects}}`, auth), 400, 'bad_request', 'nested objects')
    const proto = '{"a":'.repeat(depth) + '{"__proto__": {"x": 1}}' + '}'.repeat(depth)
    const protoReply = await post(app, '/send_msg', `{"to_uid": ${bob.uid}, "msg": "hi", "extra": ${proto}}`, auth)
    t.ok(protoReply.status >= 400 && protoReply.status < 500, `nested __proto__: 4xx (got ${protoReply.status})`)
    t.match(protoReply.body, { error: String, message: String }, 'nested __proto__: JSON error body')
    const wikiReply = await post(app, '/', `{"request": "send_msg", "to_uid": "x", "msg": "hi", "extra": ${nested(100_000)}}`)
    t.equal(wikiReply.status, 400, 'wiki dialect, 100,000 levels: 400')
    t.type(wikiReply.body, 'string', 'wiki dialect: bare JSON string')
    // Still answering.
    const after = await call(app, 'get_data', {}, alice.token)
    t.equal(after.status, 200, 'the app still answers afterwards')
    t.equal((after.body.contacts as unknown[]).length, 1, 'with the right data')
  })

  t.test('the app still works after all of it', async (t) => {
    const sent = await call(app, 'send_msg', { to_uid: bob.uid, msg: 'still here' }, alice.token)
    t.equal(sent.status, 200)
    const got = await poll(app, bob, 0)
    t.ok(got.msg_array.some((m) => m.text === 'still here'), 'the message arrived')
  })
})

t.test('message length cap counts code points', async (t) => {
  const app = await build(t, { maxMessageChars: 10 })
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const start = await drain(app, bob)
  const send = (msg: string) => call(app, 'send_msg', { to_uid: bob.uid, msg }, alice.token)

  t.equal((await send('0123456789')).status, 200, 'exactly 10 characters: accepted')
  isError(t, await send('0123456789A'), 400, 'bad_request', '11 characters')
  const emoji = '😀'
  t.equal(emoji.length, 2, 'an emoji is two UTF-16 units')
  t.equal((await send(emoji.repeat(10))).status, 200, '10 emoji (20 UTF-16 units): accepted')
  isError(t, await send(emoji.repeat(11)), 400, 'bad_request', '11 emoji')
  t.equal((await send('abcde' + emoji.repeat(5))).status, 200, '5 letters + 5 emoji: accepted')
  isError(t, await send('abcdef' + emoji.repeat(5)), 400, 'bad_request', '6 letters + 5 emoji')
  t.equal((await send('x')).status, 200, 'one character: accepted')
  isError(t, await send(''), 400, 'bad_request', 'empty message')

  const got = await poll(app, bob, start)
  t.same(
    got.msg_array.map((m) => m.text),
    ['0123456789', emoji.repeat(10), 'abcde' + emoji.repeat(5), 'x'],
    'only the accepted messages were stored, intact',
  )
})

t.test('per-IP rate limit', async (t) => {
  const app = await build(t, { rateLimitPerMinute: 5 })
  for (let i = 1; i <= 5; i++) {
    const reply = await post(app, '/registration', JSON.stringify({ login: `rl${i}` }))
    t.equal(reply.status, 400, `request ${i} is within the limit`)
  }
  const limited = await post(app, '/registration', JSON.stringify({ login: 'rl6' }))
  isError(t, limited, 429, 'rate_limited', 'the 6th request within a minute')
  const retryAfter = Number(limited.headers['retry-after'])
  t.ok(Number.isInteger(retryAfter) && retryAfter > 0 && retryAfter <= 60, `Retry-After is whole seconds in (0, 60] (got ${limited.headers['retry-after']})`)
  const again = await app.inject({ method: 'GET', url: '/get_user?id=1' })
  isError(t, { status: again.statusCode, headers: again.headers, body: again.json() }, 429, 'rate_limited', 'another route, same IP')
  t.ok(again.headers['retry-after'], 'Retry-After there too')
  const otherIp = await app.inject({ method: 'POST', url: '/registration', remoteAddress: '10.9.8.7', payload: { login: 'other' } })
  t.equal(otherIp.statusCode, 400, 'another IP is not limited')
})

// Regression: the app used to be ready before its Redis connection was, and requests in
// that gap failed open (skipOnError), so a limit let its first requests through uncounted.
t.test('rate limit in Redis counts from the first request, however slowly Redis connects', { skip: process.env.REDIS_URL ? false : 'REDIS_URL is unset' }, async (t) => {
  const redis = new URL(process.env.REDIS_URL!)
  // A TCP relay to the real Redis that opens each upstream connection after 500 ms.
  const slowRelay = net.createServer((client) => {
    client.pause()
    setTimeout(() => {
      const upstream = net.connect(Number(redis.port || 6379), redis.hostname, () => {
        client.pipe(upstream).pipe(client)
        client.resume()
      })
      upstream.on('error', () => client.destroy())
      client.on('error', () => upstream.destroy())
      client.on('close', () => upstream.destroy())
    }, 500)
  })
  await new Promise<void>((resolve) => slowRelay.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => slowRelay.close(() => resolve())))
  const { port } = slowRelay.address() as AddressInfo

  const app = await build(t, { rateLimitPerMinute: 3, redisUrl: `redis://127.0.0.1:${port}` })
  for (let i = 1; i <= 3; i++) t.equal((await post(app, '/registration', '{}')).status, 400, `request ${i} right after start is within the limit`)
  isError(t, await post(app, '/registration', '{}'), 429, 'rate_limited', 'the 4th request right after start')
})

t.test('a Redis that refuses at start: the app still starts, and requests pass unlimited', async (t) => {
  const closed = net.createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const { port } = closed.address() as AddressInfo
  await new Promise<void>((resolve) => closed.close(() => resolve()))

  const app = await build(t, { rateLimitPerMinute: 1, redisUrl: `redis://127.0.0.1:${port}` })
  for (let i = 1; i <= 3; i++) isError(t, await post(app, '/registration', '{}'), 400, 'bad_request', `request ${i} with the limit at 1 and Redis away`)
})

t.test('GET /get_user', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  const get = async (query: string, token?: string) => {
    const response = await app.inject({ method: 'GET', url: `/get_user${query}`, headers: token ? { authorization: `Bearer ${token}` } : {} })
    return { status: response.statusCode, headers: response.headers, body: response.json() }
  }

  const known = await get(`?id=${bob.uid}`, alice.token)
  t.equal(known.status, 200)
  t.same(known.body, { user: { uid: bob.uid, username: bob.login, name: '', description: '' } }, '{user: {uid, username}} plus the public profile')
  t.match(String(known.headers['content-type']), /^application\/json/)
  t.same((await get(`?id=${alice.uid}`, alice.token)).body, { user: { uid: alice.uid, username: alice.login, name: '', description: '' } }, 'oneself too')

  isError(t, await get(`?id=${bob.uid + 1000}`, alice.token), 404, 'not_found', 'unknown id')
  isError(t, await get('?id=abc', alice.token), 400, 'bad_request', 'id=abc')
  isError(t, await get('?id=-1', alice.token), 400, 'bad_request', 'id=-1')
  isError(t, await get('?id=0', alice.token), 400, 'bad_request', 'id=0')
  isError(t, await get('?id=1.5', alice.token), 400, 'bad_request', 'id=1.5')
  isError(t, await get('?id=9007199254740993', alice.token), 400, 'bad_request', 'id above 2^53')
  isError(t, await get('?id=', alice.token), 400, 'bad_request', 'empty id')
  isError(t, await get('', alice.token), 400, 'bad_request', 'no id')
  isError(t, await get(`?id=${bob.uid}`), 401, 'unauthorized', 'without a token')
  isError(t, await get(`?id=${bob.uid}`, 'not.a.jwt'), 401, 'unauthorized', 'with a bad token')
})

t.test('long-poll timeouts', async (t) => {
  t.test('timeout 0 answers at once; timeout 1 after a second on the app clock, same cursor', async (t) => {
    const clock = new ManualClock()
    const app = await build(t, {}, undefined, clock)
    const alice = await signUp(app)
    const start0 = Date.now()
    const first = await poll(app, alice, 0, 0)
    t.ok(Date.now() - start0 < PROMPT_MS, `timeout 0: answered in ${Date.now() - start0} ms`)
    t.same([first.msg_array, first.events_array], [[], []], 'nothing pending')

    const began = clock.now()
    const pending = heldPoll(app, alice, { cursor: first.cursor, timeout: 1 })
    await eventually(() => app.eventLog.polls.size === 1, { what: 'the poll to be held' })
    const held = (await answeredAtTimeout(t, clock, pending, began, 1000, 'timeout 1')).body as Json & { msg_array: unknown[]; events_array: unknown[]; cursor: number; server_time: number }
    t.same([held.msg_array, held.events_array], [[], []], 'empty arrays')
    t.equal(held.cursor, first.cursor, 'the same cursor')
    t.equal(held.server_time, Math.floor(clock.now() / 1000), "server_time is the app's clock in UNIX seconds")
  })

  t.test('a fractional timeout on the system clock: timeout 0.3 answers after about 300 ms', async (t) => {
    const app = await build(t)
    const alice = await signUp(app)
    const cursor = await drain(app, alice)
    const fractional = Date.now()
    const reply = await poll(app, alice, cursor, 0.3)
    const fractionalElapsed = Date.now() - fractional
    t.ok(fractionalElapsed >= 250 && fractionalElapsed < 1500, `timeout 0.3: ${fractionalElapsed} ms`)
    t.same([reply.msg_array, reply.events_array, reply.cursor], [[], [], cursor], 'empty, cursor unchanged')
  })

  t.test('a timeout above the cap is clamped', async (t) => {
    const clock = new ManualClock()
    const app = await build(t, { pollMaxSeconds: 1, pollDefaultSeconds: 1 }, undefined, clock)
    const alice = await signUp(app)
    const began = clock.now()
    const held = heldPoll(app, alice, { cursor: 0, timeout: 30 })
    await eventually(() => app.eventLog.polls.size === 1, { what: 'the poll to be held' })
    const reply = await answeredAtTimeout(t, clock, held, began, 1000, 'timeout 30 with a 1 s cap')
    t.equal(reply.status, 200)
    t.same([reply.body.msg_array, reply.body.events_array, reply.body.cursor], [[], [], 0], 'empty, cursor unchanged')
  })

  t.test('the default hold is POLL_DEFAULT_SECONDS', async (t) => {
    const clock = new ManualClock()
    const app = await build(t, { pollDefaultSeconds: 1 }, undefined, clock)
    const alice = await signUp(app)
    const began = clock.now()
    const held = heldPoll(app, alice, { cursor: 0 })
    await eventually(() => app.eventLog.polls.size === 1, { what: 'the poll to be held' })
    const reply = await answeredAtTimeout(t, clock, held, began, 1000, 'no timeout given')
    t.equal(reply.status, 200)
    t.same([reply.body.msg_array, reply.body.events_array, reply.body.cursor], [[], [], 0], 'empty, cursor unchanged')
  })

  t.test('a held poll answers as soon as something arrives', async (t) => {
    const app = await build(t)
    const alice = await signUp(app)
    const bob = await signUp(app)
    await befriend(app, alice, bob)
    const cursor = await drain(app, bob)
    const held = heldPoll(app, bob, { cursor, timeout: 10 })
    await eventually(() => app.eventLog.polls.size === 1, { what: 'the poll to be held', timeoutMs: 5000 })
    const sentAt = Date.now()
    t.equal((await call(app, 'send_msg', { to_uid: bob.uid, msg: 'wake up' }, alice.token)).status, 200)
    const reply = await held.promise
    t.ok(Date.now() - sentAt < PROMPT_MS, `answered ${Date.now() - sentAt} ms after the send`)
    t.same(
      reply.body.msg_array.map((m: Json) => m.text),
      ['wake up'],
    )
  })
})

t.test('held polls: one per session, capped per user', async (t) => {
  t.test('the same session polling again ends its first poll', async (t) => {
    const clock = new ManualClock()
    const app = await build(t, {}, undefined, clock)
    const alice = await signUp(app)
    const first = heldPoll(app, alice, { cursor: 0, timeout: 10 })
    await eventually(() => app.eventLog.polls.size === 1, { what: 'the first poll to be held', timeoutMs: 5000 })
    const secondStarted = Date.now()
    const secondBegan = clock.now()
    const second = heldPoll(app, alice, { cursor: 0, timeout: 2 })
    const firstReply = await first.promise
    t.ok(Date.now() - secondStarted < PROMPT_MS, `the first poll was answered ${Date.now() - secondStarted} ms after the second began`)
    t.equal(firstReply.status, 200, 'with 200')
    t.same([firstReply.body.msg_array, firstReply.body.events_array, firstReply.body.cursor], [[], [], 0], 'and empty arrays')
    t.notOk(second.state.done, 'the second poll is still held')
    await eventually(() => app.eventLog.polls.size === 1, { what: 'the second poll to be held' })
    const secondReply = await answeredAtTimeout(t, clock, second, secondBegan, 2000, 'the second poll')
    t.equal(secondReply.status, 200, 'the second poll ends normally, after its own timeout')
  })

  t.test('beyond MAX_HELD_POLLS_PER_USER the oldest poll ends', async (t) => {
    const app = await build(t, { maxHeldPollsPerUser: 2 })
    const s1 = await signUp(app)
    const s2 = await login(app, s1)
    const s3 = await login(app, s1)
    t.not(s1.session_key, s2.session_key, 'distinct sessions')
    const p1 = heldPoll(app, s1, { cursor: 0, timeout: 15 })
    await eventually(() => app.eventLog.polls.size === 1, { what: 'poll 1 to be held', timeoutMs: 5000 })
    const p2 = heldPoll(app, s2, { cursor: 0, timeout: 15 })
    await eventually(() => app.eventLog.polls.size === 2, { what: 'poll 2 to be held', timeoutMs: 5000 })
    await sleep(100)
    t.notOk(p1.state.done, 'two held polls are within the cap')
    const thirdStarted = Date.now()
    const p3 = heldPoll(app, s3, { cursor: 0, timeout: 15 })
    const r1 = await p1.promise
    t.ok(Date.now() - thirdStarted < PROMPT_MS, `the oldest poll was answered ${Date.now() - thirdStarted} ms after the third began`)
    t.equal(r1.status, 200, 'with 200')
    t.same([r1.body.msg_array, r1.body.events_array], [[], []], 'and empty arrays')
    await eventually(() => app.eventLog.polls.size === 2, { what: 'poll 3 to be held', timeoutMs: 5000 })
    await sleep(100)
    t.notOk(p2.state.done, 'the second poll is still held')
    t.notOk(p3.state.done, 'the third poll is held')
    // End them: each session polls again with timeout 0, which supersedes its held poll.
    await poll(app, s2, 0, 0)
    await poll(app, s3, 0, 0)
    const [r2, r3] = await Promise.all([p2.promise, p3.promise])
    t.equal(r2.status, 200)
    t.equal(r3.status, 200)
    t.ok(p2.state.elapsed < 10_000 && p3.state.elapsed < 10_000, 'both ended early')
  })
})

t.test('a reply carries at most POLL_BATCH_LIMIT items; the rest follow', async (t) => {
  const app = await build(t, { pollBatchLimit: 3 })
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const start = await drain(app, bob)
  const texts = Array.from({ length: 7 }, (_, i) => `m${i}`)
  for (const msg of texts) t.equal((await call(app, 'send_msg', { to_uid: bob.uid, msg }, alice.token)).status, 200)

  const first = await poll(app, bob, start)
  t.equal(first.msg_array.length + first.events_array.length, 3, 'the first reply has 3 items')
  t.same(first.msg_array.map((m) => m.text), ['m0', 'm1', 'm2'])
  t.same(await poll(app, bob, start), first, 'the same cursor gives the same answer')
  const second = await poll(app, bob, first.cursor)
  t.same(second.msg_array.map((m) => m.text), ['m3', 'm4', 'm5'], 'the second reply has the next 3')
  const third = await poll(app, bob, second.cursor)
  t.same(third.msg_array.map((m) => m.text), ['m6'], 'the third reply has the last one')
  const fourth = await poll(app, bob, third.cursor)
  t.same([fourth.msg_array, fourth.events_array, fourth.cursor], [[], [], third.cursor], 'then nothing, cursor unchanged')
  t.ok(first.cursor < second.cursor && second.cursor < third.cursor, 'cursors increase')
})

t.test('cursorless position: a reply not written out does not move it', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const port = await listen(app)
  const bearer = { authorization: `Bearer ${bob.token}` }
  const cursorless = (timeout: number) =>
    httpRequest(port, { method: 'POST', path: '/update_data', headers: bearer, body: JSON.stringify({ timeout }) }).reply

  // Read the contact request cursorless, so the kept position is past it.
  const events = await cursorless(0)
  t.equal(events.status, 200)
  t.equal((events.body as Json & { events_array: unknown[] }).events_array.length, 1, 'the contact request, once')
  await eventually(() => app.eventLog.polls.size === 0, { what: 'the first poll to end', timeoutMs: 5000 })
  await sleep(100) // the acknowledgement is written after the reply

  // A held cursorless poll whose client goes away before anything arrives.
  const { request, reply } = httpRequest(port, { method: 'POST', path: '/update_data', headers: bearer, body: JSON.stringify({ timeout: 5 }) })
  reply.catch(() => {})
  let answered = false
  request.on('response', () => (answered = true))
  await eventually(() => app.eventLog.polls.size === 1, { what: 'the poll to be held', timeoutMs: 5000 })
  request.destroy()
  const destroyedAt = Date.now()
  await eventually(() => app.eventLog.polls.size === 0, { what: 'the server to notice the client went away', timeoutMs: 4000 })
  t.ok(Date.now() - destroyedAt < 2000, 'the abandoned poll ended early')
  t.notOk(answered, 'nothing reached the aborted client')

  t.equal((await call(app, 'send_msg', { to_uid: bob.uid, msg: 'after the abort' }, alice.token)).status, 200)

  const fresh = await cursorless(0)
  t.equal(fresh.status, 200)
  const freshBody = fresh.body as { msg_array: Json[]; events_array: Json[] }
  t.same(freshBody.msg_array.map((m) => m.text), ['after the abort'], 'a fresh cursorless poll gets the message')
  t.same(freshBody.events_array, [], 'and no event again')

  const again = await cursorless(0)
  t.equal(again.status, 200)
  const againBody = again.body as { msg_array: Json[]; events_array: Json[] }
  t.same([againBody.msg_array, againBody.events_array], [[], []], 'polling again cursorless does not repeat it')
})

t.test('cursorless position: an immediate re-poll never repeats the last reply', async (t) => {
  // The desktop client polls again the moment a reply arrived, on the same connection.
  // The position must already have moved by then, even when the write that moves it has
  // to wait: a send_msg to the same user holds that user's row lock (lockUserPair,
  // appendEvents) until it commits. Here a second connection holds that lock meanwhile.
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const port = await listen(app)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const cursorless = async () => {
    const reply = await httpRequest(port, {
      method: 'POST',
      path: '/update_data',
      headers: { authorization: `Bearer ${bob.token}` },
      body: JSON.stringify({ timeout: 0 }),
      agent,
    }).reply
    if (reply.status !== 200) throw new Error(`update_data failed: ${reply.status} ${JSON.stringify(reply.body)}`)
    return reply.body as { msg_array: Json[]; events_array: Json[] }
  }
  t.equal((await cursorless()).events_array.length, 1, 'the contact request')
  await sleep(200)
  t.equal((await call(app, 'send_msg', { to_uid: bob.uid, msg: 'only once' }, alice.token)).status, 200)

  const locker = createKnex({ url: app.config.databaseUrl!, schema: app.config.databaseSchema, poolMax: 1 })
  t.teardown(() => locker.destroy())
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  let locked!: () => void
  const lockTaken = new Promise<void>((resolve) => (locked = resolve))
  let lockerPid!: number
  const holder = locker.transaction(async (trx) => {
    lockerPid = (await trx.raw('SELECT pg_backend_pid() AS pid')).rows[0].pid
    await trx.raw('SELECT id FROM users WHERE id = ? FOR UPDATE', [bob.uid])
    locked()
    await released
  })
  await lockTaken
  // The lock is held until both polls have answered, or until something waits on it while
  // the re-poll is under way (the re-poll then waits for the write that moves the
  // position), or while the first poll has not answered for 200 ms (it waits itself).
  let repolling = false
  let repolled = false
  let firstWaitingSince: number | undefined
  const mayRelease = async () => {
    if (repolled) return true
    const waiting = (await backendsWaitingOn(app, lockerPid)) > 0
    if (repolling) return waiting && app.eventLog.polls.size === 1
    firstWaitingSince = waiting ? (firstWaitingSince ?? performance.now()) : undefined
    return firstWaitingSince !== undefined && performance.now() - firstWaitingSince >= 200
  }
  const releaser = eventually(mayRelease, { what: 'the polls to answer or to wait behind the lock' }).finally(release)
  try {
    const first = await cursorless()
    repolling = true
    t.same(first.msg_array.map((m) => m.text), ['only once'], 'the first poll gets the message')
    const second = await cursorless()
    repolled = true
    t.same(second.msg_array.map((m) => m.text), [], 'the immediate re-poll does not get it again')
  } finally {
    repolled = true
    await releaser.catch((error) => t.fail(String(error)))
    await holder
  }
  await sleep(200)
  const later = await cursorless()
  t.same(later.msg_array, [], 'nor does a later one')
})

// Node closes an idle keep-alive connection once the socket timeout it arms after each
// response fires: keepAliveTimeout plus a margin of its own (1 s in Node 20). The tests
// read that armed timeout instead of idling for it, and fire it to see the server close.

/** The server side of each connection the app accepts from now on. */
function serverSockets(app: App): Socket[] {
  const sockets: Socket[] = []
  app.server.on('connection', (socket: Socket) => sockets.push(socket))
  return sockets
}

t.test('idle keep-alive connections stay open (KEEP_ALIVE_TIMEOUT_MS, 75 s at least by default) and are reused', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const port = await listen(app)
  // The desktop client keeps an idle connection for up to 75 s: Node's 5 s default would cut it.
  t.ok(app.config.keepAliveTimeoutMs >= 75_000, `KEEP_ALIVE_TIMEOUT_MS defaults to ${app.config.keepAliveTimeoutMs} ms`)
  t.equal(app.server.keepAliveTimeout, app.config.keepAliveTimeoutMs, "and is the server's keepAliveTimeout")
  const accepted = serverSockets(app)

  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const get = () => httpRequest(port, { path: `/get_user?id=${alice.uid}`, headers: { authorization: `Bearer ${alice.token}` }, agent }).reply

  const first = await get()
  t.equal(first.status, 200)
  t.match(first.body, { user: { uid: alice.uid, username: alice.login } })
  t.notOk(first.reusedSocket, 'the first request opened the connection')
  const keepAlive = String(first.headers['keep-alive'] ?? '')
  const hint = Number(/timeout=(\d+)/.exec(keepAlive)?.[1] ?? NaN)
  t.ok(hint >= 75, `Keep-Alive header advertises timeout=${hint}`)
  t.equal(accepted.length, 1, 'one connection')
  const idleTimeout = await eventually(() => accepted[0]!.timeout ?? 0, { what: 'the idle timeout to be armed' })
  t.ok(idleTimeout >= 75_000, `the idle connection is closed only after ${idleTimeout} ms (longer than Node's 5 s default)`)
  let closed = false
  first.socket.once('close', () => (closed = true))

  await sleep(150)
  t.notOk(closed, 'the idle connection was not closed')
  const second = await get()
  t.equal(second.status, 200)
  t.ok(second.reusedSocket, 'the second request reused the pooled connection')
  t.equal(second.socket, first.socket, 'on the very same socket')
  t.equal(accepted.length, 1, 'no new connection')
})

/** Sends one HTTP/1.1 GET on an open socket and resolves once the whole response (Content-Length) is in. */
function getOnSocket(socket: Socket, path: string, token: string): Promise<{ status: number; headers: string }> {
  return new Promise((resolve, reject) => {
    let data = Buffer.alloc(0)
    const onData = (chunk: Buffer) => {
      data = Buffer.concat([data, chunk])
      const end = data.indexOf('\r\n\r\n')
      if (end < 0) return
      const head = data.subarray(0, end).toString('latin1')
      const length = Number(/^content-length:\s*(\d+)/im.exec(head)?.[1] ?? 0)
      if (data.length < end + 4 + length) return
      socket.off('data', onData)
      socket.off('error', reject)
      resolve({ status: Number(head.split(' ')[1]), headers: head })
    }
    socket.on('data', onData)
    socket.once('error', reject)
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nConnection: keep-alive\r\n\r\n`)
  })
}

t.test('the keep-alive mechanism, with KEEP_ALIVE_TIMEOUT_MS 300: open while idle below it, closed by the server when it runs out', async (t) => {
  const timeoutMs = 300
  const app = await build(t, { keepAliveTimeoutMs: timeoutMs })
  const alice = await signUp(app)
  const port = await listen(app)
  t.equal(app.server.keepAliveTimeout, timeoutMs, "the server's keepAliveTimeout is KEEP_ALIVE_TIMEOUT_MS")
  const accepted = serverSockets(app)

  // A raw socket: an HTTP client would itself drop a connection advertised with timeout=0.
  const socket = net.connect(port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  let ended = false
  socket.once('end', () => (ended = true))
  const path = `/get_user?id=${alice.uid}`

  const first = await getOnSocket(socket, path, alice.token)
  t.equal(first.status, 200, 'a first request')
  t.match(first.headers, /^connection: keep-alive/im, 'answered keep-alive')
  await sleep(timeoutMs / 2)
  t.notOk(ended, `idle for ${timeoutMs / 2} ms: the connection is open`)
  const second = await getOnSocket(socket, path, alice.token)
  t.equal(second.status, 200, 'and serves the next request')
  t.equal(accepted.length, 1, 'on the same connection')

  const server = accepted[0]!
  const idleTimeout = await eventually(() => server.timeout ?? 0, { what: 'the idle timeout to be armed' })
  t.ok(idleTimeout >= timeoutMs && idleTimeout <= timeoutMs + 1000, `idle, it is closed after ${idleTimeout} ms: KEEP_ALIVE_TIMEOUT_MS plus Node's margin`)
  t.notOk(ended, 'still open meanwhile')
  server.emit('timeout') // what the socket does once that time has passed
  await eventually(() => ended, { what: 'the server to close the idle connection', timeoutMs: 2000 })
  t.pass('the server closed the idle connection when its idle timeout ran out')
})

t.test('graceful shutdown answers held polls at once', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const port = await listen(app)
  const { reply } = httpRequest(port, {
    method: 'POST',
    path: '/update_data',
    headers: { authorization: `Bearer ${alice.token}` },
    body: JSON.stringify({ cursor: 0, timeout: 20 }),
  })
  await eventually(() => app.eventLog.polls.size === 1, { what: 'the poll to be held', timeoutMs: 5000 })
  const closing = Date.now()
  await app.close()
  const closeMs = Date.now() - closing
  t.ok(closeMs < 5000, `close completed in ${closeMs} ms (poll timeout 20 s)`)
  const answered = await reply
  t.equal(answered.status, 200, 'the held poll was answered 200')
  const body = answered.body as { msg_array: unknown[]; events_array: unknown[]; cursor: number }
  t.same([body.msg_array, body.events_array, body.cursor], [[], [], 0], 'with empty arrays and the same cursor')
})
