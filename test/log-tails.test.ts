// Log tails (src/log-tails.ts): a long-poll (cursor, timeout > 0) whose cursor is where this
// process last saw the user's log end skips its first log read and only waits for a
// wake-up; the sacred property (never miss, never repeat) holds all the same. Specified:
//   1. LogTails on a real EventHub (real LISTEN/NOTIFY): an end is recorded by a read that
//      started while the hub listened and saw no wake-up for the user before it ended; it
//      holds at and past that position only; the next wake-up naming the user, a broadcast
//      wake-up or a lost LISTEN connection forgets it; the latest read that started
//      supersedes older ones; a hub that does not listen records nothing; unused ends go;
//   2. through HTTP: the poll sent right after a reply skips its read (the /metrics
//      counters) and is woken at once by the next send, with it exactly once; timeout 0 and
//      cursors behind the end always read; a broadcast, contact/presence/edit events wake
//      a skipped poll too; a lost LISTEN connection forgets every end, so a commit whose
//      NOTIFY nobody heard is still delivered to the next poll (and to a held one);
//   3. two server processes on one schema: the poll that skipped its read on one process is
//      woken by a send through the other; every message exactly once, in order.
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import type { Knex } from 'knex'
import { LogTails } from '../src/event-log/read.js'
import { APPEND_BROADCAST_SQL, APPEND_SQL, LOCK_BROADCASTS_SQL, preparedQuery } from '../src/event-log/sql.js'
import { WakeUpListener, channelOf, type WakeUp } from '../src/event-log/wake-ups.js'
import { insertMessage } from '../src/data/messages.js'
import type { App } from '../src/app.js'
import type { Config } from '../src/config.js'
import { PROMPT_MS, backendsWaitingOn, befriend, build, call, collect, drain, eventually, metricValue, metrics, poll, signUp, sleep, testDatabaseUrl, uniqueLogin, type TestSession } from './helper.js'
import { befriend as befriendOver, currentCursor, holdPoll, post, signUp as signUpOn, startServers, type ServerProcess } from './processes.js'

type Json = Record<string, any>

// ---------------------------------------------------------------------------------------
// 1. LogTails on a real EventHub
// ---------------------------------------------------------------------------------------

const quietLog = { warn() {}, info() {} }

/** Whom a wake-up wakes: users by id, or 'all' (a broadcast, a lost or restored connection). */
function whoOf(wakeUp: WakeUp): Array<number | 'all'> {
  if (wakeUp.kind === 'users') return wakeUp.userIds
  if (wakeUp.kind === 'entries') return wakeUp.appended.map((appended) => appended.userId)
  return wakeUp.kind === 'revoked' ? [] : ['all']
}

/** Appends a message entry to `userId`'s log, its wake-up sent on `channel`. */
async function appendMessage(trx: Knex.Transaction, channel: string, userId: number, senderId: number, messageId: number): Promise<void> {
  await preparedQuery(trx, 'append', APPEND_SQL, [channel, [userId], ['message'], [senderId], [messageId], [null]])
}

/** A listening hub on a channel of its own, its LogTails, and a second connection to NOTIFY through. */
async function listeningHub(t: Test, options: { reconnectDelayMs?: number } = {}) {
  const url = testDatabaseUrl()
  const channel = `lt_${randomBytes(5).toString('hex')}`
  const hub = new WakeUpListener({ connectionString: url, channel, log: quietLog, ...options })
  t.teardown(() => hub.close())
  const tails = new LogTails(() => hub.listening)
  hub.subscribe((wakeUp) => tails.handle(wakeUp))
  /** Every wake-up the listener handed on, in order. */
  const heard: Array<number | 'all'> = []
  hub.subscribe((wakeUp) => heard.push(...whoOf(wakeUp)))
  await hub.listen()
  const client = new pg.Client({ connectionString: url })
  client.on('error', () => {})
  await client.connect()
  t.teardown(() => client.end())
  return {
    hub,
    tails,
    heard,
    client,
    /** pg_notify through the other connection; resolves once the hub has dispatched it. */
    async notify(payload: string): Promise<void> {
      const from = heard.length
      const expected: Array<number | 'all'> = payload.startsWith('a:') ? ['all'] : payload.slice(2).split(',').map(Number)
      await client.query('SELECT pg_notify($1, $2)', [channel, payload])
      await eventually(() => expected.every((who) => heard.slice(from).includes(who)), { what: `the hub to hear ${payload}`, timeoutMs: 2000 })
    },
    /** The backend of the hub's LISTEN connection. */
    async listenPid(): Promise<number> {
      const { rows } = await client.query('SELECT pid FROM pg_stat_activity WHERE query = $1', [`LISTEN ${pg.escapeIdentifier(channel)}`])
      if (rows.length !== 1) throw new Error(`expected one LISTEN backend, found ${rows.length}`)
      return rows[0].pid
    },
  }
}

/** A whole read: readStarting then readEnded at `end`. */
function read(tails: LogTails, userId: number, end: number): void {
  tails.readEnded(userId, tails.readStarting(userId), end)
}

