// The long-poll's sacred property (PROTOCOL A.6), through HTTP on a real PostgreSQL:
// polling with each reply's cursor never misses and never repeats an entry, whatever the
// number of concurrent writers and whatever order their transactions commit in.
import t from 'tap'
import type { Knex } from 'knex'
import { PROMPT_MS, backendsBlockedBy, collect, drain, eventually, keepAdvancing, sleep, build, call, poll, signUp, befriend, type TestSession, type PolledMessage } from './helper.js'
import type { App } from '../src/app.js'
import { ManualClock } from '../src/clock.js'
import { insertMessage } from '../src/data/messages.js'

async function send(app: App, from: TestSession, to: TestSession, msg: string, clientMsgId?: string) {
  const body: Record<string, unknown> = { to_uid: to.uid, msg }
  if (clientMsgId !== undefined) body.client_msg_id = clientMsgId
  return call(app, 'send_msg', body, from.token)
}

t.test('24 concurrent senders, paged cursor polls: every message exactly once, in order per sequential sender', async (t) => {
  const BATCH = 7
  const SENDERS = 24
  const PER_SENDER = 15
  // Held polls end by a message, or at their timeout on the app's clock, which moves once
  // every send was acknowledged (the last polls then end at once instead of after 1-2 s).
  const clock = new ManualClock()
  const app = await build(t, { pollBatchLimit: BATCH }, undefined, clock)
  const receiver = await signUp(app)
  const senders = await Promise.all(Array.from({ length: SENDERS }, () => signUp(app)))
  await Promise.all(senders.map((s) => befriend(app, s, receiver)))
  const start = await drain(app, receiver)
  t.ok(start > 0, 'the contact events moved the receiver cursor')

  // Half of the senders fire all their messages at once; the other half send one after
  // another (each waits for the previous reply), all senders running at the same time.
  const sequential = (i: number) => i % 2 === 1
  const acked = new Map<number, { sender: TestSession; index: number; text: string }>()
  const failures: unknown[] = []
  let sendsDone = false

  const sendAll = async () => {
    await Promise.all(
      senders.map(async (sender, i) => {
        const one = async (k: number) => {
          const text = `s${i}-m${k}`
          const reply = await send(app, sender, receiver, text)
          if (reply.status !== 200) failures.push(reply.body)
          else acked.set(reply.body.msg_id, { sender, index: k, text })
        }
        if (sequential(i)) for (let k = 0; k < PER_SENDER; k++) await one(k)
        else await Promise.all(Array.from({ length: PER_SENDER }, (_, k) => one(k)))
      }),
    )
    sendsDone = true
  }

  const received: PolledMessage[] = []
  const cursors: number[] = [start]
  let polls = 0
  let nonEmpty = 0
  let oversize = 0
  let unexpectedEvents = 0
  const pollLoop = async () => {
    let cursor = start
    for (;;) {
      const doneBefore = sendsDone
      const reply = await poll(app, receiver, cursor, 1 + (polls % 2))
      polls++
      const count = reply.msg_array.length + reply.events_array.length
      if (count > BATCH) oversize++
      unexpectedEvents += reply.events_array.length
      received.push(...reply.msg_array)
      cursors.push(reply.cursor)
      if (count > 0) nonEmpty++
      cursor = reply.cursor
      // An empty reply to a poll started after every send was acknowledged: all is in.
      if (doneBefore && count === 0) break
      if (polls > 5000) throw new Error('poll loop runaway')
    }
  }

  const began = Date.now()
  let stopClock = () => {}
  await Promise.all([sendAll().then(() => (stopClock = keepAdvancing(t, clock, 1000))), pollLoop()])
  stopClock()
  const elapsed = Date.now() - began

  t.same(failures, [], 'every send was acknowledged with 200')
  t.equal(acked.size, SENDERS * PER_SENDER, 'every send got its own msg_id')
  t.equal(oversize, 0, `no reply carried more than POLL_BATCH_LIMIT (${BATCH}) items`)
  t.equal(unexpectedEvents, 0, 'no events besides the messages after the start cursor')

  // Exactly once.
  const ids = received.map((m) => m.msg_id)
  const duplicates = ids.filter((id, i) => ids.indexOf(id) !== i)
  t.same(duplicates, [], 'no message delivered twice')
  const missing = [...acked.keys()].filter((id) => !ids.includes(id))
  t.same(missing, [], 'no acknowledged message lost')
  const unknown = ids.filter((id) => !acked.has(id))
  t.same(unknown, [], 'nothing delivered that was not sent')
  t.equal(received.length, acked.size, 'as many delivered as acknowledged')

  // Content matches what was sent.
  const mismatched = received.filter((m) => {
    const sent = acked.get(m.msg_id)
    return !sent || sent.sender.uid !== m.sender_uid || sent.sender.login !== m.sender_login || sent.text !== m.text
  })
  t.same(mismatched, [], 'every delivered message carries its sender and text')

  // Cursors: strictly increasing across non-empty replies, unchanged by empty ones.
  let badStep = 0
  for (let i = 1; i < cursors.length; i++) if (cursors[i] < cursors[i - 1]) badStep++
  t.equal(badStep, 0, 'the cursor never goes back')
  const distinctAdvances = cursors.filter((c, i) => i > 0 && c > cursors[i - 1]).length
  t.equal(distinctAdvances, nonEmpty, 'every non-empty reply strictly advanced the cursor, every empty one kept it')
  const last = cursors[cursors.length - 1]
  t.ok(Math.abs(last / 1000 - Date.now()) < 60_000, 'the cursor is microseconds since the epoch')

  // Per sequential sender: delivered in send order.
  let outOfOrder = 0
  senders.forEach((sender, i) => {
    if (!sequential(i)) return
    const order = received.filter((m) => m.sender_uid === sender.uid).map((m) => acked.get(m.msg_id)!.index)
    const expected = Array.from({ length: PER_SENDER }, (_, k) => k)
    if (JSON.stringify(order) !== JSON.stringify(expected)) outOfOrder++
  })
  t.equal(outOfOrder, 0, 'each sequential sender\'s messages arrive in send order')

  // The log is drained: one more poll from the last cursor is empty and keeps it.
  const after = await poll(app, receiver, last, 0)
  t.same([after.msg_array, after.events_array, after.cursor], [[], [], last], 'nothing left after the last cursor')

  t.comment(
    `senders=${SENDERS} messages=${acked.size} delivered=${received.length} polls=${polls} non-empty=${nonEmpty} ` +
      `batch=${BATCH} elapsed=${elapsed}ms`,
  )
})

