// Fault injection against REAL server processes (src/server.ts, as `npm start` runs it),
// spoken to over real HTTP. What it proves:
//
// 1. No sticky routing: with three processes on one schema, a client whose polls and
//    sends land on any process, round-robin, gets every log entry exactly once and in
//    order by following the cursors; the same cursor gives the same answer on every process.
// 2. kill -9 mid-load: three processes, four sender/receiver pairs sending and polling
//    round-robin across them; one process is SIGKILLed mid-load and restarted on its port.
//    Sends that failed (connection error, 5xx) are retried with the SAME client_msg_id on
//    another process until 200, and some sends race the same client_msg_id on two
//    processes on purpose. Every acknowledged msg_id reaches its receiver exactly once, in
//    the sender's order, one stored message per (sender, client_msg_id), one log entry each.
// 3. Database restart mid-load: a private embedded PostgreSQL is stopped under load. While
//    it is down every request answers within 5 s (503 + Retry-After; /healthz 200,
//    /readyz 503) and the process stays up. Started again on the same port, the LISTEN
//    connection comes back with no request to trigger it, sends succeed again, a held poll
//    is woken promptly by a send, and every acknowledged message (before, during and
//    after the outage) is delivered exactly once to the cursor receiver.
// 4. Graceful shutdown: SIGTERM answers held polls at once (200, empty arrays), lets an
//    in-flight send (blocked on a row lock the test holds) finish with 200, refuses new
//    connections, and the process exits 0 within SHUTDOWN_GRACE_MS.
// 5. Send rate limit across processes: with REDIS_URL two processes share one counter
//    (SEND_RATE_PER_MINUTE=5: the 6th send, on either process, is 429 + Retry-After);
//    without it each process counts on its own (5 each).
//
// Loops are bounded in count and time; each case has its own timeout (tap's file timeout
// is 120 s, package.json), the whole file runs in about a minute.
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import t, { type Test } from 'tap'
import { PROMPT_MS, createTestSchema, eventually, sleep, uniqueLogin } from './helper.js'
import {
  PASSWORD,
  befriend,
  currentCursor,
  heldPolls,
  logIn,
  signUp,
  spawnServer,
  spawnServerOnFreePort,
  startServers,
  type Json,
  type ServerProcess,
  type Session,
} from './processes.js'
import { createKnex, migrate } from '../src/database.js'
import { freeLoopbackPort, isAlive, startEmbeddedDatabase, type EmbeddedDatabase } from '../src/embedded-database.js'

// The tests send far more than people do: lift the limits case 5 does not test.
const LOAD_ENV = {
  SEND_RATE_PER_MINUTE: '1000000',
  RATE_LIMIT_PER_MINUTE: '1000000',
  REGISTRATIONS_PER_IP_PER_HOUR: '1000000',
}

// ---------------------------------------------------------------------------------------
// HTTP that never throws and never hangs: every request has a deadline.

type Outcome =
  | { ok: true; status: number; body: any; retryAfter: string | null; ms: number; at: number }
  | { ok: false; error: string; ms: number; at: number }

function describeError(error: unknown): string {
  const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string } }
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'timeout'
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(error)
}