t.test('LogTails: an ended read records the end; nothingAfter holds at and past it, not before it, not for others', async (t) => {
  const { tails } = await listeningHub(t)
  const U = 101
  t.notOk(tails.nothingAfter(U, 1000), 'nothing known before any read')
  const token = tails.readStarting(U)
  t.ok(token > 0, 'a listening hub: the read gets a token')
  t.notOk(tails.nothingAfter(U, 1000), 'a read in flight records nothing yet')
  tails.readEnded(U, token, 1000)
  t.ok(tails.nothingAfter(U, 1000), 'at the end: nothing after')
  t.ok(tails.nothingAfter(U, 1001), 'past the end: nothing after')
  t.ok(tails.nothingAfter(U, 1e15), 'far past the end: nothing after')
  t.notOk(tails.nothingAfter(U, 999), 'before the end: there may be entries')
  t.notOk(tails.nothingAfter(U, 0), 'from the start: there may be entries')
  t.notOk(tails.nothingAfter(102, 1000), 'another user: nothing known')

  read(tails, U, 2000)
  t.notOk(tails.nothingAfter(U, 1500), 'a later read that ended further moves the end')
  t.ok(tails.nothingAfter(U, 2000))
})

t.test('LogTails: a wake-up for the user between readStarting and readEnded prevents the record', async (t) => {
  const { hub, tails, notify } = await listeningHub(t)
  const U = 201

  let token = tails.readStarting(U)
  await notify(`u:${U}`)
  tails.readEnded(U, token, 500)
  t.notOk(tails.nothingAfter(U, 500), 'a NOTIFY naming the user during the read: not recorded')

  token = tails.readStarting(U)
  await notify(`u:7,${U},9`)
  tails.readEnded(U, token, 500)
  t.notOk(tails.nothingAfter(U, 500), 'a NOTIFY naming the user among others: not recorded')

  token = tails.readStarting(U)
  hub.dispatch({ kind: 'users', userIds: [U], ends: [Number.POSITIVE_INFINITY] })
  tails.readEnded(U, token, 500)
  t.notOk(tails.nothingAfter(U, 500), 'a local wakeUser during the read: not recorded')

  token = tails.readStarting(U)
  await notify('u:202,203')
  tails.readEnded(U, token, 500)
  t.ok(tails.nothingAfter(U, 500), 'a wake-up for other users only during the read: recorded')
})

t.test('LogTails: a wake-up after the record forgets it; one for another user does not', async (t) => {
  const { hub, tails, notify } = await listeningHub(t)
  const U = 301
  const V = 302
  read(tails, U, 500)
  read(tails, V, 700)
  await notify('u:399')
  t.ok(tails.nothingAfter(U, 500), "another user's wake-up: U's end kept")
  t.ok(tails.nothingAfter(V, 700), "another user's wake-up: V's end kept")

  await notify(`u:${U}`)
  t.notOk(tails.nothingAfter(U, 500), "U's wake-up forgets U's end")
  t.notOk(tails.nothingAfter(U, 1e15), 'at every position')
  t.ok(tails.nothingAfter(V, 700), "and keeps V's")

  hub.dispatch({ kind: 'users', userIds: [V], ends: [Number.POSITIVE_INFINITY] })
  t.notOk(tails.nothingAfter(V, 700), 'a local wakeUser forgets too')

  read(tails, U, 900)
  t.ok(tails.nothingAfter(U, 900), 'a read after the wake-up records again')
  await notify(`u:398,${U}`)
  t.notOk(tails.nothingAfter(U, 900), 'a NOTIFY naming several users forgets each of them')
})

t.test("LogTails: a broadcast wake-up ('a:') forgets every user's end and stops reads in flight from recording", async (t) => {
  const { tails, notify } = await listeningHub(t)
  const users = [401, 402, 403]
  for (const u of users) read(tails, u, 1000 + u)
  for (const u of users) t.ok(tails.nothingAfter(u, 1000 + u), `precondition: user ${u} recorded`)
  const inFlight = tails.readStarting(404)
  await notify('a:')
  for (const u of users) t.notOk(tails.nothingAfter(u, 1000 + u), `user ${u}: forgotten by the broadcast`)
  tails.readEnded(404, inFlight, 50)
  t.notOk(tails.nothingAfter(404, 50), 'a read that started before the broadcast records nothing')
  read(tails, 401, 3000)
  t.ok(tails.nothingAfter(401, 3000), 'a read after it records again')
})

t.test('LogTails: the latest read that started supersedes older ones; only it records', async (t) => {
  const { tails } = await listeningHub(t)
  const U = 501

  const older = tails.readStarting(U)
  const newer = tails.readStarting(U)
  t.not(newer, older, 'each read its own token')
  tails.readEnded(U, older, 800)
  t.notOk(tails.nothingAfter(U, 800), 'the older read ending first records nothing')
  tails.readEnded(U, newer, 600)
  t.ok(tails.nothingAfter(U, 600), 'the newer read records its end')

  // The other order: the older read (an older snapshot, a smaller end) ends last.
  const old2 = tails.readStarting(U)
  const new2 = tails.readStarting(U)
  tails.readEnded(U, new2, 900)
  t.ok(tails.nothingAfter(U, 900), 'the newer read recorded 900')
  tails.readEnded(U, old2, 850)
  t.notOk(tails.nothingAfter(U, 850), 'the older read ending later does not move the end back to 850')
  t.ok(tails.nothingAfter(U, 900), 'the end stays at 900')
  tails.readEnded(U, new2, 950)
  t.ok(tails.nothingAfter(U, 950), 'the newest read may record again (a token stays valid until a newer read or a wake-up)')
  t.notOk(tails.nothingAfter(U, 920))
})