t.test('the same cursor twice gives the same answer', async (t) => {
  const app = await build(t, { pollBatchLimit: 4 })
  const receiver = await signUp(app)
  const sender = await signUp(app)
  await befriend(app, sender, receiver)
  const c0 = await drain(app, receiver)
  for (let k = 0; k < 10; k++) t.equal((await send(app, sender, receiver, `m${k}`)).status, 200)

  let cursor = c0
  const seen: number[] = []
  for (let page = 0; page < 4; page++) {
    const first = await poll(app, receiver, cursor, 0)
    const second = await poll(app, receiver, cursor, 0)
    t.same(second.msg_array, first.msg_array, `page ${page}: same messages`)
    t.same(second.events_array, first.events_array, `page ${page}: same events`)
    t.equal(second.cursor, first.cursor, `page ${page}: same cursor`)
    seen.push(...first.msg_array.map((m) => m.msg_id))
    if (page < 3) t.ok(first.cursor > cursor, `page ${page}: the cursor advanced`)
    else t.equal(first.cursor, cursor, 'last page: empty, cursor kept')
    cursor = first.cursor
  }
  t.equal(seen.length, 10, 'all ten messages over three pages of at most 4')
  t.equal(new Set(seen).size, 10, 'no repeats across pages')

  // Still the same answer after more arrives: an old cursor is a stable starting point.
  t.equal((await send(app, sender, receiver, 'later')).status, 200)
  const again = await poll(app, receiver, c0, 0)
  t.same(
    again.msg_array.map((m) => m.msg_id),
    seen.slice(0, 4),
    'the first page from the old cursor is unchanged by later messages',
  )
})

