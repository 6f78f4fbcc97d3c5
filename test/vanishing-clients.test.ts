// Slow and vanishing clients over a real socket:
// - 10,000 held polls whose clients vanish at once leave no poll held and no memory behind;
// - a client that vanishes while its poll is still being authenticated leaves no poll held,
//   turns nobody online and ends no other poll of its user;
// - a client that reads its large reply very slowly does not delay anyone else's poll.
import { randomBytes } from 'node:crypto'
import diagnostics from 'node:diagnostics_channel'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import v8 from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Worker } from 'node:worker_threads'
import t, { type Test } from 'tap'
import type { App } from '../src/app.js'
import { ManualClock } from '../src/clock.js'
import { befriend, build, call, eventually, signUp, sleep, tracked } from './helper.js'

type Json = Record<string, any>

/** Users and sessions made straight in the database (no password hashing), with their tokens. */
async function ghostSessions(app: App, count: number): Promise<{ uid: number; sid: number; token: string }[]> {
  const tag = randomBytes(3).toString('hex')
  const users: { id: string }[] = await app.db('users')
    .insert(Array.from({ length: count }, (_, i) => ({ login: `ghost${i}_${tag}`, password_hash: 'not-a-hash' })))
    .returning('id')
  const sessions: { id: string; user_id: string }[] = await app.db('sessions')
    .insert(users.map((u) => ({ user_id: u.id, expires_at: app.db.raw("now() + interval '1 hour'") })))
    .returning(['id', 'user_id'])
  return sessions.map((s) => ({ uid: Number(s.user_id), sid: Number(s.id), token: app.jwt.sign({ uid: Number(s.user_id), sid: Number(s.id) }) }))
}

interface ServerWatch {
  /** HTTP requests the server received. */
  received(): number
  /** Route handlers still running: a held poll is one until it answers or ends. */
  running(): number
}

/** Watches the server from now on (route handlers through Fastify's diagnostics channel). */
function watchServer(t: Test, app: App): ServerWatch {
  let received = 0
  let running = 0
  app.server.on('request', () => received++)
  const channel = diagnostics.tracingChannel('fastify.request.handler')
  const handlers = {
    start: () => void running++,
    // An async handler ends at asyncEnd; a synchronous one at end.
    end: (store: unknown) => void (!(store as { async?: boolean }).async && running--),
    asyncStart: () => {},
    asyncEnd: () => void running--,
    error: () => {},
  }
  channel.subscribe(handlers)
  t.teardown(() => void channel.unsubscribe(handlers))
  return { received: () => received, running: () => running }
}

/**
 * Waits until the server has worked through every request that reached it: no new
 * request and no route handler running, for `quietMs` and 20 checks in a row. Returns how
 * long after the last request arrived its handlers were all done, or undefined when they
 * were not within `withinMs` of it (a poll still held keeps the server busy). On a busy
 * machine some vanishing clients' requests never reach it (their connection is gone
 * before the server accepts it), so tests ask for a share.
 */
async function untilQuiet(server: ServerWatch, { quietMs = 200, withinMs = 6000 } = {}): Promise<number | undefined> {
  let last = -1
  let arrivedAt = performance.now()
  let idleSince: number | undefined
  let checks = 0
  let done: number | undefined
  const quiet = () => {
    const now = performance.now()
    if (server.received() !== last) {
      last = server.received()
      arrivedAt = now
      idleSince = undefined
    }
    if (server.running() > 0) {
      idleSince = undefined
      return now - arrivedAt > withinMs // gives up
    }
    if (idleSince === undefined) {
      idleSince = now
      checks = 0
    }
    if (++checks < 20 || now - idleSince < quietMs) return false
    done = idleSince - arrivedAt
    return true
  }
  await eventually(quiet, { what: 'the server to work through what it received', timeoutMs: 60_000 })
  return done
}

// The vanishing clients run in a worker thread: sharing the server's event loop, opening
// and closing sockets is several times slower. Each batch opens one socket per token,
// writes a poll and destroys the socket as soon as the request is written; the worker
// reports after each batch.
const VANISHING_CLIENTS = `
const net = require('node:net')
const { parentPort, workerData } = require('node:worker_threads')
const { port, tokens, body, batches } = workerData
const poll = (token) => new Promise((resolve) => {
  const socket = net.connect(port, '127.0.0.1', () => {
    const request = 'POST /update_data HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nAuthorization: Bearer ' + token +
      '\\r\\nContent-Type: application/json\\r\\nContent-Length: ' + Buffer.byteLength(body) + '\\r\\n\\r\\n' + body
    socket.write(request, () => socket.destroy())
  })
  socket.on('error', () => {})
  socket.on('close', () => resolve())
})
;(async () => {
  for (let batch = 0; batch < batches; batch++) {
    await Promise.all(tokens.map(poll))
    parentPort.postMessage(batch)
  }
})()
`