t.test('LogTails: while the hub is not listening (never connected, or closed) nothing is recorded', async (t) => {
  const never = new WakeUpListener({ connectionString: testDatabaseUrl(), channel: `lt_${randomBytes(5).toString('hex')}`, log: quietLog })
  t.teardown(() => never.close())
  const idle = new LogTails(() => never.listening)
  t.notOk(never.listening, 'a hub never connected does not listen')
  const token = idle.readStarting(601)
  t.equal(token, 0, 'no token while not listening')
  idle.readEnded(601, token, 100)
  t.notOk(idle.nothingAfter(601, 100), 'never connected: not recorded')
  idle.readEnded(601, 1, 100)
  t.notOk(idle.nothingAfter(601, 100), 'nor with a made-up token')

  const { hub, tails } = await listeningHub(t)
  read(tails, 602, 100)
  t.ok(tails.nothingAfter(602, 100), 'control: the listening hub records')
  await hub.close()
  t.notOk(hub.listening, 'closed: not listening')
  const after = tails.readStarting(603)
  t.equal(after, 0, 'no token after close')
  tails.readEnded(603, after, 100)
  t.notOk(tails.nothingAfter(603, 100), 'after close: not recorded')
  tails.readEnded(602, tails.readStarting(602), 50)
  t.notOk(tails.nothingAfter(602, 50), 'after close: an existing end is not moved either')
})

t.test('LogTails: a lost LISTEN connection forgets every end; reads across it or during it record nothing', async (t) => {
  const { hub, tails, heard, client, listenPid, notify } = await listeningHub(t, { reconnectDelayMs: 300 })
  const U = 701
  const V = 702
  const W = 703
  read(tails, U, 100)
  t.ok(tails.nothingAfter(U, 100), 'precondition: recorded')
  const acrossLoss = tails.readStarting(V)
  t.ok(acrossLoss > 0)

  const heardBefore = heard.length
  await client.query('SELECT pg_terminate_backend($1)', [await listenPid()])
  await eventually(() => !hub.listening, { what: 'the hub to notice the lost connection', timeoutMs: 5000 })
  t.notOk(tails.nothingAfter(U, 100), 'the loss forgot the end (NOTIFYs from now on are lost)')
  const whileDown = tails.readStarting(W)
  t.equal(whileDown, 0, 'no token while reconnecting')
  tails.readEnded(W, whileDown, 10)
  t.notOk(tails.nothingAfter(W, 10), 'a read while reconnecting records nothing')

  await eventually(() => hub.listening, { what: 'the hub to reconnect', timeoutMs: 5000 })
  await eventually(() => heard.slice(heardBefore).filter((w) => w === 'all').length >= 2, { what: 'the restore wake-up', timeoutMs: 2000 })
  tails.readEnded(V, acrossLoss, 10)
  t.notOk(tails.nothingAfter(V, 10), 'a read that started before the loss records nothing when it ends after it')

  read(tails, U, 200)
  t.ok(tails.nothingAfter(U, 200), 'listening again: a new read records')
  await notify(`u:${U}`)
  t.notOk(tails.nothingAfter(U, 200), 'and the new connection hears the wake-ups that forget it')
})

t.test('LogTails: bounded: an end unused for two periods (2 x 60 s) is dropped, one in use stays', async (t) => {
  const { tails } = await listeningHub(t)
  const realNow = Date.now
  /** Runs `check` with the clock moved `ms` ahead (synchronously, then restored). */
  const later = <T>(ms: number, check: () => T): T => {
    const base = realNow()
    Date.now = () => base + ms
    try {
      return check()
    } finally {
      Date.now = realNow
    }
  }
  read(tails, 801, 100)
  read(tails, 802, 100)
  t.ok(later(61_000, () => tails.nothingAfter(801, 100)), 'one period later: still known (and used)')
  t.ok(later(122_500, () => tails.nothingAfter(801, 100)), 'two periods later: still known, used in between')
  t.notOk(later(122_500, () => tails.nothingAfter(802, 100)), 'unused for two periods: dropped (a poll then reads)')
})

// ---------------------------------------------------------------------------------------
// 2. Through HTTP
// ---------------------------------------------------------------------------------------

interface LogReads {
  made: number
  skipped: number
  /** Polls answered with entries this process appended, without a read. */
  handedOver: number
}

/** messenger_log_reads_total, messenger_log_reads_skipped_total and messenger_polls_answered_without_read_total, from a /metrics text. */
function parseLogReads(text: string): LogReads {
  return {
    made: metricValue(text, 'messenger_log_reads_total'),
    skipped: metricValue(text, 'messenger_log_reads_skipped_total'),
    handedOver: metricValue(text, 'messenger_polls_answered_without_read_total'),
  }
}

/** The log-read counters of the app's GET /metrics. */
async function logReads(app: App): Promise<LogReads> {
  return parseLogReads(await metrics(app))
}

/** Waits until a poll started after `before` decided to read or to skip; the counters then. */
async function decided(read: () => Promise<LogReads>, before: LogReads): Promise<LogReads> {
  let now = before
  await eventually(async () => {
    now = await read()
    return now.made + now.skipped > before.made + before.skipped
  }, { what: 'the poll to read or skip', timeoutMs: 3000 })
  return now
}

async function send(app: App, from: TestSession, to: TestSession, msg: string) {
  const reply = await call(app, 'send_msg', { to_uid: to.uid, msg }, from.token)
  if (reply.status !== 200) throw new Error(`send_msg failed: ${JSON.stringify(reply.body)}`)
  return reply.body.msg_id as number
}

const msgIds = (reply: { msg_array: Json[] }) => reply.msg_array.map((m) => m.msg_id as number)

/** A long poll, timed from now. */
function timedPoll(app: App, session: TestSession, cursor: number, timeout: number) {
  const began = Date.now()
  return poll(app, session, cursor, timeout).then((reply) => ({ reply, ms: Date.now() - began }))
}