async function request(base: string, method: 'GET' | 'POST', route: string, body?: Json, token?: string, timeoutMs = 5000): Promise<Outcome> {
  const started = performance.now()
  try {
    const response = await fetch(`${base}/${route}`, {
      method,
      headers: {
        ...(method === 'POST' ? { 'content-type': 'application/json' } : {}),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: method === 'POST' ? JSON.stringify(body ?? {}) : undefined,
      signal: AbortSignal.timeout(timeoutMs),
    })
    const text = await response.text()
    let parsed: unknown = text
    try {
      parsed = JSON.parse(text)
    } catch {
      // /metrics is text
    }
    const at = performance.now()
    return { ok: true, status: response.status, body: parsed, retryAfter: response.headers.get('retry-after'), ms: at - started, at }
  } catch (error) {
    const at = performance.now()
    return { ok: false, error: describeError(error), ms: at - started, at }
  }
}

const command = (base: string, name: string, body: Json, token?: string, timeoutMs?: number) => request(base, 'POST', name, body, token, timeoutMs)

function show(outcome: Outcome): string {
  return outcome.ok ? `${outcome.status} ${JSON.stringify(outcome.body).slice(0, 200)}` : `error ${outcome.error}`
}

/** A request answered 503 `unavailable` with a Retry-After of whole seconds. */
function isUnavailable(outcome: Outcome): boolean {
  return outcome.ok && outcome.status === 503 && /^\d+$/.test(outcome.retryAfter ?? '')
}

/** Whether the process comes to hold `count` polls within `timeoutMs`. */
async function holdsPolls(server: ServerProcess, count: number, timeoutMs = 3000): Promise<boolean> {
  return eventually(async () => (await heldPolls(server)) === count, { what: `${count} polls held`, timeoutMs, everyMs: 25 }).then(
    () => true,
    () => false,
  )
}

async function tempDir(t: Test, prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Follows the cursor with timeout-0 polls, each on the next of `bases`, until an empty reply. */
async function replay(bases: string[], token: string, from: number): Promise<{ keys: string[]; cursor: number }> {
  const keys: string[] = []
  let cursor = from
  for (let i = 0; i < 200; i++) {
    const reply = await command(bases[i % bases.length], 'update_data', { cursor, timeout: 0 }, token)
    if (!reply.ok || reply.status !== 200) throw new Error(`replay poll failed: ${show(reply)}`)
    if (reply.body.msg_array.length + reply.body.events_array.length === 0) return { keys, cursor: reply.body.cursor }
    keys.push(...entryKeys(reply.body))
    cursor = reply.body.cursor
  }
  throw new Error('replay never reached the end of the log')
}

/**
 * Messages and events of one reply as `m<msg_id>` / `e<eid>`. A reply splits its entries
 * into two arrays, so only the order among messages and among events is comparable
 * across different batchings (see `split`).
 */
function entryKeys(body: Json): string[] {
  return [...body.msg_array.map((m: Json) => `m${m.msg_id}`), ...body.events_array.map((e: Json) => `e${e.eid}`)]
}

function split(keys: string[]) {
  return { messages: keys.filter((k) => k.startsWith('m')), events: keys.filter((k) => k.startsWith('e')) }
}

function duplicates<T>(items: T[]): T[] {
  const seen = new Set<T>()
  const dup: T[] = []
  for (const item of items) {
    if (seen.has(item)) dup.push(item)
    seen.add(item)
  }
  return dup
}

// ---------------------------------------------------------------------------------------

t.test('three processes on one schema', { timeout: 90_000 }, async (t) => {
  const { url, schema } = await createTestSchema(t)
  const dataDir = await tempDir(t, 'messenger-faults-')
  const servers = await Promise.all([0, 1, 2].map(() => spawnServerOnFreePort(t, schema, dataDir, LOAD_ENV)))
  const ports = servers.map((s) => Number(new URL(s.base).port))
  const bases = servers.map((s) => s.base) // a restarted process keeps its port, so its base
  const knex = createKnex({ url, schema, poolMax: 2 })
  t.teardown(() => knex.destroy())

  t.test('no sticky routing: polls on any process see every entry exactly once', async (t) => {
    const u = await signUp(servers[0])
    const v = await signUp(servers[1])
    const w = await signUp(servers[2])
    await befriend(servers[1], v, u) // u: contact_request, through process 2
    await befriend(servers[2], w, u) // u: contact_request, through process 3

    const live: string[] = []
    const first = await command(bases[0], 'update_data', { cursor: 0, timeout: 0 }, u.token)
    t.equal(first.ok && first.status, 200, 'the first poll, from 0')
    if (!first.ok) return
    t.equal(first.body.events_array.length, 2, 'both contact requests, from the whole log')
    live.push(...entryKeys(first.body))
    let cursor: number = first.body.cursor

    // Held on one process, woken by a send through another, the same cursor asked again on
    // the third: the answers agree.
    for (let round = 0; round < 6; round++) {
      const [holder, via, third] = [round % 3, (round + 1) % 3, (round + 2) % 3]
      const sender = round % 2 === 0 ? v : w
      const held = command(bases[holder], 'update_data', { cursor, timeout: 10 }, u.token, 12_000)
      t.ok(await holdsPolls(servers[holder], 1), `round ${round}: the poll is held on process ${holder + 1}`)
      const sent = await command(bases[via], 'send_msg', { to_uid: u.uid, msg: `round ${round}`, client_msg_id: `nsr-${round}` }, sender.token)
      t.equal(sent.ok && sent.status, 200, `round ${round}: sent through process ${via + 1}`)
      const woke = await held
      if (!woke.ok || !sent.ok) {
        t.fail(`round ${round}: ${show(woke)}`)
        return
      }
      t.equal(woke.status, 200, `round ${round}: the held poll answered 200`)
      t.same(woke.body.msg_array.map((m: Json) => [m.msg_id, m.text]), [[sent.body.msg_id, `round ${round}`]], `round ${round}: exactly the new message`)
      const again = await command(bases[third], 'update_data', { cursor, timeout: 0 }, u.token)
      t.same(again.ok && [again.body.cursor, again.body.msg_array], [woke.body.cursor, woke.body.msg_array], `round ${round}: the same cursor on process ${third + 1} gives the same answer`)
      live.push(...entryKeys(woke.body))
      cursor = woke.body.cursor
    }

    // A burst through all three processes at once, read back in batches round-robin.
    const burst = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        command(bases[i % 3], 'send_msg', { to_uid: u.uid, msg: `burst ${i}`, client_msg_id: `nsb-${i}` }, (i % 2 === 0 ? v : w).token),
      ),
    )
    t.ok(burst.every((r) => r.ok && r.status === 200), 'the burst was acknowledged')
    const tail = await replay(bases, u.token, cursor)
    live.push(...tail.keys)
    t.same(duplicates(live), [], 'no entry seen twice')
    const burstIds = burst.map((r) => (r.ok ? `m${r.body.msg_id}` : 'x'))
    t.same(tail.keys.filter((k) => burstIds.includes(k)).sort(), [...burstIds].sort(), 'every burst message arrived')
    t.equal(live.length, 2 + 6 + 30, 'two events and 36 messages in all')

    // The whole log, read from 0 on each process alone and round-robin: the same list.
    for (const [name, order] of [
      ['process 1', [bases[0]]],
      ['process 2', [bases[1]]],
      ['process 3', [bases[2]]],
      ['round-robin', [bases[2], bases[0], bases[1]]],
    ] as const) {
      t.same(split((await replay([...order], u.token, 0)).keys), split(live), `replayed from 0 on ${name}: the same entries, once each, in order`)
    }
  })

  t.test('kill -9 of one process mid-load: every acknowledged message exactly once, in order', async (t) => {
    interface Ack {
      seq: number
      clientMsgId: string
      text: string
      msgId: number
    }
    interface Pair {
      index: number
      sender: Session
      receiver: Session
      startCursor: number
      acked: Ack[]
      delivered: Json[]
      deliveredIds: Set<number>
      sendingDone: boolean
      cursorWentBack: number
    }
    const pairs: Pair[] = []
    for (let i = 0; i < 4; i++) {
      const sender = await signUp(servers[i % 3])
      const receiver = await signUp(servers[(i + 1) % 3])
      await befriend(servers[(i + 2) % 3], sender, receiver)
      const startCursor = await currentCursor(servers[i % 3], receiver)
      pairs.push({ index: i, sender, receiver, startCursor, acked: [], delivered: [], deliveredIds: new Set(), sendingDone: false, cursorWentBack: 0 })
    }

    const failures = new Map<string, number>()
    const fail = (what: string, outcome: Outcome) => {
      const key = `${what}: ${outcome.ok ? outcome.status : outcome.error}`
      failures.set(key, (failures.get(key) ?? 0) + 1)
    }
    const raceMismatches: string[] = []
    let racedSends = 0
    let rr = 0
    const VICTIM = 1
    const loadStart = performance.now()
    const hardStop = loadStart + 20_000
    // The load runs until every pair has had BEFORE_KILL messages acknowledged, then one
    // process is killed and restarted, and it runs on until every pair has had AFTER_RESTART
    // more (at most 20 s in all).
    const BEFORE_KILL = 10
    const AFTER_RESTART = 20
    let ackedAtRestart: number[] | undefined
    const loadOver = () =>
      performance.now() > hardStop || (ackedAtRestart !== undefined && pairs.every((p, i) => p.acked.length >= ackedAtRestart![i]! + AFTER_RESTART))

    /** Sends until 200, each retry on the next process, the same client_msg_id every time. */
    async function sendUntilAcked(pair: Pair, clientMsgId: string, text: string, first: number): Promise<{ msg_id: number }> {
      const deadline = performance.now() + 15_000
      let target = first
      for (let n = 0; n < 300 && performance.now() < deadline; n++) {
        const reply = await command(bases[target], 'send_msg', { to_uid: pair.receiver.uid, msg: text, client_msg_id: clientMsgId }, pair.sender.token)
        if (reply.ok && reply.status === 200) return reply.body
        if (reply.ok && reply.status < 500) throw new Error(`send_msg ${clientMsgId}: unexpected ${show(reply)}`)
        fail('send_msg', reply)
        target = (target + 1) % bases.length
        await sleep(10)
      }
      throw new Error(`send_msg ${clientMsgId} never acknowledged`)
    }

    async function runSender(pair: Pair) {
      for (let seq = 0; seq < 5000 && !loadOver(); seq++) {
        const clientMsgId = `p${pair.index}-${seq}`
        const text = `pair ${pair.index} #${seq}`
        const target = rr++ % bases.length
        let reply: { msg_id: number }
        if (seq % 10 === 9) {
          // The same client_msg_id on two processes at once: one message, one answer.
          racedSends++
          const [a, b] = await Promise.all([
            sendUntilAcked(pair, clientMsgId, text, target),
            sendUntilAcked(pair, clientMsgId, text, (target + 1) % bases.length),
          ])
          if (a.msg_id !== b.msg_id) raceMismatches.push(`${clientMsgId}: ${a.msg_id} vs ${b.msg_id}`)
          reply = a
        } else {
          reply = await sendUntilAcked(pair, clientMsgId, text, target)
        }
        pair.acked.push({ seq, clientMsgId, text, msgId: reply.msg_id })
      }
      pair.sendingDone = true
    }

    async function runReceiver(pair: Pair) {
      let cursor = pair.startCursor
      const deadline = hardStop + 15_000
      for (let n = 0; n < 20_000 && performance.now() < deadline; n++) {
        if (pair.sendingDone && pair.acked.every((a) => pair.deliveredIds.has(a.msgId))) break
        // Long polls held briefly: the last one, once the sender is done, ends soon after.
        const reply = await command(bases[rr++ % bases.length], 'update_data', { cursor, timeout: 0.2 }, pair.receiver.token)
        if (!reply.ok || reply.status >= 500) {
          fail('update_data', reply)
          await sleep(10)
          continue
        }
        if (reply.status !== 200) throw new Error(`update_data: unexpected ${show(reply)}`)
        if (reply.body.cursor < cursor) pair.cursorWentBack++
        for (const message of reply.body.msg_array) {
          pair.delivered.push(message)
          pair.deliveredIds.add(message.msg_id)
        }
        cursor = reply.body.cursor
      }
    }

    async function killAndRestart() {
      await eventually(() => pairs.every((p) => p.acked.length >= BEFORE_KILL), { what: `${BEFORE_KILL} messages acknowledged per pair`, timeoutMs: 15_000 }).catch(() => {})
      const victim = servers[VICTIM]
      process.kill(victim.pid, 'SIGKILL')
      const exit = await victim.exited
      const killedAt = performance.now() - loadStart
      const restarted = await spawnServer(t, schema, dataDir, ports[VICTIM], LOAD_ENV)
      const restartedAt = performance.now()
      ackedAtRestart = pairs.map((p) => p.acked.length)
      servers[VICTIM] = restarted
      return { exit, killedAt, restarted, restartedIn: restartedAt - loadStart - killedAt }
    }

    const [killed] = await Promise.all([killAndRestart(), ...pairs.map(runSender), ...pairs.map(runReceiver)])
    const loadMs = performance.now() - loadStart
    t.same(killed.exit, { code: null, signal: 'SIGKILL' }, `process ${VICTIM + 1} was killed by SIGKILL`)
    t.comment(
      `killed at ${killed.killedAt.toFixed(0)} ms, restarted on port ${ports[VICTIM]} ${killed.restartedIn.toFixed(0)} ms later; ` +
        `load ran ${loadMs.toFixed(0)} ms; acknowledged per pair: ${pairs.map((p) => p.acked.length).join(', ')}; ` +
        `raced sends: ${racedSends}; failed attempts: ${JSON.stringify(Object.fromEntries(failures))}`,
    )
    t.ok([...failures.keys()].some((k) => k.startsWith('send_msg')), 'some sends failed with the process gone and were retried elsewhere')
    // Its /metrics count the requests it served (sends and polls are logged at debug only).
    const served = await request(killed.restarted.base, 'GET', 'metrics')
    const routesServed = served.ok ? String(served.body) : ''
    t.ok(
      /http_request_duration_seconds_count\{method="POST",route="\/send_msg",status="200"\} [1-9]/.test(routesServed) &&
        /http_request_duration_seconds_count\{method="POST",route="\/update_data",status="200"\} [1-9]/.test(routesServed),
      'the restarted process took part in the load',
    )
    t.same(raceMismatches, [], 'racing sends of one client_msg_id got one msg_id')

    for (const pair of pairs) {
      const ackedIds = pair.acked.map((a) => a.msgId)
      const deliveredIds = pair.delivered.map((m) => m.msg_id as number)
      t.ok(pair.acked.length > 20, `pair ${pair.index}: a real load (${pair.acked.length} messages)`)
      t.same(duplicates(ackedIds), [], `pair ${pair.index}: every acknowledged send has its own msg_id`)
      t.same(duplicates(deliveredIds), [], `pair ${pair.index}: no message delivered twice`)
      t.same(
        ackedIds.filter((id) => !pair.deliveredIds.has(id)),
        [],
        `pair ${pair.index}: every acknowledged message delivered`,
      )
      t.same(deliveredIds, ackedIds, `pair ${pair.index}: delivered exactly the acknowledged messages, in the order sent`)
      t.same(
        pair.delivered.map((m) => m.text),
        pair.acked.map((a) => a.text),
        `pair ${pair.index}: texts in the sender's order`,
      )
      t.ok(pair.delivered.every((m) => m.sender_uid === pair.sender.uid), `pair ${pair.index}: all from the sender`)
      t.equal(pair.cursorWentBack, 0, `pair ${pair.index}: the cursor never went back`)
    }

    // What the database holds: one message per (sender, client_msg_id), the msg_id the
    // client was given, one log entry per message.
    const senderIds = pairs.map((p) => p.sender.uid)
    const dupRows = await knex('messages')
      .select('sender_id', 'client_msg_id')
      .count({ n: '*' })
      .whereIn('sender_id', senderIds)
      .groupBy('sender_id', 'client_msg_id')
      .havingRaw('count(*) > 1')
    t.same(dupRows, [], 'no (sender, client_msg_id) stored twice')
    for (const pair of pairs) {
      const stored = await knex('messages').select('id', 'client_msg_id').where({ sender_id: pair.sender.uid }).orderBy('id')
      t.same(
        stored.map((r: Json) => [r.client_msg_id, r.id]),
        pair.acked.map((a) => [a.clientMsgId, a.msgId]),
        `pair ${pair.index}: the stored messages are exactly the acknowledged ones, with their msg_ids`,
      )
      const entries = await knex('events').where({ user_id: pair.receiver.uid, type: 'message' }).count({ n: '*' }).first()
      t.equal(Number(entries?.n), pair.acked.length, `pair ${pair.index}: one log entry per message`)
    }

    // Every process, the restarted one included, replays each receiver's log the same way.
    for (const pair of pairs) {
      const expected = pair.acked.map((a) => `m${a.msgId}`)
      for (let k = 0; k < 3; k++) {
        const { keys } = await replay([bases[k]], pair.receiver.token, pair.startCursor)
        t.same(keys.filter((key) => key.startsWith('m')), expected, `pair ${pair.index}: replayed on process ${k + 1}, the same messages once each`)
      }
    }
  })
})