/** Runs `batches` batches of vanishing polls (one per token) in a worker; `onBatch` after each. */
async function vanishingBatches(port: number, tokens: string[], body: string, batches: number, onBatch: (batch: number) => Promise<void> | void) {
  const worker = new Worker(VANISHING_CLIENTS, { eval: true, workerData: { port, tokens, body, batches } })
  const pending: Promise<void>[] = []
  worker.on('message', (batch: number) => pending.push(Promise.resolve(onBatch(batch))))
  await new Promise<void>((resolve, reject) => {
    worker.once('error', reject)
    worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`vanishing clients exited with ${code}`))))
  })
  await Promise.all(pending)
}

/** Sends a poll over a fresh socket and destroys the socket as soon as the request is written. */
function vanishingPoll(port: number, token: string, body: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      const request = `POST /update_data HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
      socket.write(request, () => socket.destroy())
    })
    socket.on('error', () => {})
    socket.on('close', () => resolve())
  })
}

/** heapUsed after a full collection when gc can be exposed, else rss. */
function memory(): { bytes: number; what: string } {
  try {
    v8.setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    gc()
    gc()
    return { bytes: process.memoryUsage().heapUsed, what: 'heapUsed after gc' }
  } catch {
    return { bytes: process.memoryUsage().rss, what: 'rss' }
  }
}

t.test('10,000 held polls whose clients vanish leave nothing behind', async (t) => {
  // The app's clock stands still: no poll can end at its 60 s timeout, only by its client going.
  const app = await build(t, { rateLimitPerMinute: 10_000_000 }, undefined, new ManualClock())
  const port = await listen(app)
  const sessions = await ghostSessions(app, 500)
  const server = watchServer(t, app)
  const body = JSON.stringify({ cursor: 0, timeout: 60 })
  let peak = 0
  const sampler = setInterval(() => (peak = Math.max(peak, app.eventLog.polls.size)), 2)
  t.teardown(() => clearInterval(sampler))
  let baseline = { bytes: 0, what: '' }
  const started = Date.now()
  await vanishingBatches(
    port,
    sessions.map((s) => s.token),
    body,
    20,
    (batch) => {
      // After the warm-up (the first 1,000 polls): the memory to compare with.
      if (batch === 1) baseline = memory()
    },
  )
  const sentMs = Date.now() - started
  // The server works through what it received (on a busy machine it is still accepting and
  // parsing when the last client is gone); a poll it failed to drop would stay held (its
  // 60 s timeout never comes) and keep it from quieting.
  const doneMs = await untilQuiet(server)
  clearInterval(sampler)
  t.ok(server.received() >= 5_000, `the server received ${server.received()} of the 10,000 polls (at least half)`)
  t.ok(doneMs !== undefined, `the server was done with them within 6 s of the last one's arrival (${doneMs === undefined ? 'not' : `${doneMs.toFixed(0)} ms`}; ${server.running()} handlers running)`)
  t.equal(app.eventLog.polls.size, 0, 'every held poll ended once its client was gone: app.eventLog.polls.size is back to 0')
  const final = memory()
  const growth = (final.bytes - baseline.bytes) / 2 ** 20
  t.comment(`10,000 polls sent in ${sentMs} ms; at most ${peak} held at once; ${final.what} ${Math.round(baseline.bytes / 2 ** 20)} → ${Math.round(final.bytes / 2 ** 20)} MiB`)
  t.ok(peak > 0, 'polls were really held while their clients were going away')
  t.ok(growth < 40, `${final.what} grew ${growth.toFixed(1)} MiB over 9,000 polls after the warm-up`)
  t.equal((await call(app, 'whoami', {}, sessions[0]!.token)).status, 200, 'the server still answers')
})