const sentinelsHeard = new WeakMap<App, Set<number>>()
let nextSentinel = -1

/**
 * Resolves once the app's hub has heard every NOTIFY committed so far: they arrive in commit
 * order, so it waits for one more, naming a user id that does not exist. Call it before a
 * read that must record the end, so that a late wake-up (of a befriend, a send) does not
 * forget it right after.
 */
async function wakeUpsHeard(app: App): Promise<void> {
  let seen = sentinelsHeard.get(app)
  if (!seen) {
    const ids = (seen = new Set<number>())
    app.eventLog.listener.subscribe((wakeUp) => {
      for (const who of whoOf(wakeUp)) if (typeof who === 'number' && who < 0) ids.add(who)
    })
    sentinelsHeard.set(app, seen)
  }
  await app.eventLog.listener.listen() // connected by the first poll otherwise
  const id = nextSentinel--
  await app.db.raw('SELECT pg_notify(?, ?)', [channelOf(app.config.databaseSchema), `u:${id}`])
  await eventually(() => seen.has(id), { what: 'the hub to hear the sentinel wake-up', timeoutMs: 2000 })
}

/** Stores a message for `to` and appends its log entry WITHOUT a wake-up this process hears: a commit whose NOTIFY is still on its way. */
async function commitUnheard(app: App, from: TestSession, to: TestSession, text: string): Promise<number> {
  return app.db.transaction(async (trx) => {
    const inserted = await insertMessage(trx, { senderId: from.uid, recipientId: to.uid, text })
    await appendMessage(trx, `lt_nobody_listens_${randomBytes(3).toString('hex')}`, to.uid, from.uid, inserted!.id)
    return inserted!.id
  })
}

/**
 * An app with a receiver and a sender who are contacts, every wake-up so far heard, and the
 * receiver's log drained: `cursor` is its end (this process read to it).
 */
async function pairReady(t: Test, overrides: Partial<Config> = {}) {
  const app = await build(t, overrides)
  const receiver = await signUp(app)
  const sender = await signUp(app)
  await befriend(app, sender, receiver)
  await wakeUpsHeard(app)
  const cursor = await drain(app, receiver)
  return { app, receiver, sender, cursor }
}

t.test('the poll sent right after a reply skips its read, and the next send wakes it at once with that message, once', async (t) => {
  const { app, receiver, sender, cursor: c0 } = await pairReady(t)

  const first = timedPoll(app, receiver, c0, 5)
  await eventually(() => app.eventLog.polls.size === 1, { what: 'the first poll to be held', timeoutMs: 2000 })
  const one = await send(app, sender, receiver, 'one')
  const r1 = (await first).reply
  t.same(msgIds(r1), [one], 'the first poll returns the message')
  const c1 = r1.cursor
  t.ok(c1 > c0)

  // At once, with the new cursor: this process read to the end at c1 and heard nothing since.
  const before = await logReads(app)
  const second = timedPoll(app, receiver, c1, 5)
  const now = await decided(() => logReads(app), before)
  t.equal(now.skipped, before.skipped + 1, 'messenger_log_reads_skipped_total grew by 1')
  t.equal(now.made, before.made, 'messenger_log_reads_total did not grow: no read at the start of the poll')
  await sleep(200)
  t.equal(app.eventLog.polls.size, 1, 'the poll is held, waiting for a wake-up')

  const sentAt = Date.now()
  const two = await send(app, sender, receiver, 'two')
  const { reply: r2, ms } = await second
  const afterSend = Date.now() - sentAt
  t.ok(afterSend < PROMPT_MS, `answered ${afterSend} ms after the send, well under the 5 s timeout`)
  t.ok(ms >= 200, `it was held until the send (${ms} ms)`)
  t.same(msgIds(r2), [two], 'with the new message only')
  t.same(r2.events_array, [])
  t.ok(r2.cursor > c1, 'and a new cursor')
  const after = await logReads(app)
  t.equal(after.made, now.made, 'no read: the send handed its entry over to the poll')
  t.equal(after.handedOver, now.handedOver + 1, 'messenger_polls_answered_without_read_total grew by 1')
  t.equal(after.skipped, now.skipped)

  const rest = await poll(app, receiver, r2.cursor, 0)
  t.same([rest.msg_array, rest.events_array, rest.cursor], [[], [], r2.cursor], 'nothing after the last cursor: not twice')
  const all = await collect(app, receiver, c0)
  t.same(all.msgs.map((m) => m.msg_id), [one, two], 'from the start: each message once, in order')
})

t.test('timeout 0 always reads: it sees a commit whose wake-up has not arrived, and a send right after its 200', async (t) => {
  const { app, receiver, sender, cursor: c0 } = await pairReady(t) // its last read reached the end at c0

  // Precondition: this process knows nothing is after c0 (a long poll there skips).
  let before = await logReads(app)
  const probe = await poll(app, receiver, c0, 0.3)
  let after = await logReads(app)
  t.equal(after.skipped, before.skipped + 1, 'precondition: a long poll at c0 skips its read')
  t.same(probe.msg_array, [])

  // A commit whose NOTIFY this process has not heard (yet): only a read can see it.
  const unheard = await commitUnheard(app, sender, receiver, 'wake-up still on its way')
  before = await logReads(app)
  const r1 = await poll(app, receiver, c0, 0)
  after = await logReads(app)
  t.same(msgIds(r1), [unheard], 'timeout 0 read the log and returned the entry')
  t.equal(after.skipped, before.skipped, 'timeout 0 never skips')
  t.equal(after.made, before.made + 1, 'it made one read')

  // And a real send: polled right after its 200, whether or not its NOTIFY arrived.
  let cursor = r1.cursor
  for (let i = 0; i < 5; i++) {
    const id = await send(app, sender, receiver, `right after ${i}`)
    before = await logReads(app)
    const reply = await poll(app, receiver, cursor, 0)
    after = await logReads(app)
    t.same(msgIds(reply), [id], `send ${i}: the timeout-0 poll right after its 200 has it`)
    t.equal(after.skipped, before.skipped, `send ${i}: not skipped`)
    cursor = reply.cursor
  }
  const all = await collect(app, receiver, c0)
  t.equal(all.msgs.length, 6, 'each message once')
  t.equal(new Set(all.msgs.map((m) => m.msg_id)).size, 6)
})