t.test('a transaction that commits late is still delivered, before what queued behind it', async (t) => {
  const app = await build(t)
  const receiver = await signUp(app)
  const late = await signUp(app)
  const queued = await Promise.all(Array.from({ length: 4 }, () => signUp(app)))
  const early = await signUp(app)
  for (const s of [late, early, ...queued]) await befriend(app, s, receiver)
  const c0 = await drain(app, receiver)

  // Two committed messages before the held transaction.
  const e1 = await send(app, early, receiver, 'early-1')
  const e2 = await send(app, early, receiver, 'early-2')
  t.equal(e1.status, 200)
  t.equal(e2.status, 200)

  const trx: Knex.Transaction = await app.db.transaction()
  let committed = false
  t.teardown(async () => {
    if (!committed) await trx.rollback().catch(() => {})
  })
  const { rows } = await trx.raw('SELECT pg_backend_pid() AS pid')
  const heldPid: number = rows[0].pid
  const inserted = await insertMessage(trx, { senderId: late.uid, recipientId: receiver.uid, text: 'late' })
  t.ok(inserted, 'the held transaction inserted its message')
  const lateId = inserted!.id
  await app.eventLog.appendMessage(trx, [receiver.uid], late.uid, lateId)

  // Normal sends: they block on the receiver's row lock behind the held transaction (in
  // one group-committed statement, or queued behind it in the server).
  let answered = 0
  const pending = queued.map((s, i) =>
    send(app, s, receiver, `queued-${i}`).then((reply) => {
      answered++
      return reply
    }),
  )

  // Wait until they are really waiting, directly or transitively, on the held one.
  const blocked = await backendsBlockedBy(app, heldPid)
  t.ok(blocked > 0, 'the queued sends wait in the database behind the held transaction')
  await sleep(100)
  t.equal(answered, 0, 'no queued send is answered while the held transaction is open')

  // Meanwhile: the committed messages, but neither the uncommitted one nor anything after it.
  const before = await collect(app, receiver, c0)
  t.same(
    before.msgs.map((m) => m.msg_id),
    [e1.body.msg_id, e2.body.msg_id],
    'only the messages committed before the held transaction',
  )
  const c1 = before.cursor
  const held = await poll(app, receiver, c1, 0)
  t.same([held.msg_array, held.events_array, held.cursor], [[], [], c1], 'timeout 0 does not return the uncommitted message')

  await trx.commit()
  committed = true
  const sent = await Promise.all(pending)
  t.same(
    sent.map((r) => r.status),
    queued.map(() => 200),
    'the queued sends were acknowledged after the commit',
  )
  const queuedIds = sent.map((r) => r.body.msg_id as number)

  const afterCommit = await collect(app, receiver, c1)
  const ids = afterCommit.msgs.map((m) => m.msg_id)
  t.equal(ids[0], lateId, 'the late message comes first')
  t.same([...ids].sort((a, b) => a - b), [lateId, ...queuedIds].sort((a, b) => a - b), 'late and queued messages, each exactly once')
  t.equal(new Set(ids).size, ids.length, 'no repeats')
  t.equal(afterCommit.msgs[0]?.text, 'late')
  t.ok(afterCommit.cursor > c1, 'the cursor moved past them')

  // From the very start: everything exactly once, in commit order.
  const all = await collect(app, receiver, c0)
  t.same(
    all.msgs.map((m) => m.msg_id),
    [e1.body.msg_id, e2.body.msg_id, ...ids],
    'from the start cursor: early, late, then queued, each once',
  )
})

