// Real server processes (src/server.ts, as `npm start` runs it) on a schema of the test
// database, spoken to over real HTTP. Shared by the tests that need more than one process
// (test/two-processes.test.ts, test/session-management.test.ts).
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { createTestSchema, TEST_JWT_SECRET, TEST_VAPID_KEYS, testDatabaseUrl, uniqueLogin } from './helper.js'
import { freeLoopbackPort } from '../src/embedded-database.js'

const PROJECT_ROOT = path.resolve(fileURLToPath(new URL('..', import.meta.url)))
export const PASSWORD = 'secret1'
const READY_TIMEOUT_MS = 30_000

export interface ServerProcess {
  child: ChildProcess
  pid: number
  base: string
  /** The database schema it serves. */
  schema: string
  /** Every stdout line so far (pino JSON lines). */
  lines: string[]
  /** Every stderr line so far (none expected: the logs are JSON lines on stdout). */
  errorLines: string[]
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

export interface Session {
  uid: number
  session_key: number
  token: string
  login: string
}

export type Json = Record<string, any>

/** The environment of a plain server process: none of tap's loaders or settings. */
export function serverEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (key === 'NODE_OPTIONS' || key.startsWith('TAP') || key.startsWith('_TAPJS')) continue
    env[key] = value
  }
  return { ...env, ...extra }
}

/**
 * Starts one server process on `schema` and waits for its "messenger ready" line; it is
 * sent SIGTERM (then SIGKILL after 5 s) at the end of `t`. `env` adds or overrides
 * environment variables (e.g. SESSION_TTL_SECONDS).
 */
export async function spawnServer(t: Test, schema: string, dataDir: string, port: number, env: Record<string, string> = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: PROJECT_ROOT,
    env: serverEnv({
      DATABASE_URL: testDatabaseUrl(),
      DATABASE_SCHEMA: schema,
      JWT_SECRET: TEST_JWT_SECRET,
      VAPID_PUBLIC_KEY: TEST_VAPID_KEYS.publicKey,
      VAPID_PRIVATE_KEY: TEST_VAPID_KEYS.privateKey,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      DATA_DIR: dataDir,
      ...env,
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
  const errorLines: string[] = []
  createInterface({ input: child.stderr! }).on('line', (line) => errorLines.push(line))
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server on port ${port} not ready after ${READY_TIMEOUT_MS} ms:\n${lines.join('\n')}\n${errorLines.join('\n')}`)), READY_TIMEOUT_MS)
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
      reject(new Error(`server on port ${port} exited (${code ?? signal}) before it was ready:\n${lines.join('\n')}\n${errorLines.join('\n')}`))
    })
  })
  await ready
  return { child, pid, base: `http://127.0.0.1:${port}`, schema, lines, errorLines, exited }
}

/** Attempts at a free port: another test process may take the one found before the server listens on it. */
const PORT_ATTEMPTS = 3

/** spawnServer on a free port, found again when another process took it first (EADDRINUSE). */
export async function spawnServerOnFreePort(t: Test, schema: string, dataDir: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await spawnServer(t, schema, dataDir, await freeLoopbackPort(), env)
    } catch (error) {
      if (attempt >= PORT_ATTEMPTS || !(error as Error).message.includes('EADDRINUSE')) throw error
    }
  }
}

/** Two server processes on a fresh schema of the test database. */
export async function startServers(t: Test, env: Record<string, string> = {}): Promise<[ServerProcess, ServerProcess]> {
  const { schema } = await createTestSchema(t)
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'messenger-two-processes-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const [one, two] = await Promise.all([spawnServerOnFreePort(t, schema, dataDir, env), spawnServerOnFreePort(t, schema, dataDir, env)])
  return [one, two]
}

/** POST /<command> over HTTP with a bearer token; `headersAt` and `at` are performance.now() stamps. */
export async function post(server: ServerProcess, command: string, body: Json = {}, token?: string) {
  const response = await fetch(`${server.base}/${command}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  })
  const headersAt = performance.now()
  const json = (await response.json()) as Json
  return { status: response.status, body: json, headersAt, at: performance.now() }
}

export async function signUp(server: ServerProcess): Promise<Session> {
  const login = uniqueLogin()
  const registered = await post(server, 'registration', { login, password: PASSWORD })
  if (registered.status !== 200) throw new Error(`registration failed: ${JSON.stringify(registered.body)}`)
  return logIn(server, login)
}

export async function logIn(server: ServerProcess, login: string, password = PASSWORD): Promise<Session> {
  const authorized = await post(server, 'authorization', { login, password })
  if (authorized.status !== 200) throw new Error(`authorization failed: ${JSON.stringify(authorized.body)}`)
  const { uid, session_key, token } = authorized.body.session
  return { uid, session_key, token, login }
}

export async function befriend(server: ServerProcess, a: Session, b: Session) {
  const asked = await post(server, 'add_contact_request', { login: b.login }, a.token)
  if (asked.status !== 200) throw new Error(`add_contact_request failed: ${JSON.stringify(asked.body)}`)
  const accepted = await post(server, 'add_contact_reply', { contact_uid: a.uid, status: 1 }, b.token)
  if (accepted.status !== 200) throw new Error(`add_contact_reply failed: ${JSON.stringify(accepted.body)}`)
}

/** The cursor at the end of the user's log (a timeout-0 poll from 0; fewer entries than a batch). */
export async function currentCursor(server: ServerProcess, session: Session): Promise<number> {
  const reply = await post(server, 'update_data', { cursor: 0, timeout: 0 }, session.token)
  if (reply.status !== 200) throw new Error(`update_data failed: ${JSON.stringify(reply.body)}`)
  return reply.body.cursor
}

/** The polls the process holds now (its /metrics messenger_held_polls); -1 when it does not say. */
export async function heldPolls(server: ServerProcess): Promise<number> {
  try {
    const response = await fetch(`${server.base}/metrics`, { signal: AbortSignal.timeout(5000) })
    if (response.status !== 200) return -1
    const match = /^messenger_held_polls (\d+)$/m.exec(await response.text())
    return match ? Number(match[1]) : -1
  } catch {
    return -1
  }
}

/** Starts a poll and reports whether it has been answered yet. */
export function holdPoll(server: ServerProcess, body: Json, token: string) {
  const state = { answered: false }
  const promise = post(server, 'update_data', body, token).finally(() => (state.answered = true))
  return { state, promise }
}