// Regression: only timeout 0 used to be exempt from waiting first. A poll with timeout
// 0.001 at the recorded end skipped its read, its wait ended before the wake-up arrived,
// and it answered empty without ever having read, though the entry was committed (and the
// send answered 200) before the poll was sent. Now a poll that waited first always reads
// before it answers. The wake-up that has not arrived is made deterministic here: the
// commit's NOTIFY goes to a channel nobody listens to.
t.test('a poll with a tiny positive timeout answers with an entry committed before it, even if its wake-up has not arrived', async (t) => {
  const { app, receiver, sender, cursor: c0 } = await pairReady(t)
  const before = await logReads(app)
  await poll(app, receiver, c0, 0.3)
  t.equal((await logReads(app)).skipped, before.skipped + 1, 'precondition: the end is recorded at c0')

  const unheard = await commitUnheard(app, sender, receiver, 'committed before the poll')
  const tiny = await poll(app, receiver, c0, 0.001)
  t.same(msgIds(tiny), [unheard], 'timeout 0.001: the entry committed before the poll (fails: empty, the read was skipped)')
  const zero = await poll(app, receiver, c0, 0)
  t.same(msgIds(zero), [unheard], 'timeout 0 sees it (the same log, the same cursor)')
})

t.test('a cursor behind the recorded end reads: the long poll answers at once with what is after it', async (t) => {
  const { app, receiver, sender, cursor: c0 } = await pairReady(t)
  const m1 = await send(app, sender, receiver, 'm1')
  const c1 = (await poll(app, receiver, c0, 0)).cursor
  const m2 = await send(app, sender, receiver, 'm2')
  await wakeUpsHeard(app) // m2's wake-up came before the next read started
  const c2 = (await poll(app, receiver, c1, 0)).cursor // reads to the end: records c2
  t.ok(c0 < c1 && c1 < c2)

  let before = await logReads(app)
  await poll(app, receiver, c2, 0.3)
  t.equal((await logReads(app)).skipped, before.skipped + 1, 'precondition: the end is recorded at c2')

  before = await logReads(app)
  const behind = await timedPoll(app, receiver, c1, 5)
  let after = await logReads(app)
  t.same(msgIds(behind.reply), [m2], 'a cursor one entry behind: that entry')
  t.ok(behind.ms < PROMPT_MS, `at once (${behind.ms} ms), not after the 5 s timeout`)
  t.equal(after.skipped, before.skipped, 'not skipped')
  t.equal(behind.reply.cursor, c2)

  before = await logReads(app)
  const start = await timedPoll(app, receiver, c0, 5)
  after = await logReads(app)
  t.same(msgIds(start.reply), [m1, m2], 'a cursor two entries behind: both, in order')
  t.ok(start.ms < PROMPT_MS, `at once (${start.ms} ms)`)
  t.equal(after.skipped, before.skipped, 'not skipped')
})

t.test('a read that filled a batch (POLL_BATCH_LIMIT) did not reach the end: the next long poll reads the rest at once', async (t) => {
  const { app, receiver, sender, cursor: c0 } = await pairReady(t, { pollBatchLimit: 2 })
  const ids = [await send(app, sender, receiver, 'a'), await send(app, sender, receiver, 'b'), await send(app, sender, receiver, 'c')]
  await wakeUpsHeard(app)
  const full = await poll(app, receiver, c0, 0)
  t.same(msgIds(full), ids.slice(0, 2), 'a full batch of 2')

  const before = await logReads(app)
  const next = await timedPoll(app, receiver, full.cursor, 5)
  const after = await logReads(app)
  t.equal(after.skipped, before.skipped, 'the poll at the end of a full batch is not skipped')
  t.same(msgIds(next.reply), ids.slice(2), 'it gets the third message')
  t.ok(next.ms < PROMPT_MS, `at once (${next.ms} ms)`)
})

