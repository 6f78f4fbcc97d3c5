// build(t): a real app on a real PostgreSQL, in a schema of its own that is dropped
// when the test ends, so tests never see each other's rows. Plus small HTTP helpers
// that speak the protocol the way clients do (through app.inject).
import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import { buildApp, type App } from '../src/app.js'
import type { Clock, ManualClock } from '../src/clock.js'
import { defaultConfig, type Config } from '../src/config.js'
import { createKnex, migrate } from '../src/database.js'
import { generateVapidKeys } from '../src/vapid.js'
import type { Static } from 'typebox'
import type { UpdateDataReply } from '../src/schemas/updates.js'
import type { PolledMessage as PolledMessageSchema } from '../src/schemas/messages.js'

export const TEST_JWT_SECRET = 'test-secret-test-secret-test-secret-0123456789'
/** One VAPID pair per test process: apps sharing a database share it, as processes sharing DATA_DIR do. */
export const TEST_VAPID_KEYS = generateVapidKeys()

/** npm test (test/run.ts) sets DATABASE_URL: the embedded cluster of the run, or the one given. */
export function testDatabaseUrl(): string {
  const url = process.env.DATABASE_URL
  if (!url) throw new Error('DATABASE_URL is unset: run the tests with npm test')
  return url
}

export interface TestDatabase {
  url: string
  schema: string
}

/** A fresh, migrated schema in the test database, dropped at the end of `t`. */
export async function createTestSchema(t: Test): Promise<TestDatabase> {
  const url = testDatabaseUrl()
  const schema = `t_${randomBytes(6).toString('hex')}`
  const knex = createKnex({ url, schema, poolMax: 1 })
  await migrate(knex, schema)
  await knex.destroy()
  t.teardown(async () => {
    const admin = createKnex({ url, schema: 'public', poolMax: 1 })
    await admin.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [schema])
    await admin.destroy()
  })
  return { url, schema }
}

export function testConfig(database: TestDatabase, overrides: Partial<Config> = {}): Config {
  return defaultConfig({
    jwtSecret: TEST_JWT_SECRET,
    vapidPublicKey: TEST_VAPID_KEYS.publicKey,
    vapidPrivateKey: TEST_VAPID_KEYS.privateKey,
    databaseUrl: database.url,
    databaseSchema: database.schema,
    logLevel: 'silent',
    // Tests register and send far more than people do; the limits' own tests lower these.
    registrationsPerIpPerHour: 1_000_000,
    sendRatePerMinute: 1_000_000,
    redisUrl: process.env.REDIS_URL || undefined,
    ...overrides,
  })
}

/**
 * A real app on its own schema (or on `database`, shared with other apps of the test);
 * closed at the end of `t`. Pass a ManualClock to control the time the rules read.
 */
export async function build(t: Test, overrides: Partial<Config> = {}, database?: TestDatabase, clock?: Clock): Promise<App> {
  const db = database ?? (await createTestSchema(t))
  const app = await buildApp(testConfig(db, overrides), { clock })
  t.teardown(() => app.close())
  await app.ready()
  return app
}

export interface TestSession {
  uid: number
  session_key: number
  token: string
  login: string
}

type Json = Record<string, unknown>

/** POST /<command> with a bearer token. */
export async function call(app: App, command: string, body: Json = {}, token?: string) {
  const response = await app.inject({
    method: 'POST',
    url: `/${command}`,
    headers: token ? { authorization: `Bearer ${token}` } : {},
    payload: body,
  })
  return { status: response.statusCode, body: response.json(), headers: response.headers }
}

/** POST / in the wiki dialect, the session echoed in the body as the desktop client does. */
export async function wiki(app: App, request: string, body: Json = {}, session?: TestSession) {
  const envelope: Json = { ...body, request }
  if (session) envelope.session = { uid: session.uid, session_key: session.session_key, token: session.token }
  const response = await app.inject({
    method: 'POST',
    url: '/',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify(envelope),
  })
  return { status: response.statusCode, body: response.json(), headers: response.headers, raw: response.body }
}

let counter = 0
export function uniqueLogin(prefix = 'user'): string {
  return `${prefix}${++counter}_${randomBytes(3).toString('hex')}`
}

