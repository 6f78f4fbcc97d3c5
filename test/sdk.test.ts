// The SDK (sdk/): a typed client generated from the OpenAPI document, against a real
// listening server over real HTTP.
//
// What this file proves:
// 1. No drift: sdk/src/api.ts is exactly what openapi-typescript makes of the document the
//    app serves now (sdk/scripts/generate.ts, the one generator `npm run openapi` runs).
// 2. Commands: registration and authorization through the SDK (the token is kept), typed
//    commands by method and by name (`call` is both the by-name method and the call
//    command), ApiError's fields on 4xx, fetch's TypeError on a closed port, an upload and
//    a ranged download.
// 3. updates(): messages and events in log order, across polls that follow each reply's
//    cursor; each update's cursor is the one to resume from (resuming never skips one); a
//    held poll is woken; typing notices; a reply repeating entries yields nothing twice.
// 4. 429 and 503 are waited out for Retry-After seconds (asked of the injected sleep; the
//    rate limiter's clock is moved by what was slept, the database is really stopped and
//    started again), then the same poll is retried.
// 5. Network failures back off (0.5 s doubling, with jitter; reset by a reply) while the
//    server's port is closed; a server started again on the same port delivers the rest,
//    nothing twice.
// 6. 401 after logout ends the iteration with the ApiError; abort (signal, mid-poll and
//    mid-wait), `break` and return() end it quietly and leave no poll held.
// 7. The package as published: its tsc build into a temporary directory, laid out as
//    package.json says, imported by plain Node (ESM) and type-checked by a consumer.
import { execFile } from 'node:child_process'
import { chmod, cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { ApiError, createClient, type Client, type Update, type Updates } from '../sdk/src/index.js'
import { generateTypes, TYPES_PATH } from '../sdk/scripts/generate.js'
import { PROMPT_MS, build, createTestSchema, eventually, sleep, uniqueLogin, type TestDatabase } from './helper.js'
import { serverEnv } from './processes.js'
import type { Config } from '../src/config.js'
import { createKnex, migrate } from '../src/database.js'
import { freeLoopbackPort, startEmbeddedDatabase, type EmbeddedDatabase } from '../src/embedded-database.js'

const PASSWORD = 'secret1'
const SDK_DIR = path.resolve('sdk')
const TSC = path.resolve('node_modules/.bin/tsc')

/** A built app listening on 127.0.0.1 (on `port`, else any free one). */
async function listen(t: Test, overrides: Partial<Config> = {}, database?: TestDatabase, port = 0) {
  const app = await build(t, overrides, database)
  await app.listen({ port, host: '127.0.0.1' })
  const { port: bound } = app.server.address() as AddressInfo
  return { app, port: bound, base: `http://127.0.0.1:${bound}` }
}

interface Exchange {
  path: string
  /** The JSON body sent, when there was one. */
  sent?: Record<string, unknown>
  status?: number
  retryAfter?: string | null
  /** The JSON reply of a 200 update_data. */
  reply?: { cursor: number; msg_array: unknown[]; events_array: unknown[] }
  error?: string
}

/** The global fetch, recording every exchange; `rewrite` may change a body before it goes. */
function recordingFetch(rewrite?: (path: string, sent: Record<string, unknown>, index: number) => Record<string, unknown>) {
  const exchanges: Exchange[] = []
  const record: typeof fetch = async (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url)
    const exchange: Exchange = { path: url.pathname }
    exchanges.push(exchange)
    if (typeof init?.body === 'string') {
      exchange.sent = JSON.parse(init.body)
      if (rewrite && exchange.sent) {
        exchange.sent = rewrite(url.pathname, exchange.sent, exchanges.length - 1)
        init = { ...init, body: JSON.stringify(exchange.sent) }
      }
    }
    try {
      const response = await fetch(input, init)
      exchange.status = response.status
      exchange.retryAfter = response.headers.get('retry-after')
      if (url.pathname === '/update_data' && response.status === 200) exchange.reply = await response.clone().json()
      return response
    } catch (error) {
      exchange.error = error instanceof Error ? error.name : String(error)
      throw error
    }
  }
  return { fetch: record, exchanges, polls: () => exchanges.filter((exchange) => exchange.path === '/update_data') }
}