t.test('a client that vanishes while its poll is being authenticated leaves no poll held', async (t) => {
  // Fresh sessions are not cached: authentication reads the database, and the client is
  // gone before update_data starts listening for its socket to close. The app's clock
  // stands still: an abandoned poll held would stay held.
  const app = await build(t, { rateLimitPerMinute: 10_000_000 }, undefined, new ManualClock())
  const port = await listen(app)
  const sessions = await ghostSessions(app, 300)
  const server = watchServer(t, app)
  const body = JSON.stringify({ cursor: 0, timeout: 60 })
  await Promise.all(sessions.map((s) => vanishingPoll(port, s.token, body)))
  // The server works through the 300 requests after their clients are gone.
  const doneMs = await untilQuiet(server)
  t.ok(server.received() >= 150, `the server received ${server.received()} of the 300 polls (at least half)`)
  t.ok(doneMs !== undefined, `the server was done with them within 6 s of the last one's arrival (${doneMs === undefined ? 'not' : `${doneMs.toFixed(0)} ms`}; ${server.running()} handlers running)`)
  t.equal(app.eventLog.polls.size, 0, `no abandoned poll is held once the server has worked through them (held now: ${app.eventLog.polls.size} of 300, until their 60 s timeout)`)
})

async function listen(app: App): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as AddressInfo).port
}

/**
 * Sends these polls over sockets that close as soon as each is written, while a transaction
 * keeps `sessions` locked: authentication reads the sessions, so every poll starts only after
 * its client is gone. Returns the route handlers that were waiting when the lock was let go.
 * The app's rate limit must count in memory (GONE_CLIENT_APP): counted in Redis, a request
 * waits for Redis before its body is read, and one whose client is gone by then never reaches
 * its handler.
 */
const GONE_CLIENT_APP = { rateLimitPerMinute: 10_000_000, redisUrl: undefined }

async function pollsOfGoneClients(app: App, port: number, server: ServerWatch, tokens: string[], body: string): Promise<number> {
  const lock = await app.db.transaction()
  try {
    await lock.raw('LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE')
    await Promise.all(tokens.map((token) => vanishingPoll(port, token, body)))
    const openConnections = () => new Promise<number>((resolve, reject) => app.server.getConnections((error, count) => (error ? reject(error) : resolve(count))))
    await eventually(async () => (await openConnections()) === 0, { what: 'every client to be gone' })
    return server.running()
  } finally {
    await lock.commit()
  }
}

t.test('a client that vanishes while its poll is being authenticated turns nobody online', async (t) => {
  const app = await build(t, GONE_CLIENT_APP, undefined, new ManualClock())
  const port = await listen(app)
  const sessions = await ghostSessions(app, 20)
  const server = watchServer(t, app)
  const waiting = await pollsOfGoneClients(app, port, server, sessions.map((s) => s.token), JSON.stringify({ cursor: 0, timeout: 60 }))
  await untilQuiet(server)
  // A poll held or ended is recorded as seen at the sweep: a gone one must not be.
  await app.services.presence.sweep()
  const [{ count }] = await app.db('users').whereIn('id', sessions.map((s) => s.uid)).andWhere('online', true).count<{ count: string }[]>('* as count')
  t.ok(waiting > 0, `polls were waiting for their authentication when their clients left (${waiting})`)
  t.equal(Number(count), 0, 'none of their users is online, before or after a presence sweep')
  t.equal(app.eventLog.polls.size, 0, 'no poll is held')
})

t.test("a client that vanishes while its poll is being authenticated ends no other poll of its user", async (t) => {
  // One held poll per user: a poll that started would end the other device's.
  const app = await build(t, { ...GONE_CLIENT_APP, maxHeldPollsPerUser: 1 }, undefined, new ManualClock())
  const port = await listen(app)
  const [user, bystander] = await ghostSessions(app, 2)
  const [{ id: otherSession }]: { id: string }[] = await app.db('sessions')
    .insert({ user_id: user.uid, expires_at: app.db.raw("now() + interval '1 hour'") })
    .returning('id')
  const held = tracked(app.inject({ method: 'POST', url: '/update_data', headers: { authorization: `Bearer ${user.token}` }, payload: { cursor: 0, timeout: 60 } }))
  await eventually(() => app.eventLog.polls.size === 1, { what: "the first device's poll to be held" })
  const server = watchServer(t, app)
  const secondDevice = app.jwt.sign({ uid: user.uid, sid: Number(otherSession) })
  const waiting = await pollsOfGoneClients(app, port, server, [secondDevice], JSON.stringify({ cursor: 0, timeout: 60 }))
  await eventually(() => server.received() === 1 && server.running() <= 0, { what: "the gone client's poll to be done" })
  // A poll that ended reads the log before it answers: once a later read is answered, so would it be.
  t.equal((await call(app, 'update_data', { cursor: 0, timeout: 0 }, bystander.token)).status, 200)
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(waiting, 1, "the second device's poll was waiting for its authentication when its client left")
  t.notOk(held.done, "the first device's poll is still held")
  t.equal(app.eventLog.polls.size, 1, 'one poll is held')
})