export async function signUp(app: App, login = uniqueLogin(), password = 'secret1'): Promise<TestSession> {
  const registered = await call(app, 'registration', { login, password })
  if (registered.status !== 200) throw new Error(`registration failed: ${JSON.stringify(registered.body)}`)
  return logIn(app, { login }, password)
}

/** A new session of an existing user (signUp's password unless told). */
export async function logIn(app: App, user: { login: string }, password = 'secret1'): Promise<TestSession> {
  const authorized = await call(app, 'authorization', { login: user.login, password })
  if (authorized.status !== 200) throw new Error(`authorization failed: ${JSON.stringify(authorized.body)}`)
  const session = authorized.body.session
  return { uid: session.uid, session_key: session.session_key, token: session.token, login: user.login }
}

/** Makes two users accepted contacts. */
export async function befriend(app: App, a: TestSession, b: TestSession): Promise<void> {
  const asked = await call(app, 'add_contact_request', { login: b.login }, a.token)
  if (asked.status !== 200) throw new Error(`add_contact_request failed: ${JSON.stringify(asked.body)}`)
  const accepted = await call(app, 'add_contact_reply', { contact_uid: a.uid, status: 1 }, b.token)
  if (accepted.status !== 200) throw new Error(`add_contact_reply failed: ${JSON.stringify(accepted.body)}`)
}

/** An update_data reply and one of its messages, as the schemas the route answers with define them. */
export type PollReply = Static<typeof UpdateDataReply>
export type PolledMessage = Static<typeof PolledMessageSchema>