t.test('a held poll is woken by a send', async (t) => {
  const app = await build(t)
  const receiver = await signUp(app)
  const sender = await signUp(app)
  await befriend(app, sender, receiver)
  const c0 = await drain(app, receiver)

  const began = Date.now()
  const held = poll(app, receiver, c0, 5)
  // Let the poll reach its wait.
  await eventually(() => app.eventLog.polls.size > 0, { what: 'the poll to be held', timeoutMs: 1000 }).catch(() => {})
  t.equal(app.eventLog.polls.size, 1, 'the poll is held')
  await sleep(200)
  const sent = await send(app, sender, receiver, 'wake up')
  t.equal(sent.status, 200)
  const reply = await held
  const elapsed = Date.now() - began
  t.ok(elapsed < PROMPT_MS, `answered well before the 5 s timeout (${elapsed} ms)`)
  t.ok(elapsed >= 200, 'it was really held until the send')
  t.same(
    reply.msg_array.map((m) => [m.msg_id, m.text, m.sender_uid]),
    [[sent.body.msg_id, 'wake up', sender.uid]],
    'with the message',
  )
  t.ok(reply.cursor > c0, 'and a new cursor')
})

t.test('timeout 0 with nothing pending answers at once, empty, with the same cursor', async (t) => {
  const app = await build(t)
  const fresh = await signUp(app)
  let began = Date.now()
  const empty = await poll(app, fresh, 0, 0)
  t.ok(Date.now() - began < PROMPT_MS, 'at once')
  t.same([empty.msg_array, empty.events_array, empty.cursor], [[], [], 0], 'a fresh log: empty at cursor 0')
  t.type(empty.server_time, 'number')

  const receiver = await signUp(app)
  const sender = await signUp(app)
  await befriend(app, sender, receiver)
  t.equal((await send(app, sender, receiver, 'hi')).status, 200)
  const cursor = await drain(app, receiver)
  t.ok(cursor > 0)
  began = Date.now()
  const reply = await poll(app, receiver, cursor, 0)
  t.ok(Date.now() - began < PROMPT_MS, 'at once')
  t.same([reply.msg_array, reply.events_array, reply.cursor], [[], [], cursor], 'empty arrays and the cursor it was given')
  t.ok(Math.abs(reply.server_time - Date.now() / 1000) < 5, 'server_time is the server clock in UNIX seconds')
})

t.test('client_msg_id: ten concurrent sends of the same id store one message', async (t) => {
  const app = await build(t)
  const receiver = await signUp(app)
  const sender = await signUp(app)
  await befriend(app, sender, receiver)
  const c0 = await drain(app, receiver)

  const replies = await Promise.all(Array.from({ length: 10 }, () => send(app, sender, receiver, 'once', 'cmid-race-1')))
  t.same(
    replies.map((r) => r.status),
    replies.map(() => 200),
    'every attempt answered 200',
  )
  const msgIds = new Set(replies.map((r) => r.body.msg_id))
  t.equal(msgIds.size, 1, 'all replies name the same msg_id')
  const times = new Set(replies.map((r) => r.body.time))
  t.equal(times.size, 1, 'and the same time')

  const { msgs } = await collect(app, receiver, c0)
  t.same(
    msgs.map((m) => [m.msg_id, m.text]),
    [[[...msgIds][0], 'once']],
    'the receiver gets the message exactly once',
  )
  const [{ n }] = (await app.db('messages').where({ sender_id: sender.uid }).count({ n: '*' })) as Array<{ n: string | number }>
  t.equal(Number(n), 1, 'one row stored')

  // A later retry with the same id still answers with the same message and adds nothing.
  const retry = await send(app, sender, receiver, 'once', 'cmid-race-1')
  t.equal(retry.body.msg_id, [...msgIds][0], 'a later retry names the same msg_id')
  const rest = await poll(app, receiver, (await collect(app, receiver, c0)).cursor, 0)
  t.same(rest.msg_array, [], 'and delivers nothing new')
})