t.test('a broadcast wakes a poll that skipped its read, and forgets the end of users without a held poll', async (t) => {
  const login = uniqueLogin('Admin')
  const app = await build(t, { adminLogins: [login.toLowerCase()] })
  const admin = await signUp(app, login)
  const receiver = await signUp(app)
  const other = await signUp(app)
  const heard: Array<number | 'all'> = []
  app.eventLog.listener.subscribe((wakeUp) => heard.push(...whoOf(wakeUp)))
  await wakeUpsHeard(app)
  const cReceiver = await drain(app, receiver)
  const cOther = await drain(app, other) // records other's end; other holds no poll

  let before = await logReads(app)
  const held = timedPoll(app, receiver, cReceiver, 5)
  const now = await decided(() => logReads(app), before)
  t.equal(now.skipped, before.skipped + 1, "the receiver's poll skipped its read")

  const sentAt = Date.now()
  const sent = await call(app, 'broadcast', { msg: 'to everyone' }, admin.token)
  t.equal(sent.status, 200, 'the admin broadcast is accepted')
  const { reply } = await held
  t.ok(Date.now() - sentAt < PROMPT_MS, `the held poll answered ${Date.now() - sentAt} ms after the broadcast`)
  t.match(reply.msg_array, [{ msg_id: sent.body.msg_id, kind: 'broadcast', text: 'to everyone' }], 'with the broadcast')
  t.equal(reply.msg_array.length, 1)

  await eventually(() => heard.includes('all'), { what: "the hub to hear the broadcast's wake-up", timeoutMs: 2000 })
  before = await logReads(app)
  const late = await timedPoll(app, other, cOther, 5)
  const after = await logReads(app)
  t.equal(after.skipped, before.skipped, "the other user's long poll at its old end reads: the broadcast forgot that end")
  t.ok(late.ms < PROMPT_MS, `and answers at once (${late.ms} ms)`)
  t.match(late.reply.msg_array, [{ msg_id: sent.body.msg_id, kind: 'broadcast' }], 'with the broadcast')
  t.equal(late.reply.msg_array.length, 1)
  t.same((await poll(app, other, late.reply.cursor, 0)).msg_array, [], 'exactly once')
})

t.test('events other than messages (contact request, presence, edit) wake a poll that skipped its read', async (t) => {
  const app = await build(t)
  const receiver = await signUp(app)
  const friend = await signUp(app)
  const stranger = await signUp(app)
  await befriend(app, friend, receiver)
  await wakeUpsHeard(app)
  let cursor = await drain(app, receiver)

  /** Holds a poll that must skip its read, does `act`, returns what woke the poll. */
  async function wokenBy(label: string, act: () => Promise<unknown>) {
    const before = await logReads(app)
    const held = timedPoll(app, receiver, cursor, 5)
    const now = await decided(() => logReads(app), before)
    t.equal(now.skipped, before.skipped + 1, `${label}: the poll skipped its read`)
    const actedAt = Date.now()
    await act()
    const { reply } = await held
    const ms = Date.now() - actedAt
    t.ok(ms < PROMPT_MS, `${label}: woken ${ms} ms after, well under the 5 s timeout`)
    t.ok(reply.cursor > cursor, `${label}: the cursor moved`)
    cursor = reply.cursor
    return reply
  }

  const request = await wokenBy('contact request', () => call(app, 'add_contact_request', { login: receiver.login }, stranger.token))
  t.match(request.events_array, [{ type: 'contact_request', ruid: stranger.uid }], 'a contact_request event')
  t.equal(request.events_array.length, 1)

  const presence = await wokenBy('presence', () => poll(app, friend, 0, 0)) // the friend's first poll: online
  t.match(presence.events_array, [{ type: 'presence', ruid: friend.uid, online: true }], 'a presence event')
  t.equal(presence.events_array.length, 1)

  let sent = 0
  const message = await wokenBy('message', async () => (sent = await send(app, friend, receiver, 'before the edit')))
  t.same(msgIds(message), [sent])

  const edit = await wokenBy('edit', () => call(app, 'edit_msg', { msg_id: sent, msg: 'after the edit' }, friend.token))
  t.match(edit.events_array, [{ type: 'message_edited', ruid: friend.uid, msg_id: sent, msg: 'after the edit' }], 'a message_edited event')
  t.equal(edit.events_array.length, 1)
  t.same((await poll(app, receiver, cursor, 0)).events_array, [], 'nothing twice')
})