// ---------------------------------------------------------------------------------------

t.test('database restart mid-load', { timeout: 90_000 }, async (t) => {
  const root = await tempDir(t, 'messenger-faults-db-')
  await chmod(root, 0o755) // as root, PostgreSQL runs as the postgres user and must reach it
  const clusterDir = path.join(root, 'postgres')
  const dbPort = await freeLoopbackPort()
  const settings = { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' }
  let cluster: EmbeddedDatabase = await startEmbeddedDatabase({ clusterDir, port: dbPort, settings })
  let clusterUp = true
  t.teardown(async () => {
    if (clusterUp) await cluster.stop()
  })
  const dbUrl = cluster.url
  const schema = 'faults'
  {
    const knex = createKnex({ url: dbUrl, schema, poolMax: 1 })
    await migrate(knex, schema)
    await knex.destroy()
  }
  const dataDir = await tempDir(t, 'messenger-faults-data-')
  const server = await spawnServerOnFreePort(t, schema, dataDir, { ...LOAD_ENV, DATABASE_URL: dbUrl })
  const base = server.base

  /** LISTEN connections open on the cluster (the server's event hub), asked with a short-lived client. */
  async function listeners(): Promise<number> {
    const client = new pg.Client({ connectionString: dbUrl })
    client.on('error', () => {})
    try {
      await client.connect()
      const { rows } = await client.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN %' AND pid <> pg_backend_pid()`,
      )
      return rows[0].n
    } catch {
      return -1
    } finally {
      await client.end().catch(() => {})
    }
  }

  const alice = await signUp(server)
  const bob = await signUp(server) // the cursor receiver
  const carol = await signUp(server) // holds a poll across the outage, then the wake-up check
  const dave = await signUp(server) // gets the sends probed while the database is down
  const idlers = [await signUp(server), await signUp(server), await signUp(server)] // more polls held across the stop
  await befriend(server, alice, bob)
  await befriend(server, alice, carol)
  await befriend(server, alice, dave)
  const bobStart = await currentCursor(server, bob)
  const daveStart = await currentCursor(server, dave)

  // The load: alice sends to bob, one message at a time, each retried with its
  // client_msg_id until 200; bob polls with his cursor. Both can be paused.
  interface Attempt {
    startedAt: number
    outcome: Outcome
  }
  const gate = { paused: false, stop: false, inflight: 0, senderDone: false }
  const sendAttempts: Attempt[] = []
  const pollAttempts: Attempt[] = []
  const acked: { clientMsgId: string; msgId: number; at: number }[] = []
  const delivered: Json[] = []
  const deliveredIds = new Set<number>()
  const hardDeadline = performance.now() + 60_000

  async function gated(base: string, name: string, body: Json, token: string, log: Attempt[]): Promise<Outcome> {
    if (gate.paused) await eventually(() => !gate.paused || performance.now() >= hardDeadline, { what: 'the load to resume', timeoutMs: 60_000, everyMs: 20 })
    gate.inflight++
    const startedAt = performance.now()
    try {
      const outcome = await command(base, name, body, token, 6000)
      log.push({ startedAt, outcome })
      return outcome
    } finally {
      gate.inflight--
    }
  }

  async function sendLoop() {
    try {
      for (let seq = 0; seq < 3000 && !gate.stop; seq++) {
        const clientMsgId = `db-${seq}`
        for (let n = 0; ; n++) {
          const reply = await gated(base, 'send_msg', { to_uid: bob.uid, msg: `db #${seq}`, client_msg_id: clientMsgId }, alice.token, sendAttempts)
          if (reply.ok && reply.status === 200) {
            acked.push({ clientMsgId, msgId: reply.body.msg_id, at: reply.at })
            break
          }
          if (reply.ok && reply.status < 500) throw new Error(`send_msg ${clientMsgId}: unexpected ${show(reply)}`)
          if (n > 400 || performance.now() > hardDeadline) throw new Error(`send_msg ${clientMsgId} never acknowledged: ${show(reply)}`)
          await sleep(100)
        }
        await sleep(10)
      }
    } finally {
      gate.senderDone = true
    }
  }

  async function receiveLoop() {
    let cursor = bobStart
    for (let n = 0; n < 20_000 && performance.now() < hardDeadline; n++) {
      if (gate.senderDone && acked.every((a) => deliveredIds.has(a.msgId))) return
      // Long polls held briefly: the last one, once the sender is done, ends soon after.
      const reply = await gated(base, 'update_data', { cursor, timeout: 0.2 }, bob.token, pollAttempts)
      if (!reply.ok || reply.status !== 200) {
        if (reply.ok && reply.status < 500) throw new Error(`update_data: unexpected ${show(reply)}`)
        await sleep(100)
        continue
      }
      for (const message of reply.body.msg_array) {
        delivered.push(message)
        deliveredIds.add(message.msg_id)
      }
      cursor = reply.body.cursor
    }
  }

  const loops = Promise.all([sendLoop(), receiveLoop()])
  loops.catch(() => {}) // awaited below; never an unhandled rejection meanwhile
  await eventually(() => acked.length >= 10, { what: 'sends to flow', timeoutMs: 10_000 }).catch(() => {})
  t.ok(acked.length > 0, `sends flow before the outage (${acked.length})`)
  t.equal(await listeners(), 1, "the server's LISTEN connection is open")

  // Polls held when the database goes: each must be answered (a re-read that fails is 503).
  const carolCursor = await currentCursor(server, carol)
  const heldAcross = await Promise.all(
    [carol, ...idlers].map(async (session) => {
      const cursor = session === carol ? carolCursor : await currentCursor(server, session)
      return { who: session.login, pending: command(base, 'update_data', { cursor, timeout: 30 }, session.token, 8000) }
    }),
  )
  // Held: the four, and bob's poll of the load when it waits.
  await eventually(async () => (await heldPolls(server)) >= heldAcross.length, { what: 'the polls to be held', everyMs: 25 }).catch(() => {})

  // --- Outage -------------------------------------------------------------------------
  const stopStarted = performance.now()
  await cluster.stop()
  clusterUp = false
  const stoppedAt = performance.now()
  t.comment(`cluster stopped in ${(stoppedAt - stopStarted).toFixed(0)} ms`)

  for (const { who, pending } of heldAcross) {
    const answer = await pending
    t.ok(answer.ok, `${who}: the poll held across the stop was answered (${show(answer)})`)
    if (!answer.ok) continue
    t.ok(answer.at - stopStarted < 5000, `${who}: within 5 s of the stop (${(answer.at - stopStarted).toFixed(0)} ms), not at its 30 s timeout`)
    t.ok(isUnavailable(answer) || answer.status === 200, `${who}: with 503 + Retry-After or an empty 200 (${show(answer)})`)
  }

  for (let round = 0; round < 2; round++) {
    const probes: [string, Promise<Outcome>, number][] = [
      ['send_msg', command(base, 'send_msg', { to_uid: dave.uid, msg: `down ${round}`, client_msg_id: `down-${round}` }, alice.token, 6000), 503],
      ['get_data', command(base, 'get_data', {}, alice.token, 6000), 503],
      ['update_data', command(base, 'update_data', { cursor: carolCursor, timeout: 3 }, carol.token, 6000), 503],
      ['registration', command(base, 'registration', { login: uniqueLogin(), password: PASSWORD }, undefined, 6000), 503],
      ['authorization', command(base, 'authorization', { login: alice.login, password: PASSWORD }, undefined, 6000), 503],
      ['GET /readyz', request(base, 'GET', 'readyz', undefined, undefined, 6000), 503],
      ['GET /healthz', request(base, 'GET', 'healthz', undefined, undefined, 6000), 200],
      ['GET /metrics', request(base, 'GET', 'metrics', undefined, undefined, 6000), 200],
    ]
    for (const [name, pending, expected] of probes) {
      const outcome = await pending
      t.ok(outcome.ms < 5000, `down, round ${round}: ${name} answered within 5 s (${outcome.ms.toFixed(0)} ms)`)
      if (expected === 503) t.ok(isUnavailable(outcome), `down, round ${round}: ${name} is 503 with Retry-After (${show(outcome)}, Retry-After ${outcome.ok ? outcome.retryAfter : '-'})`)
      else t.equal(outcome.ok && outcome.status, expected, `down, round ${round}: ${name} is ${expected}`)
      if (name === 'send_msg' && outcome.ok && outcome.status === 503) t.equal(outcome.body.error, 'unavailable', 'with the error code unavailable')
    }
    t.ok(server.child.exitCode === null && server.child.signalCode === null && isAlive(server.pid), `down, round ${round}: the server process is alive`)
    // Meanwhile the load keeps trying: two attempts more of the sender's per round.
    await eventually(() => sendAttempts.filter((a) => a.startedAt >= stoppedAt).length >= 2 * (round + 1) + 1, {
      what: 'the sender to keep trying',
      timeoutMs: 5000,
    }).catch(() => {})
  }

  // Pause the load: the LISTEN connection must come back with no request to trigger it.
  gate.paused = true
  await eventually(() => gate.inflight === 0, { what: 'the load to pause', timeoutMs: 7000, everyMs: 20 }).catch(() => {})
  t.equal(gate.inflight, 0, 'the load is paused')
  const downSends = sendAttempts.filter((a) => a.startedAt >= stoppedAt)
  const transitionSends = sendAttempts.filter((a) => a.startedAt < stoppedAt && a.outcome.at > stopStarted)
  const downPolls = pollAttempts.filter((a) => a.startedAt >= stoppedAt)
  t.ok(downSends.length > 3, `the sender kept trying while the database was down (${downSends.length} attempts)`)
  t.same(
    downSends.filter((a) => !isUnavailable(a.outcome) || a.outcome.ms >= 5000).map((a) => show(a.outcome)),
    [],
    'every send while down: 503 + Retry-After within 5 s',
  )
  t.same(
    downPolls.filter((a) => !isUnavailable(a.outcome) || a.outcome.ms >= 5000).map((a) => show(a.outcome)),
    [],
    'every poll while down: 503 + Retry-After within 5 s',
  )
  t.same(
    transitionSends.filter((a) => !(isUnavailable(a.outcome) || (a.outcome.ok && a.outcome.status === 200))).map((a) => show(a.outcome)),
    [],
    'sends in flight while the database stopped: 200 or 503, never 500 or a hang',
  )
  t.ok(server.child.exitCode === null && isAlive(server.pid), 'the server process survived the outage')
  // What the 5xx replies were made of, from the server's log (for a failure's diagnosis).
  const failedKinds = countBy(
    server.lines
      .filter((l) => l.includes('"request failed"'))
      .map((l) => {
        const err = JSON.parse(l).err ?? {}
        return `${err.type} code=${err.code} "${String(err.message).split(' - ').pop()!.slice(0, 80)}"`
      }),
  )
  t.comment(`server errors logged during the outage: ${JSON.stringify(failedKinds)}`)

  // --- Recovery -----------------------------------------------------------------------
  const restartStarted = performance.now()
  cluster = await startEmbeddedDatabase({ clusterDir, port: dbPort, settings })
  clusterUp = true
  const upAt = performance.now()
  t.equal(cluster.url, dbUrl, 'the cluster is back at the same URL')
  t.comment(`outage lasted ${(upAt - stopStarted).toFixed(0)} ms (restart took ${(upAt - restartStarted).toFixed(0)} ms)`)

  let listenBackAt: number | undefined
  await eventually(async () => (await listeners()) === 1 && (listenBackAt = performance.now()), {
    what: 'the LISTEN connection to come back',
    timeoutMs: 8000,
    everyMs: 50,
  }).catch(() => {})
  t.ok(listenBackAt !== undefined, `the LISTEN connection came back by itself, no request sent (${listenBackAt === undefined ? 'not within 8 s' : `${(listenBackAt - upAt).toFixed(0)} ms after the restart`})`)
  t.ok(
    server.lines.some((l) => l.includes('LISTEN connection lost')),
    'the server logged the lost LISTEN connection',
  )

  gate.paused = false
  const resumedAt = performance.now()
  await eventually(() => acked.some((a) => a.at > resumedAt) || gate.senderDone, { what: 'a send to succeed again', timeoutMs: 8000 }).catch(() => {})
  const firstAfter = acked.find((a) => a.at > resumedAt)
  t.ok(firstAfter && firstAfter.at - resumedAt < 5000, `sends succeed again (${firstAfter ? `${(firstAfter.at - resumedAt).toFixed(0)} ms after the load resumed` : 'not within 8 s'})`)
  let ready: Outcome | undefined
  await eventually(async () => (ready = await request(base, 'GET', 'readyz')).ok && ready.status === 200, {
    what: '/readyz to be 200',
    timeoutMs: 5000,
    everyMs: 50,
  }).catch(() => {})
  t.equal(ready?.ok && ready.status, 200, '/readyz is 200 again')

  // The sends probed while down (503) go through now, once.
  const downAcks: number[] = []
  for (let round = 0; round < 2; round++) {
    const retry = await command(base, 'send_msg', { to_uid: dave.uid, msg: `down ${round}`, client_msg_id: `down-${round}` }, alice.token)
    t.equal(retry.ok && retry.status, 200, `the send refused while down (down-${round}) succeeds on retry`)
    if (retry.ok) downAcks.push(retry.body.msg_id)
  }

  // The load runs on a while after the recovery: ten more messages acknowledged.
  const recovered = acked.length
  await eventually(() => acked.length >= recovered + 10 || gate.senderDone, { what: 'ten more sends after the recovery', timeoutMs: 10_000 }).catch(() => {})
  gate.stop = true
  await loops

  // A new held poll is woken promptly by a new send: wake-ups work again.
  const cursor = await currentCursor(server, carol)
  const held = command(base, 'update_data', { cursor, timeout: 10 }, carol.token, 12_000)
  await eventually(async () => (await heldPolls(server)) === 1, { what: "carol's poll to be held", everyMs: 25 }).catch(() => {})
  const sent = await command(base, 'send_msg', { to_uid: carol.uid, msg: 'after the outage' }, alice.token)
  t.equal(sent.ok && sent.status, 200, 'a send after the outage')
  const woke = await held
  if (woke.ok && sent.ok) {
    t.same(woke.body.msg_array.map((m: Json) => m.msg_id), [sent.body.msg_id], 'the held poll carries the new message')
    t.ok(woke.at - sent.at < PROMPT_MS, `woken ${(woke.at - sent.at).toFixed(0)} ms after the send's reply`)
  } else t.fail(`the wake-up check failed: ${show(woke)} / ${show(sent)}`)

  // Delivery: exactly the acknowledged messages, once each, in order.
  const ackedIds = acked.map((a) => a.msgId)
  const deliveredList = delivered.map((m) => m.msg_id as number)
  t.comment(
    `acknowledged ${acked.length} (${acked.filter((a) => a.at < stopStarted).length} before the outage); send attempts ${sendAttempts.length}; ` +
      `outcomes: ${JSON.stringify(countBy(sendAttempts.map((a) => (a.outcome.ok ? String(a.outcome.status) : a.outcome.error))))}`,
  )
  t.ok(acked.some((a) => a.at < stopStarted) && acked.some((a) => a.at > upAt), 'messages acknowledged before and after the outage')
  t.same(duplicates(deliveredList), [], 'no message delivered twice')
  t.same(ackedIds.filter((id) => !deliveredIds.has(id)), [], 'every acknowledged message delivered')
  t.same(deliveredList, ackedIds, 'delivered in the order acknowledged')
  const daveLog = await replay([base], dave.token, daveStart)
  t.same(daveLog.keys, downAcks.map((id) => `m${id}`), 'the retried sends refused while down arrived once each')

  // The log through the outage: JSON lines only, the outage told once each way, the
  // expected 503s not logged as errors.
  const notJson = [...server.lines, ...server.errorLines].filter((line) => {
    try {
      return typeof JSON.parse(line) !== 'object'
    } catch {
      return true
    }
  })
  t.same(notJson.slice(0, 5), [], `every line the server wrote is JSON (${server.lines.length} lines, ${notJson.length} not)`)
  const logged = server.lines.flatMap((line) => {
    try {
      return [JSON.parse(line) as Json]
    } catch {
      return []
    }
  })
  const gone = logged.filter((entry) => entry.msg === 'database unavailable')
  const back = logged.filter((entry) => entry.msg === 'database available again')
  t.equal(gone.length, 1, 'one line says the database went away')
  t.equal(gone[0]?.level, 40, '... as a warning')
  t.equal(back.length, 1, 'one line says it is back')
  t.equal(back[0]?.level, 40, '... as a warning')
  // At least from the first 503 seen here (the outage was noted before it was answered) to
  // the restart's start (the database answered no sooner).
  const firstUnavailableAt = Math.min(...[...sendAttempts, ...pollAttempts].filter((a) => isUnavailable(a.outcome)).map((a) => a.outcome.at))
  const seenOutage = Math.floor(restartStarted - firstUnavailableAt)
  t.ok(back[0]?.outageMs >= seenOutage, `... with the outage's length (${back[0]?.outageMs} ms; at least ${seenOutage} ms seen from here)`)
  t.same(
    logged.filter((entry) => entry.level >= 50).map((entry) => entry.msg),
    [],
    'no error lines: a 503 during the outage is expected',
  )

  const knex = createKnex({ url: dbUrl, schema, poolMax: 1 })
  try {
    const stored = await knex('messages').select('id', 'client_msg_id').where({ sender_id: alice.uid, recipient_id: bob.uid }).orderBy('id')
    t.same(
      stored.map((r: Json) => [r.client_msg_id, r.id]),
      acked.map((a) => [a.clientMsgId, a.msgId]),
      'the database holds each acknowledged message once, nothing else',
    )
    const entries = await knex('events').where({ user_id: bob.uid, type: 'message' }).count({ n: '*' }).first()
    t.equal(Number(entries?.n), acked.length, "one entry per message in bob's log")
  } finally {
    await knex.destroy()
  }
})