/** A sleep that waits no real time: it records what was asked, then runs `onWait`. */
function scriptedSleep(onWait?: (ms: number, index: number, signal?: AbortSignal) => void | Promise<void>) {
  const waits: number[] = []
  const sleepFor = async (ms: number, signal?: AbortSignal) => {
    waits.push(ms)
    await onWait?.(ms, waits.length - 1, signal)
  }
  return { sleep: sleepFor, waits }
}

interface User {
  client: Client
  uid: number
  login: string
  /** Authorization's cursor: the end of the log when the user signed in. */
  cursor: number
}

async function signUp(client: Client): Promise<User> {
  const login = uniqueLogin('sdk')
  const registered = await client.registration({ login, password: PASSWORD })
  const authorized = await client.authorization({ login, password: PASSWORD })
  return { client, uid: registered.uid, login, cursor: authorized.cursor }
}

async function befriend(a: User, b: User): Promise<void> {
  await a.client.add_contact_request({ login: b.login })
  await b.client.add_contact_reply({ contact_uid: a.uid, status: 1 })
}

/** The next `count` updates (fewer when the iteration ends first). */
async function take(updates: Updates, count: number): Promise<Update[]> {
  const taken: Update[] = []
  while (taken.length < count) {
    const next = await updates.next()
    if (next.done) break
    taken.push(next.value)
  }
  return taken
}

/** What an update is, for comparing sequences: `m<msg_id>`, `e<eid>:<type>` or `typing`. */
function identify(update: Update): string {
  if (update.kind === 'message') return `m${update.message.msg_id}`
  if (update.kind === 'event') return `e${update.event.eid}:${update.event.type}`
  return 'typing'
}