t.test("a client that reads its reply very slowly does not delay another client's poll", async (t) => {
  const app = await build(t, { maxMessageChars: 60_000 })
  const port = await listen(app)
  const slow = await signUp(app)
  const other = await signUp(app)
  const sender = await signUp(app)
  await befriend(app, sender, slow)
  await befriend(app, sender, other)
  const big = 'x'.repeat(60_000)
  for (let i = 0; i < 100; i++) t.equal((await call(app, 'send_msg', { to_uid: slow.uid, msg: `${i} ${big}`.slice(0, 60_000) }, sender.token)).status, 200) // ~6 MB pending
  const otherCursor = (await call(app, 'update_data', { cursor: 0, timeout: 0 }, other.token)).body.cursor

  // The slow client asks for the 6 MB and then does not read.
  const socket = net.connect(port, '127.0.0.1')
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  socket.pause()
  const request = JSON.stringify({ cursor: 0, timeout: 0 })
  socket.write(`POST /update_data HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${slow.token}\r\nContent-Type: application/json\r\nContent-Length: ${request.length}\r\nConnection: close\r\n\r\n${request}`)
  await sleep(500) // the server has written what the socket takes and buffers the rest

  const agent = new http.Agent({ keepAlive: false })
  t.teardown(() => agent.destroy())
  const fetchPoll = (timeout: number, cursor: number) =>
    new Promise<{ status: number; body: Json; ms: number }>((resolve, reject) => {
      const started = Date.now()
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/update_data', agent, headers: { authorization: `Bearer ${other.token}`, 'content-type': 'application/json' } }, (res) => {
        let text = ''
        res.setEncoding('utf8').on('data', (c) => (text += c)).on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text), ms: Date.now() - started }))
      })
      req.on('error', reject)
      req.end(JSON.stringify({ cursor, timeout }))
    })

  const quick = await fetchPoll(0, otherCursor)
  t.equal(quick.status, 200)
  t.ok(quick.ms < 1000, `another client's immediate poll answered in ${quick.ms} ms`)
  const held = fetchPoll(10, otherCursor)
  await eventually(() => app.eventLog.polls.size >= 1, { what: "the other client's poll to be held" })
  const sentAt = Date.now()
  t.equal((await call(app, 'send_msg', { to_uid: other.uid, msg: 'not delayed' }, sender.token)).status, 200)
  const woken = await held
  t.same(woken.body.msg_array.map((m: Json) => m.text), ['not delayed'])
  t.ok(Date.now() - sentAt < 1000, `and its held poll was woken ${Date.now() - sentAt} ms after the send`)

  // Now the slow client reads everything: the reply is complete.
  const chunks: Buffer[] = []
  const ended = new Promise<void>((resolve) => socket.on('end', () => resolve()))
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  socket.resume()
  await ended
  const raw = Buffer.concat(chunks).toString('utf8')
  const [head, ...rest] = raw.split('\r\n\r\n')
  t.match(head, /^HTTP\/1\.1 200/, 'the slow client got 200')
  const payload = rest.join('\r\n\r\n')
  const decoded = /transfer-encoding: chunked/i.test(head!) ? dechunk(payload) : payload
  const reply = JSON.parse(decoded)
  t.equal(reply.msg_array.length + reply.events_array.length, 100, 'and a full batch of 100 items once it read them')
  t.ok(decoded.length > 5_000_000, `${(decoded.length / 1e6).toFixed(1)} MB`)
  socket.destroy()
})

function dechunk(body: string): string {
  let out = ''
  let rest = body
  for (;;) {
    const line = rest.indexOf('\r\n')
    const size = parseInt(rest.slice(0, line), 16)
    if (!size) return out
    out += rest.slice(line + 2, line + 2 + size)
    rest = rest.slice(line + 2 + size + 2)
  }
}