/** Polls with a cursor and `timeout: 0`. */
export async function poll(app: App, session: TestSession, cursor: number, timeout = 0) {
  const response = await call(app, 'update_data', { cursor, timeout }, session.token)
  if (response.status !== 200) throw new Error(`update_data failed: ${response.status} ${JSON.stringify(response.body)}`)
  return response.body as PollReply
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * The longest a reply may take and still count as prompt (woken, not held to a timeout of 5 s
 * or more). Generous: test files share the cores, and a first call warms up an app's paths
 * (a cold first poll took 270–650 ms alone). How fast it is, is measured by npm run bench.
 */
export const PROMPT_MS = 2500

export interface EventuallyOptions {
  /** What is awaited, for the error on timeout ("the poll to be held"). */
  what: string
  /** Real time to give up after; 5 s unless told. */
  timeoutMs?: number
  /** Real time between two checks; 5 ms unless told. */
  everyMs?: number
}

/**
 * The one wait-until of the tests: checks `check` every few ms (real time) until it returns a
 * truthy value, which it returns; throws naming `what` once `timeoutMs` passed. Time-based
 * rules are not awaited with it: the test moves the app's ManualClock instead, and uses this
 * only for the async work that follows.
 */
export async function eventually<T>(check: () => T | Promise<T>, { what, timeoutMs = 5000, everyMs = 5 }: EventuallyOptions): Promise<T> {
  const started = performance.now()
  for (;;) {
    const value = await check()
    if (value) return value
    if (performance.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(everyMs)
  }
}

/** `promise` with a `done` flag that turns true once it has settled (for "not answered yet" checks). */
export function tracked<T>(promise: Promise<T>): { promise: Promise<T>; readonly done: boolean } {
  const state = { promise, done: false }
  promise.then(
    () => (state.done = true),
    () => (state.done = true),
  )
  return state
}

/**
 * Awaits `reply` (a poll) while moving `clock` by `stepMs` whenever `app` holds a poll, so
 * that an idle poll reaches its timeout at once instead of after that much real time.
 */
export async function advancingWhileHeld<T>(app: App, clock: ManualClock, reply: Promise<T>, stepMs: number): Promise<T> {
  const poll = tracked(reply)
  await eventually(
    () => {
      if (!poll.done && app.eventLog.polls.size > 0) clock.advance(stepMs)
      return poll.done
    },
    { what: 'the poll to answer', timeoutMs: 10_000 },
  )
  return reply
}

/**
 * Moves `clock` by `stepMs` every `everyMs` of real time until the returned stop is called
 * (and at the latest when `t` ends): held polls reach their timeouts without being waited out.
 */
export function keepAdvancing(t: Test, clock: ManualClock, stepMs: number, everyMs = 10): () => void {
  const timer = setInterval(() => clock.advance(stepMs), everyMs)
  const stop = () => clearInterval(timer)
  t.teardown(stop)
  return stop
}

/** GET /metrics (through app.inject): the Prometheus text. */
export async function metrics(app: App): Promise<string> {
  const response = await app.inject({ method: 'GET', url: '/metrics' })
  if (response.statusCode !== 200) throw new Error(`GET /metrics answered ${response.statusCode}`)
  return response.body
}

/** The value of the unlabelled series `name` in a Prometheus text; throws when it is missing. */
export function metricValue(metricsText: string, name: string): number {
  const line = metricsText.split('\n').find((l) => l.startsWith(`${name} `))
  if (!line) throw new Error(`${name} missing from /metrics`)
  return Number(line.slice(name.length + 1))
}

/** How many backends wait, directly or transitively, on the backend `pid` right now. */
export async function backendsWaitingOn(app: App, pid: number): Promise<number> {
  const result = await app.db.raw(
    `WITH RECURSIVE waiting(pid) AS (
       SELECT pid FROM pg_stat_activity WHERE ? = ANY(pg_blocking_pids(pid))
       UNION
       SELECT a.pid FROM pg_stat_activity a JOIN waiting w ON w.pid = ANY(pg_blocking_pids(a.pid))
     ) SELECT count(*)::int AS n FROM waiting`,
    [pid],
  )
  return result.rows[0].n
}

/**
 * Waits (bounded, about 5 s) until at least `atLeast` backends wait, directly or
 * transitively, on the backend `pid`; returns how many do (fewer when it gave up).
 */
export async function backendsBlockedBy(app: App, pid: number, atLeast = 1): Promise<number> {
  let blocked = 0
  await eventually(async () => (blocked = await backendsWaitingOn(app, pid)) >= atLeast, {
    what: `${atLeast} backend(s) waiting on backend ${pid}`,
    everyMs: 25,
  }).catch(() => {})
  return blocked
}

/** Everything in the log after `cursor` (timeout-0 polls until an empty reply). */
export async function collect(app: App, session: TestSession, cursor: number) {
  const events: Json[] = []
  const msgs: PolledMessage[] = []
  for (let i = 0; i < 1000; i++) {
    const reply = await poll(app, session, cursor, 0)
    if (reply.msg_array.length === 0 && reply.events_array.length === 0) break
    events.push(...reply.events_array)
    msgs.push(...reply.msg_array)
    cursor = reply.cursor
  }
  return { events, msgs, cursor }
}

/** Polls with timeout 0 until an empty reply; returns the cursor at the end of the log. */
export async function drain(app: App, session: TestSession, cursor = 0): Promise<number> {
  for (let i = 0; i < 1000; i++) {
    const reply = await poll(app, session, cursor, 0)
    if (reply.msg_array.length === 0 && reply.events_array.length === 0) return reply.cursor
    cursor = reply.cursor
  }
  throw new Error('log never drained')
}

/**
 * `count` users inserted straight into the tables (an argon2 hash per HTTP registration
 * is slow), each with a live session and a signed token, in uid order.
 */
export async function insertUsers(app: App, count: number, prefix: string): Promise<TestSession[]> {
  const tag = randomBytes(4).toString('hex')
  const users: { id: number; login: string }[] = await app
    .db('users')
    .insert(Array.from({ length: count }, (_, i) => ({ login: `${prefix}${i}_${tag}`, password_hash: 'not-a-hash' })))
    .returning(['id', 'login'])
  const sessions: { id: number; user_id: number }[] = await app
    .db('sessions')
    .insert(users.map((u) => ({ user_id: u.id, expires_at: app.db.raw("now() + interval '1 day'") })))
    .returning(['id', 'user_id'])
  const sidOf = new Map(sessions.map((s) => [s.user_id, s.id]))
  return users
    .map((u) => {
      const sid = sidOf.get(u.id)!
      return { uid: u.id, session_key: sid, token: app.jwt.sign({ uid: u.id, sid }), login: u.login }
    })
    .sort((a, b) => a.uid - b.uid)
}

/** POST /<command> as `session`, failing loudly unless it answers 200; the reply's body. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function ok(app: App, command: string, body: Json, session: TestSession): Promise<Record<string, any>> {
  const reply = await call(app, command, body, session.token)
  if (reply.status !== 200) throw new Error(`${command} failed: ${reply.status} ${JSON.stringify(reply.body)}`)
  return reply.body
}