function countBy(items: string[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const item of items) counts[item] = (counts[item] ?? 0) + 1
  return counts
}

// ---------------------------------------------------------------------------------------

t.test('graceful shutdown: held polls answered, in-flight request finished, exit 0 within the grace', { timeout: 40_000 }, async (t) => {
  const GRACE_MS = 4000
  const { url, schema } = await createTestSchema(t)
  const dataDir = await tempDir(t, 'messenger-faults-shutdown-')
  const server = await spawnServerOnFreePort(t, schema, dataDir, { ...LOAD_ENV, SHUTDOWN_GRACE_MS: String(GRACE_MS) })
  const port = Number(new URL(server.base).port)

  const alice = await signUp(server) // sends the in-flight message
  const dave = await signUp(server)
  await befriend(server, alice, dave)
  // Pollers: no friends of alice's, so their presence never waits on alice's locked row.
  const bob = await signUp(server)
  const bob2 = await logIn(server, bob.login)
  const carol = await signUp(server)
  const erin = await signUp(server)
  const withCursor = await Promise.all([bob, carol, erin].map(async (s) => ({ session: s, cursor: await currentCursor(server, s) })))
  const polls = [
    ...withCursor.map(({ session, cursor }) => ({ who: session.login, cursor, pending: command(server.base, 'update_data', { cursor, timeout: 30 }, session.token, 15_000) })),
    { who: `${bob.login} (2nd session, no cursor)`, cursor: undefined, pending: command(server.base, 'update_data', { timeout: 30 }, bob2.token, 15_000) },
  ]
  t.ok(await holdsPolls(server, polls.length), `${polls.length} polls are held`)

  // The in-flight request: alice's send waits on her users row, which the test locks.
  const knex = createKnex({ url, schema, poolMax: 2 })
  t.teardown(() => knex.destroy())
  const trx = await knex.transaction()
  let released = false
  t.teardown(async () => {
    if (!released) await trx.rollback().catch(() => {})
  })
  await trx('users').where({ id: alice.uid }).forUpdate()
  const inflightState = { answered: false }
  const inflight = command(server.base, 'send_msg', { to_uid: dave.uid, msg: 'in flight', client_msg_id: 'inflight-1' }, alice.token, 15_000).finally(
    () => (inflightState.answered = true),
  )
  const waitsOnTheRow = async () => {
    const { rows } = await knex.raw(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%pg_advisory_xact_lock_shared%'`,
    )
    return rows[0].n > 0
  }
  const blocked = await eventually(waitsOnTheRow, { what: 'the send to wait on the row lock', timeoutMs: 3000, everyMs: 50 }).catch(() => false)
  t.ok(blocked, 'the send is in flight, waiting on the row lock')

  const signalledAt = performance.now()
  process.kill(server.pid, 'SIGTERM')
  for (const poll of polls) {
    const answer = await poll.pending
    t.ok(answer.ok && answer.at - signalledAt < PROMPT_MS, `${poll.who}: answered ${answer.ok ? (answer.at - signalledAt).toFixed(0) : '-'} ms after SIGTERM`)
    if (!answer.ok) {
      t.fail(`${poll.who}: ${show(answer)}`)
      continue
    }
    t.equal(answer.status, 200, `${poll.who}: 200`)
    t.same([answer.body.msg_array, answer.body.events_array], [[], []], `${poll.who}: empty arrays`)
    if (poll.cursor !== undefined) t.equal(answer.body.cursor, poll.cursor, `${poll.who}: the cursor unchanged`)
  }
  t.notOk(inflightState.answered, 'the in-flight send is still running')
  t.equal(server.child.exitCode, null, 'the process waits for it')

  const connectError = await new Promise<string>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    socket.setTimeout(2000, () => {
      socket.destroy()
      resolve('timeout')
    })
    socket.once('connect', () => {
      socket.destroy()
      resolve('connected')
    })
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
  })
  t.equal(connectError, 'ECONNREFUSED', 'new connections are refused once shutting down')

  await sleep(500)
  await trx.commit()
  released = true
  const done = await inflight
  t.equal(done.ok && done.status, 200, `the in-flight send completed (${show(done)})`)
  t.ok(done.ok && Number.isInteger(done.body.msg_id), 'with its msg_id')

  // The in-flight request's connection is a keep-alive one (as every browser's and the
  // desktop client's is): once answered, nothing may keep the process waiting for it.
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined
  void server.exited.then((value) => (exited = value))
  const exit = await eventually(() => exited, { what: 'the process to exit', timeoutMs: GRACE_MS + 2000, everyMs: 10 }).catch(() => 'timeout' as const)
  const exitedAfter = performance.now() - signalledAt
  t.not(exit, 'timeout', `the process exited within SHUTDOWN_GRACE_MS + 2 s (${exitedAfter.toFixed(0)} ms)`)
  if (exit !== 'timeout') t.same(exit, { code: 0, signal: null }, 'with code 0')
  t.ok(exitedAfter < GRACE_MS, `before the grace ran out (${exitedAfter.toFixed(0)} ms < ${GRACE_MS} ms)`)

  const stored = await knex('messages').where({ sender_id: alice.uid, client_msg_id: 'inflight-1' }).count({ n: '*' }).first()
  t.equal(Number(stored?.n), 1, 'the in-flight message is stored once')
  const entries = await knex('events').where({ user_id: dave.uid, type: 'message' }).count({ n: '*' }).first()
  t.equal(Number(entries?.n), 1, "and is in dave's log")
})