/** The error a promise rejects with (undefined when it resolves). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
    return undefined
  } catch (error) {
    return error
  }
}

t.test('sdk/src/api.ts is what openapi-typescript makes of the served document (run `npm run openapi` when this fails)', async (t) => {
  const app = await build(t)
  const served = await app.inject({ method: 'GET', url: '/openapi.json' })
  t.equal(served.statusCode, 200, 'GET /openapi.json')
  const expected = await generateTypes(served.json())
  const committed = await readFile(TYPES_PATH, 'utf8')
  if (committed === expected) {
    t.pass('sdk/src/api.ts is current')
    return
  }
  const [mine, theirs] = [committed.split('\n'), expected.split('\n')]
  const line = mine.findIndex((text, i) => text !== theirs[i])
  const at = line === -1 ? Math.min(mine.length, theirs.length) : line
  t.fail(
    `sdk/src/api.ts differs from the served document's types: run \`npm run openapi\`. First difference at line ${at + 1}:\n` +
      `  committed: ${mine[at] ?? '(end of file)'}\n  generated: ${theirs[at] ?? '(end of file)'}`,
  )
})

t.test('sdk/src uses nothing of Node: no node: imports, no require', async (t) => {
  const files = (await readdir(path.join(SDK_DIR, 'src'))).filter((file) => file.endsWith('.ts'))
  t.ok(files.includes('index.ts') && files.includes('api.ts'), 'index.ts and api.ts')
  for (const file of files) {
    const source = await readFile(path.join(SDK_DIR, 'src', file), 'utf8')
    t.notMatch(source, /from\s+['"]node:|require\(|import\(['"]node:/, `${file} imports nothing of Node`)
  }
})

t.test('commands: typed, by method and by name; the token kept; ApiError on 4xx; TypeError when the network fails', async (t) => {
  const { base } = await listen(t)
  const alice = await signUp(createClient({ baseUrl: base }))
  const bob = await signUp(createClient({ baseUrl: `${base}/` }))
  t.type(alice.client.token, 'string', 'authorization set the token')
  t.equal((await alice.client.whoami()).user.uid, alice.uid, 'whoami answers as alice: the token goes as a bearer token')

  const refused = await rejection(alice.client.send_msg({ to_uid: bob.uid, msg: 'not yet' }))
  t.ok(refused instanceof ApiError, 'a 403 throws an ApiError')
  if (refused instanceof ApiError) {
    t.match(
      { status: refused.status, code: refused.code, path: refused.path, body: refused.body, name: refused.name },
      { status: 403, code: 'not_friends', path: '/send_msg', body: { error: 'not_friends', message: String }, name: 'ApiError' },
      'status, code (the body\'s error), path and body',
    )
    t.equal(refused.message, (refused.body as { message: string }).message, 'message is the body\'s message')
    t.equal(refused.retryAfter, undefined, 'no Retry-After on a 403')
  }

  await befriend(alice, bob)
  const sent = await alice.client.send_msg({ to_uid: bob.uid, msg: 'hi bob', client_msg_id: 'sdk-1' })
  const again = await alice.client.call('send_msg', { to_uid: bob.uid, msg: 'hi bob', client_msg_id: 'sdk-1' })
  t.equal(again.msg_id, sent.msg_id, 'call(name, body) is the same command: the retry with the same client_msg_id is the same message')
  const history = await bob.client.get_history({ to_uid: alice.uid })
  t.ok(history.messages.some((message) => message.msg_id === sent.msg_id && message.text === 'hi bob'), 'bob reads it with get_history')
  t.equal((await alice.client.call('get_data')).contacts.length, 1, 'a command whose fields are all optional goes without a body')
  const placed = await alice.client.call({ to_uid: bob.uid, offer: { type: 'offer', sdp: 'v=0' } })
  t.equal(placed.status, 'offline', 'call(body) is the call command: bob has no poll held, so he is offline')
  t.equal((await alice.client.getUser(bob.uid)).user.uid, bob.uid, 'getUser: GET /get_user')

  const unknown = await rejection(createClient({ baseUrl: base, token: 'not-a-token' }).whoami())
  t.match(unknown, { status: 401, code: 'unauthorized' }, 'a bad token: ApiError 401 unauthorized')
  t.ok(unknown instanceof ApiError)

  const closed = createClient({ baseUrl: `http://127.0.0.1:${await freeLoopbackPort()}` })
  t.type(await rejection(closed.whoami()), TypeError, 'a closed port: fetch\'s TypeError comes through')

  // Files: the name in the query string, the type as Content-Type; ranges on the way back.
  const bytes = new TextEncoder().encode('0123456789abcdef')
  const file = await alice.client.uploadFile(bytes, { name: 'digits.txt', type: 'text/plain' })
  t.match(file, { file_id: Number, name: 'digits.txt', size: 16 }, 'uploadFile: the stored file')
  const blobFile = await alice.client.uploadFile(new Blob(['from a blob'], { type: 'text/markdown' }), { name: 'b.md' })
  await alice.client.send_msg({ to_uid: bob.uid, msg: 'a file', file_id: file.file_id })
  const whole = await bob.client.downloadFile(file.file_id)
  t.equal(whole.status, 200)
  t.match(whole.headers.get('content-type'), /^text\/plain/, 'downloadFile: the type given at upload')
  t.equal(await whole.text(), '0123456789abcdef', 'bob downloads it')
  const part = await bob.client.downloadFile(file.file_id, { range: 'bytes=2-5' })
  t.equal(part.status, 206, 'a range: 206')
  t.equal(await part.text(), '2345', 'with that part')
  const own = await alice.client.downloadFile(blobFile.file_id)
  t.match(own.headers.get('content-type'), /^text\/markdown/, 'a Blob\'s own type when none is given')
  t.equal(await own.text(), 'from a blob')
  t.match(await rejection(bob.client.downloadFile(blobFile.file_id)), { status: 404, code: 'not_found' }, 'a file bob may not see: ApiError 404')

  await alice.client.logout()
  t.equal(alice.client.token, undefined, 'logout forgets the token')
})

t.test('updates(): messages and events in order with the cursors to resume from, across polls; held polls; typing; nothing twice', { timeout: 60_000 }, async (t) => {
  // Two entries a reply: five entries take three polls.
  const { app, base } = await listen(t, { pollBatchLimit: 2 })
  const alice = await signUp(createClient({ baseUrl: base }))
  const recorder = recordingFetch()
  const bob = await signUp(createClient({ baseUrl: base, fetch: recorder.fetch }))
  await befriend(alice, bob)
  const m1 = await alice.client.send_msg({ to_uid: bob.uid, msg: 'one' })
  const m2 = await alice.client.send_msg({ to_uid: bob.uid, msg: 'two' })
  await alice.client.edit_msg({ msg_id: m1.msg_id, msg: 'one, edited' })
  const m3 = await alice.client.send_msg({ to_uid: bob.uid, msg: 'three' })
  await alice.client.react({ msg_id: m2.msg_id, emoji: '👍' })

  const { sleep: noSleep, waits } = scriptedSleep()
  const client = createClient({ baseUrl: base, token: bob.client.token, fetch: recorder.fetch, sleep: noSleep })
  const stream = client.updates({ cursor: bob.cursor, timeout: 5 })
  t.equal(stream.cursor, bob.cursor, 'the iterator holds the cursor it was given')
  const firstPoll = recorder.exchanges.length
  // The contact request bob got, the three messages, the edit and the reaction.
  const updates = await take(stream, 6)
  const seen = updates.map(identify)
  const eids = updates.flatMap((update) => (update.kind === 'event' ? [update.event.eid] : []))
  t.same(eids, [...eids].sort((a, b) => a - b), 'the events in log order')
  t.ok(seen.some((id) => id.endsWith(':contact_request')), 'the contact request among them')
  t.same(
    updates.filter((update) => update.kind === 'message').map((update) => update.kind === 'message' && update.message.text),
    ['one, edited', 'two', 'three'],
    'the messages in the order sent (the first as edited since)',
  )
  const edited = updates.find((update) => update.kind === 'event' && update.event.type === 'message_edited')
  if (edited?.kind === 'event' && edited.event.type === 'message_edited') {
    t.equal(edited.event.msg_id, m1.msg_id, 'the edit names the first message (read after narrowing on `type`)')
    t.ok(seen.indexOf(identify(edited)) > seen.indexOf(`m${m1.msg_id}`), 'after the message it edits')
  } else t.fail('the edit was yielded')
  t.ok(seen.at(-1)?.endsWith(':reaction'), 'the reaction last')
  t.same(
    updates.filter((update) => update.kind === 'message').map((update) => update.kind === 'message' && update.message.msg_id),
    [m1.msg_id, m2.msg_id, m3.msg_id],
  )

  // The polls followed each reply's cursor, and each update carries the cursor to resume from.
  const polls = recorder.exchanges.slice(firstPoll).filter((exchange) => exchange.path === '/update_data')
  t.ok(polls.length >= 3, `three polls or more (${polls.length}) for six entries, two a reply`)
  const expectedCursors: number[] = []
  let previous = bob.cursor
  for (const [i, poll] of polls.entries()) {
    t.equal(poll.sent?.cursor, previous, `poll ${i + 1} asks after the cursor of the reply before it`)
    if (!poll.reply) continue
    const count = poll.reply.msg_array.length + poll.reply.events_array.length
    for (let k = 0; k < count; k++) expectedCursors.push(k === count - 1 ? poll.reply.cursor : previous)
    previous = poll.reply.cursor
  }
  t.same(
    updates.map((update) => update.cursor),
    expectedCursors.slice(0, updates.length),
    'every update of a poll carries the previous cursor, its last the poll\'s new cursor',
  )
  t.equal(stream.cursor, updates.at(-1)?.cursor, 'the iterator holds the last reply\'s cursor')

  // Resuming from any update's cursor never skips the update after it.
  for (const [k, update] of updates.slice(0, -1).entries()) {
    const resumed = client.updates({ cursor: update.cursor, timeout: 0 })
    const [first] = await take(resumed, 1)
    await resumed.return()
    const at = first ? seen.indexOf(identify(first)) : -1
    t.ok(at >= 0 && at <= k + 1, `resumed from update ${k + 1}'s cursor: first comes update ${at + 1}, not past ${k + 2}`)
  }

  // A held poll is woken by a send, then by someone typing.
  const pending = stream.next()
  await eventually(() => app.eventLog.polls.size > 0, { what: 'bob\'s poll to be held' })
  const m4 = await alice.client.send_msg({ to_uid: bob.uid, msg: 'four' })
  const woken = await pending
  t.match(woken.value, { kind: 'message', message: { msg_id: m4.msg_id, text: 'four' } }, 'a held poll yields the new message')
  const typingNext = stream.next()
  await eventually(() => app.eventLog.polls.size > 0, { what: 'bob\'s poll to be held again' })
  await alice.client.typing({ to_uid: bob.uid })
  const typed = (await typingNext).value
  t.match(typed, { kind: 'typing', typing: [{ uid: alice.uid, to_uid: alice.uid }] }, 'typing notices come as one update')
  t.equal(typed?.cursor, woken.value?.cursor, 'with the same cursor (typing moves no cursor)')
  await stream.return()
  t.same(waits, [], 'nothing failed: no wait')

  // A reply that repeats what was yielded (the poll's cursor rewritten back to the start)
  // yields nothing twice.
  const replaying = recordingFetch((route, sent, index) => (route === '/update_data' && index === 1 ? { ...sent, cursor: bob.cursor } : sent))
  const careful = createClient({ baseUrl: base, token: bob.client.token, fetch: replaying.fetch, sleep: noSleep }).updates({ cursor: bob.cursor, timeout: 1 })
  const once = await take(careful, 7)
  await careful.return()
  t.equal(replaying.polls()[1]?.sent?.cursor, bob.cursor, 'the second poll was sent back to the start')
  t.same(once.map(identify), [...seen, `m${m4.msg_id}`], 'each message and event once, in order')
})

t.test('updates() waits Retry-After out on 429, then polls again', { timeout: 60_000 }, async (t) => {
  // The rate limiter reads Date.now: what the SDK "sleeps" moves it on instead. So the
  // counters are this process's, in memory: Redis would expire them on its own clock.
  const realNow = Date.now
  let slept = 0
  Date.now = () => realNow() + slept
  t.teardown(() => {
    Date.now = realNow
  })
  const { base } = await listen(t, { rateLimitPerMinute: 12, redisUrl: undefined })
  const alice = await signUp(createClient({ baseUrl: base }))
  const recorder = recordingFetch()
  const { sleep: sleepy, waits } = scriptedSleep((ms) => {
    slept += ms
  })
  const bob = await signUp(createClient({ baseUrl: base, fetch: recorder.fetch, sleep: sleepy }))
  await befriend(alice, bob)
  const sent = await alice.client.send_msg({ to_uid: bob.uid, msg: 'after the limit' })
  // Bob uses up the minute's requests.
  let limited: unknown
  for (let i = 0; i < 20 && limited === undefined; i++) limited = await rejection(bob.client.whoami())
  t.match(limited, { status: 429, code: 'rate_limited', retryAfter: Number }, 'ApiError 429 rate_limited with retryAfter in seconds')

  const stream = bob.client.updates({ cursor: bob.cursor, timeout: 1 })
  const updates = await take(stream, 2)
  await stream.return()
  t.same(updates.map(identify).filter((id) => id.startsWith('m')), [`m${sent.msg_id}`], 'the message comes once the limit let the poll through')
  const refusedPoll = recorder.polls().find((poll) => poll.status === 429)
  t.ok(refusedPoll, 'the first poll was refused with 429')
  t.equal(waits[0], Number(refusedPoll?.retryAfter) * 1000, `the SDK asked to wait Retry-After (${refusedPoll?.retryAfter} s) in ms`)
  t.equal(waits.length, 1, 'once')
  t.equal(recorder.polls().at(-1)?.status, 200, 'then polled again: 200')
})

t.test('updates() waits Retry-After out on 503 while the database is down, then goes on', { timeout: 90_000 }, async (t) => {
  // A private PostgreSQL, to stop and start again.
  const root = await mkdtemp(path.join(os.tmpdir(), 'messenger-sdk-db-'))
  t.teardown(() => rm(root, { recursive: true, force: true }))
  await chmod(root, 0o755) // as root, PostgreSQL runs as the postgres user and must reach it
  const clusterDir = path.join(root, 'postgres')
  const port = await freeLoopbackPort()
  const settings = { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' }
  let cluster: EmbeddedDatabase | undefined = await startEmbeddedDatabase({ clusterDir, port, settings })
  t.teardown(async () => {
    await cluster?.stop()
  })
  const database = { url: cluster.url, schema: 'sdk' }
  const knex = createKnex({ ...database, poolMax: 1 })
  await migrate(knex, database.schema)
  await knex.destroy()
  const { base } = await listen(t, {}, database)

  const alice = await signUp(createClient({ baseUrl: base }))
  const recorder = recordingFetch()
  let later: { msg_id: number } | undefined
  const { sleep: restart, waits } = scriptedSleep(async (_ms, index) => {
    if (index > 0) {
      await sleep(50)
      return
    }
    // The wait stands for the outage's end: the database starts again, alice writes.
    cluster = await startEmbeddedDatabase({ clusterDir, port, settings })
    later = await eventually(() => alice.client.send_msg({ to_uid: bob.uid, msg: 'after' }).catch(() => undefined), {
      what: 'a send to succeed after the restart',
      timeoutMs: 20_000,
      everyMs: 100,
    })
  })
  const bob = await signUp(createClient({ baseUrl: base, fetch: recorder.fetch, sleep: restart }))
  await befriend(alice, bob)
  const before = await alice.client.send_msg({ to_uid: bob.uid, msg: 'before' })
  const stream = bob.client.updates({ cursor: bob.cursor, timeout: 1 })
  const first = await take(stream, 2)
  t.same(first.map(identify).filter((id) => id.startsWith('m')), [`m${before.msg_id}`], 'the message before the outage')

  await cluster.stop()
  cluster = undefined
  const [after] = await take(stream, 1)
  await stream.return()
  t.same(after && identify(after), `m${later?.msg_id}`, 'the message after the outage, once')
  const unavailable = recorder.polls().find((poll) => poll.status === 503)
  t.ok(unavailable, 'a poll was answered 503 while the database was down')
  t.equal(waits[0], Number(unavailable?.retryAfter) * 1000, `the SDK asked to wait Retry-After (${unavailable?.retryAfter} s) in ms`)
})

t.test('updates() backs off while the server is gone and resumes on a new one on the same port, nothing twice', { timeout: 60_000 }, async (t) => {
  const database = await createTestSchema(t)
  const first = await listen(t, {}, database)
  const { port, base } = first
  const alice = await signUp(createClient({ baseUrl: base }))
  const sent: number[] = []
  const send = async (msg: string) => sent.push((await alice.client.send_msg({ to_uid: bob.uid, msg })).msg_id)

  // Outage 1: three failures, then a new server on the port; outage 2: one failure, then another.
  let server = first
  const { sleep: backoff, waits } = scriptedSleep(async (_ms, index) => {
    if (index !== 2 && index !== 3) return
    server = await listen(t, {}, database, port)
    await send(`after restart ${index - 1}`)
    if (index === 2) await send('and another')
  })
  const recorder = recordingFetch()
  const bob = await signUp(createClient({ baseUrl: base, fetch: recorder.fetch, sleep: backoff }))
  await befriend(alice, bob)
  await send('before')
  const stream = bob.client.updates({ cursor: bob.cursor, timeout: 1 })
  // The contact request, then the message.
  const updates = await take(stream, 2)

  await server.app.close()
  updates.push(...(await take(stream, 2)))
  t.equal(waits.length, 3, 'three waits while the port was closed')
  await server.app.close()
  updates.push(...(await take(stream, 1)))
  await stream.return()

  t.equal(waits.length, 4, 'one wait in the second outage')
  const [w1, w2, w3, w4] = waits
  t.ok(w1 >= 250 && w1 <= 500, `first wait ${w1} ms: 250-500`)
  t.ok(w2 >= 500 && w2 <= 1000, `second wait ${w2} ms: 500-1000`)
  t.ok(w3 >= 1000 && w3 <= 2000, `third wait ${w3} ms: 1000-2000`)
  t.ok(w4 >= 250 && w4 <= 500, `after a reply the back-off starts again: ${w4} ms`)
  t.ok(recorder.polls().some((poll) => poll.error !== undefined), 'polls failed with a network error')
  t.same(
    updates.map(identify).filter((id) => id.startsWith('m')),
    sent.map((id) => `m${id}`),
    'every message once, in order, across both restarts',
  )
})

t.test('updates() ends with the ApiError on 401 after logout', async (t) => {
  const { app, base } = await listen(t)
  const { sleep: never, waits } = scriptedSleep()
  const bob = await signUp(createClient({ baseUrl: base, sleep: never }))
  const stream = bob.client.updates({ cursor: bob.cursor, timeout: 10 })
  // Caught from the start: the held poll may end with its 401 before logout's own reply arrives.
  const pending = rejection(stream.next())
  await eventually(() => app.eventLog.polls.size > 0, { what: 'the poll to be held' })
  await bob.client.logout()
  const ended = await pending
  t.ok(ended instanceof ApiError, 'the held poll ends with an ApiError')
  t.match(ended, { status: 401, code: 'unauthorized' })
  t.same(waits, [], 'no retry')
  t.same(await stream.next(), { done: true, value: undefined }, 'and the iteration is over')
})

t.test('updates() ends quietly on abort, break and return(), mid-poll and mid-wait', async (t) => {
  const { app, base } = await listen(t)
  const { sleep: never } = scriptedSleep()
  const alice = await signUp(createClient({ baseUrl: base }))
  const bob = await signUp(createClient({ baseUrl: base, sleep: never }))

  // The signal, while a poll is held (nothing is pending for bob).
  const controller = new AbortController()
  const held = (async () => {
    const got: Update[] = []
    for await (const update of bob.client.updates({ cursor: bob.cursor, timeout: 30, signal: controller.signal })) got.push(update)
    return got
  })()
  await eventually(() => app.eventLog.polls.size > 0, { what: 'the poll to be held' })
  const abortedAt = performance.now()
  controller.abort()
  t.same(await held, [], 'the iteration ends without an error')
  t.ok(performance.now() - abortedAt < PROMPT_MS, 'at once, not at the poll\'s timeout')
  await eventually(() => app.eventLog.polls.size === 0, { what: 'the server to let the poll go' })

  // The signal, while waiting to retry.
  const waiting = new AbortController()
  const { sleep: abortWhileWaiting, waits } = scriptedSleep(() => waiting.abort())
  const nowhere = createClient({ baseUrl: `http://127.0.0.1:${await freeLoopbackPort()}`, token: bob.client.token, sleep: abortWhileWaiting })
  const none: Update[] = []
  for await (const update of nowhere.updates({ signal: waiting.signal })) none.push(update)
  t.same([none, waits.length], [[], 1], 'aborted in its wait after a network failure: ends, nothing yielded')

  // break, then return() with a poll in flight.
  await befriend(alice, bob)
  await alice.client.send_msg({ to_uid: bob.uid, msg: 'one' })
  const recorder = recordingFetch()
  const watched = createClient({ baseUrl: base, token: bob.client.token, fetch: recorder.fetch })
  for await (const update of watched.updates({ cursor: bob.cursor, timeout: 30 })) {
    t.ok(update.kind, 'the first update')
    break
  }
  t.equal(recorder.polls().length, 1, 'break polled no more')
  const stream = watched.updates({ cursor: bob.cursor, timeout: 30 })
  await take(stream, 2)
  const pending = stream.next()
  await eventually(() => app.eventLog.polls.size > 0, { what: 'the poll to be held' })
  t.same(await stream.return(), { done: true, value: undefined }, 'return() with a poll held')
  t.same(await pending, { done: true, value: undefined }, 'the pending next() ends too')
  await eventually(() => app.eventLog.polls.size === 0, { what: 'the server to let the poll go' })
  // Node's fetch opens a spare connection after an abort, which sends nothing: it would hold
  // the app's close() until the server's headers timeout.
  app.server.closeAllConnections()
})

t.test('the package as published: built by tsc, imported by plain Node, its types resolved by a consumer', { timeout: 120_000 }, async (t) => {
  const { base } = await listen(t)
  const dir = await mkdtemp(path.join(os.tmpdir(), 'messenger-sdk-build-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const pkgDir = path.join(dir, 'consumer', 'node_modules', '@messenger', 'sdk')
  await mkdir(path.dirname(pkgDir), { recursive: true })

  // The build as `npm run build` runs it (after generate), into the package's layout.
  const built = await run(process.execPath, [TSC, '-p', SDK_DIR, '--outDir', path.join(pkgDir, 'dist'), '--pretty', 'false'])
  t.equal(built.code, 0, `tsc -p sdk exits 0${built.code ? `:\n${built.output}` : ''}`)
  if (built.code !== 0) return
  const manifest = JSON.parse(await readFile(path.join(SDK_DIR, 'package.json'), 'utf8'))
  await cp(path.join(SDK_DIR, 'package.json'), path.join(pkgDir, 'package.json'))
  t.match(manifest, { name: '@messenger/sdk', type: 'module', files: ['dist', 'README.md'] })
  t.notOk(manifest.dependencies, 'no runtime dependencies')
  for (const target of Object.values<string>(manifest.exports['.'])) {
    t.ok(await readFile(path.join(pkgDir, target)).then(() => true, () => false), `exports names ${target}, which the build wrote`)
  }

  const consumer = path.join(dir, 'consumer')
  await writeFile(path.join(consumer, 'package.json'), JSON.stringify({ type: 'module', private: true }))
  await writeFile(
    path.join(consumer, 'run.js'),
    `import { createClient, ApiError } from '@messenger/sdk'
const client = createClient({ baseUrl: process.argv[2] })
const login = 'plain' + Date.now()
const { uid } = await client.registration({ login, password: 'secret1' })
await client.authorization({ login, password: 'secret1' })
const { user: me } = await client.whoami()
const refused = await client.send_msg({ to_uid: uid, msg: 'me' }).catch((error) => error)
console.log(JSON.stringify({ uid, me: me.uid, token: typeof client.token, error: refused instanceof ApiError ? refused.status : String(refused) }))
`,
  )
  const plain = await run(process.execPath, ['run.js', base], consumer, serverEnv({}))
  t.equal(plain.code, 0, `plain node runs it${plain.code ? `:\n${plain.output}` : ''}`)
  const outcome = plain.code === 0 ? JSON.parse(plain.output) : {}
  t.match(outcome, { uid: Number, token: 'string', error: Number }, 'registration, authorization and an ApiError, from the built package')
  t.equal(outcome.me, outcome.uid)

  // A TypeScript consumer resolves the types through `exports`, and a wrong command is refused.
  await writeFile(
    path.join(consumer, 'check.ts'),
    `import { createClient, type Update } from '@messenger/sdk'
const client = createClient({ baseUrl: 'http://127.0.0.1:1' })
export async function use(): Promise<number> {
  const sent = await client.send_msg({ to_uid: 2, msg: 'hi' })
  // @ts-expect-error no such command
  await client.send_message({ to_uid: 2, msg: 'hi' })
  // @ts-expect-error msg is required
  await client.send_msg({ to_uid: 2 })
  for await (const update of client.updates()) {
    const seen: Update = update
    if (seen.kind === 'event' && seen.event.type === 'message_edited') return seen.event.msg_id
  }
  return sent.msg_id
}
`,
  )
  await writeFile(
    path.join(consumer, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', lib: ['ES2022', 'DOM'], types: [] },
      files: ['check.ts'],
    }),
  )
  const checked = await run(process.execPath, [TSC, '-p', consumer, '--pretty', 'false'])
  t.equal(checked.code, 0, `a consumer type-checks against dist/index.d.ts${checked.code ? `:\n${checked.output}` : ''}`)
})

function run(command: string, args: string[], cwd = process.cwd(), env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env, timeout: 90_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0
      resolve({ code, output: `${stdout}${stderr}` })
    })
  })
}