t.test('a lost LISTEN connection: a commit nobody heard is still delivered, to the next poll and to a held one', async (t) => {
  const app = await build(t)
  const receiver = await signUp(app)
  const sender = await signUp(app)
  await befriend(app, sender, receiver)
  const channel = channelOf(app.config.databaseSchema)
  const start = await drain(app, receiver)
  let cursor = start
  const committed: number[] = []
  const problems: string[] = []

  /**
   * Stores a message for the receiver (with its NOTIFY) in a transaction, kills the hub's
   * LISTEN backend, and commits once the hub noticed. True when the commit was over while
   * the hub still had no connection: its NOTIFY reached no one here. (The hub reconnects
   * after 100 ms: under load it may win the race; the caller then tries again.)
   */
  async function commitWhileReconnecting(text: string): Promise<{ id: number; unheard: boolean }> {
    const trx = await app.db.transaction()
    try {
      const inserted = await insertMessage(trx, { senderId: sender.uid, recipientId: receiver.uid, text })
      await appendMessage(trx, channel, receiver.uid, sender.uid, inserted!.id)
      const { rows } = await app.db.raw('SELECT pid FROM pg_stat_activity WHERE query = ?', [`LISTEN ${pg.escapeIdentifier(channel)}`])
      if (rows.length !== 1) throw new Error(`expected one LISTEN backend, found ${rows.length}`)
      await app.db.raw('SELECT pg_terminate_backend(?)', [rows[0].pid])
      await eventually(() => !app.eventLog.listener.listening, { what: 'the hub to notice the lost connection', timeoutMs: 5000 })
      await trx.commit()
      committed.push(inserted!.id)
      return { id: inserted!.id, unheard: !app.eventLog.listener.listening }
    } catch (error) {
      await trx.rollback().catch(() => {})
      throw error
    }
  }

  /** Makes this process read the log to its end at `cursor`, and checks a long poll there now skips. */
  async function recordEnd(label: string): Promise<void> {
    await wakeUpsHeard(app) // listening again, and every wake-up so far heard
    await poll(app, receiver, cursor, 0)
    const before = await logReads(app)
    await poll(app, receiver, cursor, 0.3)
    if ((await logReads(app)).skipped !== before.skipped + 1) problems.push(`${label}: precondition: the end was not recorded`)
  }

  // 1. No poll held: the end is recorded, the connection lost, a message committed; the
  //    next poll with the last cursor must read (and get it), not skip.
  let exercised = false
  for (let attempt = 0; attempt < 5 && !exercised; attempt++) {
    await recordEnd(`next poll, attempt ${attempt}`)
    const { id, unheard } = await commitWhileReconnecting(`sent while LISTEN was down (${attempt})`)
    exercised = unheard
    const next = await timedPoll(app, receiver, cursor, 5)
    if (JSON.stringify(msgIds(next.reply)) !== JSON.stringify([id])) problems.push(`next poll, attempt ${attempt}: got ${JSON.stringify(msgIds(next.reply))}, committed ${id}`)
    if (next.ms >= 2000) problems.push(`next poll, attempt ${attempt}: answered after ${next.ms} ms`)
    cursor = next.reply.cursor
  }
  t.ok(exercised, 'a message was committed while the hub was reconnecting (its NOTIFY heard by no one here)')
  t.ok(app.eventLog.listener.listening, 'the hub is listening again')

  // 2. A poll that skipped its read is held while the connection is lost and the commit made.
  exercised = false
  for (let attempt = 0; attempt < 5 && !exercised; attempt++) {
    await recordEnd(`held poll, attempt ${attempt}`)
    const before = await logReads(app)
    const held = timedPoll(app, receiver, cursor, 8)
    const now = await decided(() => logReads(app), before)
    if (now.skipped !== before.skipped + 1) problems.push(`held poll, attempt ${attempt}: it did not skip its read`)
    const { id, unheard } = await commitWhileReconnecting(`sent while LISTEN was down again (${attempt})`)
    exercised = unheard
    const committedAt = Date.now()
    const { reply } = await held
    const ms = Date.now() - committedAt
    if (JSON.stringify(msgIds(reply)) !== JSON.stringify([id])) problems.push(`held poll, attempt ${attempt}: got ${JSON.stringify(msgIds(reply))}, committed ${id}`)
    if (ms >= 3000) problems.push(`held poll, attempt ${attempt}: answered ${ms} ms after the commit`)
    cursor = reply.cursor
  }
  t.ok(exercised, 'a message was committed while the hub of the held poll was reconnecting')

  t.same(problems, [], 'every such message came with the next poll (or woke the held one) promptly: no skip across a lost connection')
  t.same((await poll(app, receiver, cursor, 0)).msg_array, [], 'nothing after the last cursor')
  const all = await collect(app, receiver, start)
  t.same(all.msgs.map((m) => m.msg_id), committed, 'each once, in order')
})

// ---------------------------------------------------------------------------------------
// 3. Two processes
// ---------------------------------------------------------------------------------------

/** The log-read counters of a server process's GET /metrics. */
async function serverLogReads(server: ServerProcess): Promise<LogReads> {
  const response = await fetch(`${server.base}/metrics`)
  return parseLogReads(await response.text())
}

t.test('two processes, 20 rounds: the poll that skipped its read is woken by a send through the other process promptly; all exactly once, in order', async (t) => {
  const ROUNDS = 20
  const [one, two] = await startServers(t)
  const alice = await signUpOn(one)
  const bob = await signUpOn(one)
  await befriendOver(one, alice, bob)
  const start = await currentCursor(one, bob)
  await currentCursor(two, bob) // opens process 2's LISTEN connection too

  let cursor = start
  const sent: number[] = []
  const received: number[] = []
  const latencies: number[] = []
  const problems: string[] = []
  let againSkipped = 0
  let firstSkipped = 0
  for (let round = 0; round < ROUNDS; round++) {
    const [at, via] = round % 2 === 0 ? [one, two] : [two, one]
    // The first poll of the round on `at`, then the one sent right after its reply (which
    // skips its read: `at` read to the end when the first poll woke and heard nothing since).
    for (const step of ['first', 'again'] as const) {
      const before = await serverLogReads(at)
      const held = holdPoll(at, { cursor, timeout: 10 }, bob.token)
      const now = await decided(() => serverLogReads(at), before)
      if (now.skipped > before.skipped) step === 'again' ? againSkipped++ : firstSkipped++
      // Let a first read finish before the send: a wake-up arriving while it is in flight
      // rightly stops it from recording the end, and the next poll then reads.
      await sleep(50)
      if (held.state.answered) problems.push(`round ${round} ${step}: answered before the send`)
      const text = `round ${round} ${step}`
      const reply = await post(via, 'send_msg', { to_uid: bob.uid, msg: text }, alice.token)
      if (reply.status !== 200) throw new Error(`send_msg failed: ${JSON.stringify(reply.body)}`)
      sent.push(reply.body.msg_id)
      const woke = await held.promise
      latencies.push(woke.at - reply.headersAt)
      if (woke.status !== 200) throw new Error(`update_data failed: ${JSON.stringify(woke.body)}`)
      const ids = (woke.body.msg_array as Json[]).map((m) => m.msg_id as number)
      received.push(...ids)
      if (ids.length !== 1 || ids[0] !== reply.body.msg_id) problems.push(`round ${round} ${step}: got ${JSON.stringify(ids)}, sent ${reply.body.msg_id}`)
      if (!(woke.body.cursor > cursor)) problems.push(`round ${round} ${step}: the cursor did not move`)
      cursor = woke.body.cursor
    }
  }
  const max = Math.max(...latencies)
  t.comment(`polls answered after the send's reply: max ${max.toFixed(1)} ms; skipped reads: ${againSkipped} of ${ROUNDS} repeat polls, ${firstSkipped} of ${ROUNDS} first polls`)
  t.same(problems, [], 'every poll was held until the send and returned exactly that message')
  // A first read still in flight when the send's wake-up arrives rightly records nothing,
  // and the repeat poll then reads: the 50 ms above make that rare. Without log tails: none.
  t.ok(againSkipped >= ROUNDS - 2, `the polls sent right after a reply skipped their read (${againSkipped} of ${ROUNDS})`)
  t.ok(max < PROMPT_MS, `every poll answered promptly after the send's reply (max ${max.toFixed(1)} ms)`)
  t.same(received, sent, `all ${sent.length} messages exactly once, in send order`)
  t.equal(new Set(sent).size, 2 * ROUNDS)

  for (const server of [one, two]) {
    const ids: number[] = []
    let c = start
    for (let i = 0; i < 100; i++) {
      const reply = await post(server, 'update_data', { cursor: c, timeout: 0 }, bob.token)
      const page = (reply.body.msg_array as Json[]).map((m) => m.msg_id as number)
      if (page.length === 0 && reply.body.events_array.length === 0) break
      ids.push(...page)
      c = reply.body.cursor
    }
    t.same(ids, sent, `a re-read from the start on ${server === one ? 'process 1' : 'process 2'}: the same, once each, in order`)
  }
})

