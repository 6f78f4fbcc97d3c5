// Two real server processes (src/server.ts, as `npm start` runs it) on one database schema,
// spoken to over real HTTP: wake-ups and logouts cross processes through LISTEN/NOTIFY and
// the sessions table, and SIGTERM ends held polls and the process cleanly.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { sleep, createTestSchema, TEST_JWT_SECRET, testDatabaseUrl, uniqueLogin } from './helper.js'
import { freeLoopbackPort } from '../src/embedded-database.js'

const PROJECT_ROOT = path.resolve(fileURLToPath(new URL('..', import.meta.url)))
const PASSWORD = 'secret1'
const READY_TIMEOUT_MS = 30_000

interface ServerProcess {
  child: ChildProcess
  pid: number
  base: string
  /** Every stdout line so far (pino JSON lines). */
  lines: string[]
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

interface Session {
  uid: number
  session_key: number
  token: string
  login: string
}

type Json = Record<string, any>

/** The environment of a plain server process: none of tap's loaders or settings. */
function serverEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (key === 'NODE_OPTIONS' || key.startsWith('TAP') || key.startsWith('_TAPJS')) continue
    env[key] = value
  }
  return { ...env, ...extra }
}

async function spawnServer(t: Test, schema: string, dataDir: string, port: number): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: PROJECT_ROOT,
    env: serverEnv({
      DATABASE_URL: testDatabaseUrl(),
      DATABASE_SCHEMA: schema,
      JWT_SECRET: TEST_JWT_SECRET,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      DATA_DIR: dataDir,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const pid = child.pid!
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    process.kill(pid, 'SIGTERM')
    const timer = setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) process.kill(pid, 'SIGKILL')
    }, 5000)
    await exited
    clearTimeout(timer)
  })

  const lines: string[] = []
  let stderr = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server on port ${port} not ready after ${READY_TIMEOUT_MS} ms:\n${lines.join('\n')}\n${stderr}`)), READY_TIMEOUT_MS)
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(line)
      try {
        if (JSON.parse(line).msg === 'messenger ready') {
          clearTimeout(timer)
          resolve()
        }
      } catch {
        // not a JSON line
      }
    })
    exited.then(({ code, signal }) => {
      clearTimeout(timer)
      reject(new Error(`server on port ${port} exited (${code ?? signal}) before it was ready:\n${lines.join('\n')}\n${stderr}`))
    })
  })
  await ready
  return { child, pid, base: `http://127.0.0.1:${port}`, lines, exited }
}

/** Two server processes on a fresh schema of the test database. */
async function startServers(t: Test): Promise<[ServerProcess, ServerProcess]> {
  const { schema } = await createTestSchema(t)
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'messenger-two-processes-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const ports = [await freeLoopbackPort(), await freeLoopbackPort()]
  while (ports[1] === ports[0]) ports[1] = await freeLoopbackPort()
  const [one, two] = await Promise.all(ports.map((port) => spawnServer(t, schema, dataDir, port)))
  return [one, two]
}

async function post(server: ServerProcess, command: string, body: Json = {}, token?: string) {
  const response = await fetch(`${server.base}/${command}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  })
  const headersAt = performance.now()
  const json = (await response.json()) as Json
  return { status: response.status, body: json, headersAt, at: performance.now() }
}

async function signUp(server: ServerProcess): Promise<Session> {
  const login = uniqueLogin()
  const registered = await post(server, 'registration', { login, password: PASSWORD })
  if (registered.status !== 200) throw new Error(`registration failed: ${JSON.stringify(registered.body)}`)
  return logIn(server, login)
}

async function logIn(server: ServerProcess, login: string): Promise<Session> {
  const authorized = await post(server, 'authorization', { login, password: PASSWORD })
  if (authorized.status !== 200) throw new Error(`authorization failed: ${JSON.stringify(authorized.body)}`)
  const { uid, session_key, token } = authorized.body.session
  return { uid, session_key, token, login }
}

async function befriend(server: ServerProcess, a: Session, b: Session) {
  const asked = await post(server, 'add_contact_request', { login: b.login }, a.token)
  if (asked.status !== 200) throw new Error(`add_contact_request failed: ${JSON.stringify(asked.body)}`)
  const accepted = await post(server, 'add_contact_reply', { contact_uid: a.uid, status: 1 }, b.token)
  if (accepted.status !== 200) throw new Error(`add_contact_reply failed: ${JSON.stringify(accepted.body)}`)
}

/** The cursor at the end of the user's log (a timeout-0 poll from 0; fewer entries than a batch). */
async function currentCursor(server: ServerProcess, session: Session): Promise<number> {
  const reply = await post(server, 'update_data', { cursor: 0, timeout: 0 }, session.token)
  if (reply.status !== 200) throw new Error(`update_data failed: ${JSON.stringify(reply.body)}`)
  return reply.body.cursor
}


/** Starts a poll and reports whether it has been answered yet. */
function holdPoll(server: ServerProcess, body: Json, token: string) {
  const state = { answered: false }
  const promise = post(server, 'update_data', body, token).finally(() => (state.answered = true))
  return { state, promise }
}

t.test('a message sent through process 1 wakes a poll held on process 2 within 100 ms', async (t) => {
  const [one, two] = await startServers(t)
  const alice = await signUp(one)
  const bob = await signUp(one)
  await befriend(one, alice, bob)
  let cursor = await currentCursor(two, bob) // also opens process 2's LISTEN connection

  const latencies: number[] = []
  for (let i = 0; i < 6; i++) {
    const poll = holdPoll(two, { cursor, timeout: 10 }, bob.token)
    await sleep(300) // time to reach the wait
    t.notOk(poll.state.answered, `round ${i}: the poll is held before the send`)

    const text = `ping ${i} ${Date.now()}`
    const sent = await post(one, 'send_msg', { to_uid: bob.uid, msg: text }, alice.token)
    t.equal(sent.status, 200, `round ${i}: send_msg through process 1`)
    const woke = await poll.promise
    const latency = woke.at - sent.headersAt
    latencies.push(latency)

    t.equal(woke.status, 200, `round ${i}: the poll on process 2 answered 200`)
    t.match(woke.body.msg_array, [{ msg_id: sent.body.msg_id, sender_uid: alice.uid, text }], `round ${i}: it carries the message`)
    t.equal(woke.body.msg_array.length, 1)
    t.ok(woke.body.cursor > cursor, `round ${i}: the cursor moved`)
    cursor = woke.body.cursor
  }
  const max = Math.max(...latencies)
  t.comment(`wake-up latencies (send reply -> poll reply), ms: ${latencies.map((l) => l.toFixed(1)).join(', ')}; max ${max.toFixed(1)}`)
  t.ok(max < 100, `every wake-up within 100 ms of the send's reply (max ${max.toFixed(1)} ms)`)

  // And the other way round, once: sent through process 2, polled on process 1.
  const aliceCursor = await currentCursor(one, alice)
  const back = holdPoll(one, { cursor: aliceCursor, timeout: 10 }, alice.token)
  await sleep(300)
  t.notOk(back.state.answered, 'the poll on process 1 is held')
  const reply = await post(two, 'send_msg', { to_uid: alice.uid, msg: 'pong' }, bob.token)
  t.equal(reply.status, 200)
  const woke = await back.promise
  t.match(woke.body.msg_array, [{ msg_id: reply.body.msg_id, text: 'pong' }], 'process 1 woke for a send through process 2')
  t.ok(woke.at - reply.headersAt < 100, `within ${(woke.at - reply.headersAt).toFixed(1)} ms`)
})