// ---------------------------------------------------------------------------------------

t.test('send rate limit across processes', { timeout: 40_000 }, async (t) => {
  const limitEnv = { SEND_RATE_PER_MINUTE: '5', RATE_LIMIT_PER_MINUTE: '1000000', REGISTRATIONS_PER_IP_PER_HOUR: '1000000' }

  async function pairOn(one: ServerProcess): Promise<[Session, Session]> {
    const alice = await signUp(one)
    const bob = await signUp(one)
    await befriend(one, alice, bob)
    return [alice, bob]
  }

  function expectLimited(t: Test, outcome: Outcome, what: string) {
    t.equal(outcome.ok && outcome.status, 429, `${what}: 429 (${show(outcome)})`)
    if (!outcome.ok) return
    t.equal(outcome.body.error, 'rate_limited', `${what}: rate_limited`)
    const retryAfter = Number(outcome.retryAfter)
    t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `${what}: Retry-After ${outcome.retryAfter} s`)
  }

  t.test('shared through Redis (REDIS_URL)', { skip: process.env.REDIS_URL ? false : 'REDIS_URL is unset: set it to test counters shared across processes' }, async (t) => {
    const [one, two] = await startServers(t, { ...limitEnv, REDIS_URL: process.env.REDIS_URL! })
    const [alice, bob] = await pairOn(one)
    const servers = [one, two]
    for (let i = 0; i < 5; i++) {
      const sent = await command(servers[i % 2].base, 'send_msg', { to_uid: bob.uid, msg: `r${i}` }, alice.token)
      t.equal(sent.ok && sent.status, 200, `send ${i + 1} through process ${(i % 2) + 1}`)
    }
    expectLimited(t, await command(two.base, 'send_msg', { to_uid: bob.uid, msg: 'r5' }, alice.token), 'the 6th send, through process 2')
    expectLimited(t, await command(one.base, 'send_msg', { to_uid: bob.uid, msg: 'r6' }, alice.token), 'the 7th send, through process 1')
    const other = await command(two.base, 'send_msg', { to_uid: alice.uid, msg: 'mine' }, bob.token)
    t.equal(other.ok && other.status, 200, "another user's sends are counted apart")
  })

  t.test('in memory, per process, without REDIS_URL', async (t) => {
    const [one, two] = await startServers(t, { ...limitEnv, REDIS_URL: '' })
    const [alice, bob] = await pairOn(one)
    const servers = [one, two]
    for (let i = 0; i < 10; i++) {
      const sent = await command(servers[i % 2].base, 'send_msg', { to_uid: bob.uid, msg: `m${i}` }, alice.token)
      t.equal(sent.ok && sent.status, 200, `send ${i + 1} through process ${(i % 2) + 1} (each process counts its own 5)`)
    }
    expectLimited(t, await command(one.base, 'send_msg', { to_uid: bob.uid, msg: 'm10' }, alice.token), 'the 6th send through process 1')
    expectLimited(t, await command(two.base, 'send_msg', { to_uid: bob.uid, msg: 'm11' }, alice.token), 'the 6th send through process 2')
  })
})