// ---------------------------------------------------------------------------------------
// Hand-over: a commit's entries go to this process's held polls, which take them without
// reading only when they are exactly what follows the poll's cursor.

t.test('hand-over: a poll whose cursor is not the head before the entries reads, and misses nothing', async (t) => {
  const { app, receiver, sender, cursor: c0 } = await pairReady(t)
  // An entry after c0 that this process never heard of: its poll at c0 would skip its read.
  const unheard = await commitUnheard(app, sender, receiver, 'unheard')
  const before = await logReads(app)
  const held = timedPoll(app, receiver, c0, 5)
  await decided(() => logReads(app), before)
  const sent = await send(app, sender, receiver, 'handed over')
  const { reply } = await held
  t.same(msgIds(reply), [unheard, sent], 'both entries after the cursor, in order')
  const after = await logReads(app)
  t.equal(after.handedOver, before.handedOver, 'not taken from the hand-over: the head before it was not the cursor')
  t.ok(after.made > before.made, 'the poll read the log')
})

t.test('hand-over: a broadcast that commits while a send waits for it reaches the held poll first', async (t) => {
  const login = uniqueLogin('Admin')
  const { app, receiver, sender, cursor: c0 } = await pairReady(t, { adminLogins: [login.toLowerCase()] })
  const admin = await signUp(app, login)
  await wakeUpsHeard(app)
  const channel = channelOf(app.config.databaseSchema)
  // A broadcast in flight: it holds the broadcast lock, which every append takes shared.
  const trx = await app.db.transaction()
  t.teardown(() => (trx.isCompleted() ? undefined : trx.rollback()))
  const pid: number = (await trx.raw('SELECT pg_backend_pid() AS pid')).rows[0].pid
  await trx.raw(LOCK_BROADCASTS_SQL, [channel])
  const broadcastId = (await insertMessage(trx, { senderId: admin.uid, text: 'to everyone', kind: 'broadcast' }))!.id
  const before = await logReads(app)
  const held = timedPoll(app, receiver, c0, 5)
  await decided(() => logReads(app), before)
  // The send waits for the broadcast; once that commits, the send's entry comes after it.
  const sending = send(app, sender, receiver, 'after the broadcast')
  await eventually(async () => (await backendsWaitingOn(app, pid)) > 0, { what: 'the send to wait for the broadcast' })
  await trx.raw(APPEND_BROADCAST_SQL, [broadcastId, channel])
  await trx.commit()
  const sent = await sending
  const { reply } = await held
  t.equal(msgIds(reply)[0], broadcastId, 'the held poll answers with the broadcast first (its wake-up came first)')
  const all = await collect(app, receiver, c0)
  t.same(all.msgs.map((m) => m.msg_id), [broadcastId, sent], 'from the cursor: the broadcast, then the message, once each')
})

t.test('hand-over: a room message reaches every held member without a read', async (t) => {
  const app = await build(t)
  const owner = await signUp(app)
  const members = [await signUp(app), await signUp(app), await signUp(app)]
  const room = (await call(app, 'create_room', { name: 'hand-over', type: 'public' }, owner.token)).body.room
  for (const member of members) await call(app, 'join_room', { room_id: room.room_id }, member.token)
  await wakeUpsHeard(app)
  const cursors = await Promise.all(members.map((member) => drain(app, member)))
  const before = await logReads(app)
  const held = members.map((member, i) => timedPoll(app, member, cursors[i], 5))
  await eventually(() => app.eventLog.polls.size === members.length, { what: 'every member to hold a poll' })
  const sent = await call(app, 'send_msg', { room_id: room.room_id, msg: 'to the room' }, owner.token)
  const replies = await Promise.all(held)
  for (const [i, { reply }] of replies.entries()) t.same(msgIds(reply), [sent.body.msg_id], `member ${i + 1} got the message`)
  const after = await logReads(app)
  t.equal(after.handedOver, before.handedOver + members.length, 'each poll took it from the hand-over')
  t.equal(after.made, before.made, 'no poll read the log')
})