t.test('logout through process 1 is refused by process 2, held polls included', async (t) => {
  const [one, two] = await startServers(t)
  const alice = await signUp(one)
  const alice2 = await logIn(one, alice.login)
  const bob = await signUp(two)

  t.equal((await post(two, 'get_data', {}, alice.token)).status, 200, "process 2 accepts process 1's token")
  const cursor = await currentCursor(two, alice)
  const held = holdPoll(two, { cursor, timeout: 10 }, alice.token)
  await sleep(300)
  t.notOk(held.state.answered, 'the poll is held on process 2')

  const out = await post(one, 'logout', {}, alice.token)
  t.equal(out.status, 200, 'logout through process 1')
  t.same(out.body, {})
  const answer = await held.promise
  t.equal(answer.status, 401, 'the poll held on process 2 is answered 401')
  t.equal(answer.body.error, 'unauthorized')
  t.ok(answer.at - out.headersAt < 1000, `promptly (${(answer.at - out.headersAt).toFixed(1)} ms after the logout's reply)`)

  for (const [command, body] of [
    ['get_data', {}],
    ['update_data', { cursor, timeout: 0 }],
    ['send_msg', { to_uid: bob.uid, msg: 'x' }],
  ] as const) {
    const refused = await post(two, command, body, alice.token)
    t.equal(refused.status, 401, `process 2 refuses ${command}`)
    t.equal(refused.body.error, 'unauthorized')
  }
  // Wiki dialect on process 2, the session echoed in the body.
  const wikiRefused = await fetch(`${two.base}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ request: 'get_data', session: { uid: alice.uid, session_key: alice.session_key, token: alice.token } }),
  })
  t.equal(wikiRefused.status, 401, 'process 2 refuses the body session too')
  t.equal((await post(one, 'get_data', {}, alice.token)).status, 401, 'process 1 refuses it')

  t.equal((await post(two, 'get_data', {}, alice2.token)).status, 200, "alice's other session still works on process 2")
  t.equal((await post(two, 'get_data', {}, bob.token)).status, 200, 'another user is unaffected')
})

t.test('SIGTERM to a process holding a poll: the poll is answered 200 and the process exits 0', async (t) => {
  const [one, two] = await startServers(t)
  const alice = await signUp(one)
  const cursor = await currentCursor(two, alice)

  const held = holdPoll(two, { cursor, timeout: 10 }, alice.token)
  await sleep(300)
  t.notOk(held.state.answered, 'the poll is held on process 2')

  const signalledAt = performance.now()
  process.kill(two.pid, 'SIGTERM')
  const answer = await held.promise
  const answeredIn = answer.at - signalledAt
  t.equal(answer.status, 200, 'the held poll is answered 200')
  t.same(answer.body.msg_array, [], 'with no messages')
  t.same(answer.body.events_array, [], 'and no events')
  t.equal(answer.body.cursor, cursor, 'at the same cursor')
  t.ok(answeredIn < 2000, `promptly (${answeredIn.toFixed(0)} ms after SIGTERM), not at its 10 s timeout`)

  const exit = await Promise.race([two.exited, sleep(5000).then(() => 'timeout' as const)])
  t.not(exit, 'timeout', 'the process exits within 5 s')
  if (exit !== 'timeout') t.same(exit, { code: 0, signal: null }, 'with code 0')
  t.comment(`process 2 exited ${(performance.now() - signalledAt).toFixed(0)} ms after SIGTERM`)
  t.ok(
    two.lines.some((line) => line.includes('"shutting down"')),
    'it logged its shutdown',
  )

  // The other process keeps serving the same users.
  t.equal((await post(one, 'get_data', {}, alice.token)).status, 200, 'process 1 still serves')
  const poll = await post(one, 'update_data', { cursor, timeout: 0 }, alice.token)
  t.equal(poll.status, 200)
})
