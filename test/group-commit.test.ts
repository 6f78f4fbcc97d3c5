// Group commit of direct sends: concurrent direct text messages are queued in the server
// and written together, one statement and one commit for a group, each sender answered
// only after that commit. Specified at three levels: the queue itself
// (src/batcher.ts, no database), the batch statement (src/data/direct-send.ts, on a
// real PostgreSQL), and send_msg through HTTP (grouping under a held lock, delivery
// exactly once and in order through cursor polls, idempotent retries, a bounded stress).
import t from 'tap'
import type { Knex } from 'knex'
import { backendsBlockedBy, build, call, befriend, collect, drain, insertUsers, keepAdvancing, metricValue, metrics, poll, sleep, signUp, testDatabaseUrl, type TestSession, type PolledMessage } from './helper.js'
import type { App } from '../src/app.js'
import { ManualClock } from '../src/clock.js'
import { createBatcher } from '../src/batcher.js'
import { sendDirectMessages, type DirectSend, type DirectSendResult, type LogEntry } from '../src/event-log/index.js'
import { readLog } from '../src/event-log/read.js'
import { HandOverGate, channelOf, type WakeUp } from '../src/event-log/wake-ups.js'
import { createKnex } from '../src/database.js'

/** A promise with its resolve and reject in hand. */
function deferred<T = void>() {
  let resolve!: (value: T) => void
  let reject!: (error: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

/**
 * A `write` for createBatcher that records every batch and holds it until released
 * (`autoRelease` answers at once); answers `r<item>` per item, and throws for a batch
 * that holds a 'bad' item.
 */
function recorder(autoRelease = false) {
  const batches: string[][] = []
  const gates: ReturnType<typeof deferred<void>>[] = []
  let inFlight = 0
  let maxConcurrent = 0
  const write = async (items: string[]): Promise<string[]> => {
    batches.push([...items])
    inFlight++
    maxConcurrent = Math.max(maxConcurrent, inFlight)
    try {
      if (!autoRelease) {
        const gate = deferred<void>()
        gates.push(gate)
        await gate.promise
      } else {
        await nextTurn()
      }
      if (items.includes('bad')) throw new Error('bad item in batch')
      return items.map((item) => `r${item}`)
    } finally {
      inFlight--
    }
  }
  return {
    write,
    batches,
    get maxConcurrent() {
      return maxConcurrent
    },
    /** Lets the oldest held batch finish. */
    release() {
      const gate = gates.shift()
      if (!gate) throw new Error('no batch held')
      gate.resolve()
    },
    get held() {
      return gates.length
    },
  }
}

/** A promise's state, without waiting for it. */
async function settledYet(promise: Promise<unknown>): Promise<boolean> {
  let settled = false
  promise.then(
    () => (settled = true),
    () => (settled = true),
  )
  await nextTurn()
  return settled
}

t.test('createBatcher', async (t) => {
  t.test('items submitted while a batch is in flight leave together as the next batch, in order, each with its own result', async (t) => {
    const rec = recorder()
    const group = createBatcher(rec.write, { maxBatch: 100, maxInFlight: 1 })
    const first = group.submit('0')
    await nextTurn()
    t.same(rec.batches, [['0']], 'the first item went out alone')

    // Submitted over several turns of the event loop while '0' is being written.
    const queued: Promise<string>[] = []
    for (let i = 1; i <= 5; i++) {
      queued.push(group.submit(String(i)))
      if (i % 2 === 0) await nextTurn()
    }
    await sleep(20)
    t.same(rec.batches, [['0']], 'nothing else is written while a batch is in flight (maxInFlight 1)')
    t.notOk(await settledYet(queued[0]), 'the queued callers are not answered yet')
    t.notOk(await settledYet(first), 'nor is the first, before its write finished')

    rec.release()
    t.equal(await first, 'r0', 'the first caller gets its result')
    await nextTurn()
    t.same(rec.batches, [['0'], ['1', '2', '3', '4', '5']], 'the queued items left together as the next batch, in submission order')
    t.notOk(await settledYet(queued[4]), 'answered only when their batch is written')
    rec.release()
    t.same(await Promise.all(queued), ['r1', 'r2', 'r3', 'r4', 'r5'], 'each caller gets the result of its own item')
    t.equal(rec.maxConcurrent, 1, 'never two batches at once')
  })

  t.test('at light load an item goes out alone, at once', async (t) => {
    const rec = recorder(true)
    const group = createBatcher(rec.write, { maxBatch: 100, maxInFlight: 1 })
    const one = group.submit('a')
    await nextTurn()
    t.same(rec.batches, [['a']], 'written in the next turn of the event loop, without waiting for company')
    t.equal(await one, 'ra', 'and answered')
    for (const item of ['b', 'c', 'd']) t.equal(await group.submit(item), `r${item}`, `${item} answered with its result`)
    t.same(rec.batches, [['a'], ['b'], ['c'], ['d']], 'one after another: each alone')
  })

  t.test('maxBatch is respected', async (t) => {
    const rec = recorder(true)
    const group = createBatcher(rec.write, { maxBatch: 3, maxInFlight: 1 })
    const items = ['0', '1', '2', '3', '4', '5', '6']
    const results = await Promise.all(items.map((item) => group.submit(item)))
    t.same(results, items.map((item) => `r${item}`), 'all seven answered, each with its own result')
    t.ok(rec.batches.every((batch) => batch.length >= 1 && batch.length <= 3), `every batch holds 1 to 3 items (${rec.batches.map((b) => b.length)})`)
    t.same(rec.batches.flat(), items, 'each item written once, in submission order')
    t.equal(rec.batches.length, 3, 'seven items at maxBatch 3: three batches')
    t.equal(rec.maxConcurrent, 1, 'one batch at a time')
  })

  t.test('maxInFlight batches are written at once, no more', async (t) => {
    const rec = recorder()
    const group = createBatcher(rec.write, { maxBatch: 2, maxInFlight: 2 })
    const all = ['0', '1', '2', '3', '4', '5'].map((item) => group.submit(item))
    await sleep(10)
    t.same(rec.batches, [['0', '1'], ['2', '3']], 'two batches in flight, the rest waits')
    rec.release()
    await sleep(10)
    t.same(rec.batches, [['0', '1'], ['2', '3'], ['4', '5']], 'one finished: the next leaves')
    rec.release()
    rec.release()
    t.same(await Promise.all(all), ['r0', 'r1', 'r2', 'r3', 'r4', 'r5'], 'all answered, each with its own result')
    t.equal(rec.maxConcurrent, 2, 'never more than two at once')
  })

  t.test('a batch that fails is retried one item at a time: only the bad item fails', async (t) => {
    const rec = recorder(true)
    const group = createBatcher(rec.write, { maxBatch: 100, maxInFlight: 1 })
    const submitted = ['g1', 'bad', 'g2', 'g3'].map((item) => group.submit(item))
    const outcomes = await Promise.allSettled(submitted)
    t.same(
      outcomes.map((o) => o.status),
      ['fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
      'the good items succeed, the bad one fails',
    )
    t.same(
      outcomes.map((o) => (o.status === 'fulfilled' ? o.value : (o.reason as Error).message)),
      ['rg1', 'bad item in batch', 'rg2', 'rg3'],
      'each good caller gets its own result, the bad one the error',
    )
    t.same(rec.batches[0], ['g1', 'bad', 'g2', 'g3'], 'first written together')
    t.same(rec.batches.slice(1), [['g1'], ['bad'], ['g2'], ['g3']], 'then each item alone, once, in submission order')
    t.equal(rec.maxConcurrent, 1, 'one after another: a retry never runs beside another')

    // The queue still works afterwards.
    t.equal(await group.submit('later'), 'rlater', 'a later item is written normally')
  })

  t.test('a batch that fails for a reason not an item\'s (the database is away) fails every item at once, with no retries', async (t) => {
    const rec = recorder(true)
    const group = createBatcher(rec.write, {
      maxBatch: 100,
      maxInFlight: 1,
      failsEveryItem: (error) => (error as Error).message === 'bad item in batch',
    })
    const outcomes = await Promise.allSettled(['g1', 'bad', 'g2'].map((item) => group.submit(item)))
    t.same(
      outcomes.map((o) => (o.status === 'rejected' ? (o.reason as Error).message : o.value)),
      ['bad item in batch', 'bad item in batch', 'bad item in batch'],
      'every caller gets the batch error',
    )
    t.same(rec.batches, [['g1', 'bad', 'g2']], 'one statement, no item run again')
    t.equal(await group.submit('later'), 'rlater', 'the queue still works afterwards')
  })

  t.test('stats count the statements written and the items they carried', async (t) => {
    const rec = recorder()
    const group = createBatcher(rec.write, { maxBatch: 100, maxInFlight: 1 })
    t.same({ ...group.stats }, { batches: 0, items: 0 }, 'nothing yet')
    const first = group.submit('0')
    await nextTurn()
    const queued = ['1', '2', '3'].map((item) => group.submit(item))
    await nextTurn()
    t.same({ ...group.stats }, { batches: 1, items: 1 }, 'counted when the statement starts; queued items are not')
    rec.release()
    await first
    await nextTurn()
    rec.release()
    await Promise.all(queued)
    t.same({ ...group.stats }, { batches: 2, items: 4 }, 'two statements carried four items')

    // A failed batch and its retries are statements too.
    const failing = createBatcher(recorder(true).write, { maxBatch: 100, maxInFlight: 1 })
    await Promise.allSettled(['a', 'bad', 'b'].map((item) => failing.submit(item)))
    t.same({ ...failing.stats }, { batches: 4, items: 6 }, 'one batch of three, then three single retries')
  })

  t.test('a batch that releases its place: the next batch goes out before its callers are answered', async (t) => {
    const order: string[] = []
    const done = [deferred(), deferred(), deferred()]
    let written = 0
    const group = createBatcher(
      async (items: string[], release) => {
        order.push(`write ${items.join(',')}`)
        await done[written++].promise
        order.push(`release: ${release() ? 'the next batch started' : 'none waiting'}`)
        t.notOk(release(), 'a second release does nothing')
        await nextTurn()
        return items.map((item) => `r${item}`)
      },
      { maxBatch: 100, maxInFlight: 1 },
    )
    const answered = (item: string) => group.submit(item).then((result) => void order.push(`answered ${result}`))
    const first = answered('0')
    await nextTurn()
    const second = answered('1')
    await nextTurn()
    t.same(order, ['write 0'], 'one batch in flight')

    done[0].resolve()
    await first
    t.same(order, ['write 0', 'write 1', 'release: the next batch started', 'answered r0'], "the next batch was written before the first one's caller was answered")
    const third = answered('2')
    for (let turn = 0; turn < 3; turn++) await nextTurn()
    t.same(order.slice(4), [], 'the end of the released batch frees no second place: the queued item waits for the batch in flight')

    done[1].resolve()
    await second
    done[2].resolve()
    await third
    t.same(order.slice(4), ['write 2', 'release: the next batch started', 'answered r1', 'release: none waiting', 'answered r2'], 'then one after another, as before')
  })

  t.test('a batch that fails after releasing its place is not run again: its work was done (a retry would store its messages twice)', async (t) => {
    const writes: string[][] = []
    const group = createBatcher(
      async (items: string[], release) => {
        writes.push([...items])
        release()
        throw new Error('failed after the commit')
      },
      { maxBatch: 100, maxInFlight: 1 },
    )
    const first = Promise.allSettled([group.submit('0')])
    await nextTurn()
    const queued = Promise.allSettled(['1', '2'].map((item) => group.submit(item)))
    const outcomes = [...(await first), ...(await queued)]
    t.same(outcomes.map((outcome) => outcome.status), ['rejected', 'rejected', 'rejected'], 'every caller gets the error')
    t.same(writes, [['0'], ['1', '2']], 'each batch ran once, with no item retried alone')
  })
})

t.test('the hot statements keep their generic plan (small groups were planned anew at every execution: a group send of 2 to 4 took 5.3 ms instead of 2.0) while the pool at large plans for its values', async (t) => {
  const app = await build(t)
  const channel = channelOf(app.config.databaseSchema)
  const [a, b, c, d] = await Promise.all(Array.from({ length: 4 }, () => signUp(app)))
  await befriend(app, a, c)
  await befriend(app, b, d)
  // More than the five executions after which PostgreSQL would settle on a plan by itself,
  // for the plain group statement and for the one with a reply in it.
  let first = 0
  for (let i = 0; i < 14; i++) {
    const sends: DirectSend[] = [
      { senderId: a.uid, recipientId: c.uid, text: `a${i}`, kind: 'text', replyToId: i % 2 === 1 ? first : undefined },
      { senderId: b.uid, recipientId: d.uid, text: `b${i}`, kind: 'text' },
    ]
    const { results } = await sendDirectMessages(app.hotDb, channel, sends)
    t.same(results.map((result) => result.outcome), ['sent', 'sent'], `group ${i} sent`)
    if (i === 0 && results[0].outcome === 'sent') first = results[0].id
    await Promise.all([app.eventLog.read(c.uid, 0), app.eventLog.read(d.uid, 0)]) // a group read of two
  }
  // Every connection of the hot pool, held at once.
  const connections = await Promise.all([app.hotDb.client.acquireConnection(), app.hotDb.client.acquireConnection()])
  const plans: { name: string; generic_plans: number; custom_plans: number }[] = []
  try {
    for (const connection of connections) {
      const { rows } = await connection.query('SELECT name, generic_plans::int, custom_plans::int FROM pg_prepared_statements')
      plans.push(...rows)
    }
  } finally {
    for (const connection of connections) await app.hotDb.client.releaseConnection(connection)
  }
  const executions = (name: string) => plans.filter((plan) => plan.name === name)
  t.ok(['direct_send_group', 'direct_send_group_plain', 'read_logs'].every((name) => executions(name).length > 0), 'both group sends and the group read ran on the hot pool')
  t.same(plans.filter((plan) => plan.custom_plans > 0), [], 'no statement there was planned for its values')
  const [general] = (await app.db.raw("SELECT current_setting('plan_cache_mode') AS mode")).rows
  t.equal(general.mode, 'auto', 'the pool at large still plans a prefix search for its pattern')
})

t.test('HandOverGate: a NOTIFY heard while send groups to the same user overlap is passed on when the first ends, not when the last does', async (t) => {
  const delivered: WakeUp[] = []
  const gate = new HandOverGate((wakeUp) => delivered.push(wakeUp))
  const userId = 7
  gate.begin([userId]) // group N
  gate.begin([userId]) // group N+1, started before N's replies (the batcher's release)
  gate.pass({ kind: 'users', userIds: [userId], ends: [100] }) // another writer's commit
  t.same(delivered, [], 'held while an append here may hand its entries over')
  gate.end([userId], []) // N appended nothing for the user (every send refused)
  t.same(delivered, [{ kind: 'users', userIds: [userId], ends: [100] }], "passed on at N's end: N+1 might be followed by another group, and another")

  // N+1's own NOTIFY arrives before its result: its entries are handed over at its end.
  const entry = { pos: 200 } as LogEntry
  gate.pass({ kind: 'users', userIds: [userId], ends: [200] })
  gate.end([userId], [{ userId, prev: 100, entries: [entry] }])
  t.same(delivered.slice(1), [
    { kind: 'entries', appended: [{ userId, prev: 100, entries: [entry] }] },
    { kind: 'users', userIds: [userId], ends: [200] },
  ], "N+1's entries, once its NOTIFY was heard, then the wake-up it held (old news to a poll that took them)")
})

/** The current log_head of each user. */
async function logHeads(db: Knex, ids: number[]): Promise<Map<number, number>> {
  const rows: { id: number; log_head: number }[] = await db('users').whereIn('id', ids).select('id', 'log_head')
  return new Map(rows.map((r) => [r.id, r.log_head]))
}

t.test('sendDirectMessages: one statement stores a mixed batch with per-send outcomes, in input order', async (t) => {
  const app = await build(t)
  const db = app.db
  const channel = channelOf(app.config.databaseSchema)
  const [a, b, c, r1, r2] = await Promise.all(Array.from({ length: 5 }, () => signUp(app)))
  await befriend(app, a, r1)
  await befriend(app, b, r1)
  await befriend(app, c, r2)
  await befriend(app, a, r2)
  // b and r2 are not friends.

  // An earlier committed message with a client_msg_id, to be repeated.
  const [earlier] = (await sendDirectMessages(db, channel, [{ senderId: a.uid, recipientId: r1.uid, text: 'earlier', kind: 'text', clientMsgId: 'dup-earlier' }])).results
  t.equal(earlier.outcome, 'sent', 'the earlier message was stored')
  if (earlier.outcome !== 'sent') return

  const headsBefore = await logHeads(db, [r1.uid, r2.uid])
  const maxIdBefore = Number((await db('messages').max({ m: 'id' }))[0].m)
  const [{ n: countBefore }] = (await db('messages').count({ n: '*' })) as Array<{ n: number }>

  const batch: DirectSend[] = [
    /* 0 */ { senderId: a.uid, recipientId: r1.uid, text: 'a1', kind: 'text' },
    /* 1 */ { senderId: c.uid, recipientId: r2.uid, text: 'c1', kind: 'text', clientMsgId: 'same-x' },
    /* 2 */ { senderId: b.uid, recipientId: r1.uid, text: 'b1', kind: 'sticker' },
    /* 3 */ { senderId: b.uid, recipientId: r2.uid, text: 'not a friend', kind: 'text' },
    /* 4 */ { senderId: a.uid, recipientId: r1.uid, text: 'retry', kind: 'text', clientMsgId: 'dup-earlier' },
    /* 5 */ { senderId: a.uid, recipientId: r2.uid, text: 'a2', kind: 'text', ciphertexts: { [String(r2.uid)]: 'ct' } },
    /* 6 */ { senderId: c.uid, recipientId: r2.uid, text: 'c1 again', kind: 'text', clientMsgId: 'same-x' },
    /* 7 */ { senderId: b.uid, recipientId: r1.uid, text: 'b2', kind: 'text', clientMsgId: 'b-2' },
    /* 8 */ { senderId: a.uid, recipientId: r1.uid, text: 'a3', kind: 'text' },
    /* 9 */ { senderId: c.uid, recipientId: r2.uid, text: 'c2', kind: 'text' },
  ]
  const { results } = await sendDirectMessages(db, channel, batch)

  t.equal(results.length, batch.length, 'a result per send')
  t.same(
    results.map((r) => r.outcome),
    ['sent', 'sent', 'sent', 'not_friends', 'repeated', 'sent', 'raced', 'sent', 'sent', 'sent'],
    'outcomes in input order: the same client_msg_id twice in one batch is sent once, then raced',
  )
  const repeated = results[4]
  t.same(repeated, { outcome: 'repeated', id: earlier.id, time: earlier.time }, 'the repeat names the earlier message')

  const storedAt = [0, 1, 2, 5, 7, 8, 9]
  const ids = storedAt.map((i) => {
    const r = results[i]
    return r.outcome === 'sent' ? r.id : NaN
  })
  t.ok(ids.every((id, k) => id > maxIdBefore && (k === 0 || id > ids[k - 1])), `message ids increase in input order (${ids})`)
  const now = Date.now() / 1000
  t.ok(
    storedAt.every((i) => {
      const r = results[i]
      return r.outcome === 'sent' && Math.abs(r.time - now) < 60
    }),
    'every stored send has its time in UNIX seconds',
  )

  const [{ n: countAfter }] = (await db('messages').count({ n: '*' })) as Array<{ n: number }>
  t.equal(countAfter - countBefore, storedAt.length, 'exactly the sent ones were stored')
  const stored: { id: number; sender_id: number; recipient_id: number; text: string; client_msg_id: string | null }[] = await db('messages')
    .whereIn('id', ids)
    .orderBy('id')
    .select('id', 'sender_id', 'recipient_id', 'text', 'client_msg_id')
  t.same(
    stored.map((m) => [m.id, m.sender_id, m.recipient_id, m.text, m.client_msg_id]),
    storedAt.map((i, k) => [ids[k], batch[i].senderId, batch[i].recipientId, batch[i].text, batch[i].clientMsgId ?? null]),
    'each stored message is its send (the first of the two same-x sends)',
  )
  t.equal(
    Number((await db('messages').where({ sender_id: b.uid, recipient_id: r2.uid }).count({ n: '*' }))[0].n),
    0,
    'nothing stored for the not_friends send',
  )
  t.equal(Number((await db('messages').whereIn('text', ['retry', 'c1 again']).count({ n: '*' }))[0].n), 0, 'nothing stored for the repeated and the raced send')

  // Each recipient's log: one entry per stored message, in input order, past the old head.
  const events: { user_id: number; pos: number; type: string; actor_id: number; message_id: number }[] = await db('events')
    .whereIn('message_id', ids)
    .orderBy(['user_id', 'pos'])
    .select('user_id', 'pos', 'type', 'actor_id', 'message_id')
  t.same(
    events.map((e) => e.user_id).sort(),
    storedAt.map((i) => batch[i].recipientId).sort(),
    'one event per stored message, in its recipient\'s log only',
  )
  const headsAfter = await logHeads(db, [r1.uid, r2.uid])
  for (const r of [r1, r2]) {
    const expected = storedAt.map((i, k) => [i, ids[k]] as const).filter(([i]) => batch[i].recipientId === r.uid)
    const mine = events.filter((e) => e.user_id === r.uid)
    t.same(
      mine.map((e) => [e.message_id, e.actor_id, e.type]),
      expected.map(([i, id]) => [id, batch[i].senderId, 'message']),
      `recipient ${r.login}: its messages, ordered by pos in input order`,
    )
    const positions = mine.map((e) => e.pos)
    t.ok(positions.every((p, k) => k === 0 || p > positions[k - 1]), `recipient ${r.login}: positions strictly increase (${positions})`)
    t.ok(positions[0] > headsBefore.get(r.uid)!, `recipient ${r.login}: all past the previous log_head`)
    const [{ newest }] = (await db('events').where({ user_id: r.uid }).max({ newest: 'pos' })) as Array<{ newest: number }>
    t.equal(headsAfter.get(r.uid), newest, `recipient ${r.login}: log_head is its newest position`)
    t.equal(newest, positions[positions.length - 1], `recipient ${r.login}: the batch's last message is its newest entry`)
  }
  const senderEvents = await db('events').whereIn('user_id', [a.uid, b.uid, c.uid]).whereIn('message_id', ids).count({ n: '*' })
  t.equal(Number(senderEvents[0].n), 0, 'nothing appended to the senders\' logs')

  // Dialogs: both directions of each pair point at the pair's newest message.
  const dialogs: { user_id: number; peer_id: number; last_msg_id: number }[] = await db('direct_dialogs')
    .whereIn('user_id', [a.uid, b.uid, c.uid, r1.uid, r2.uid])
    .select('user_id', 'peer_id', 'last_msg_id')
  const dialogOf = (u: TestSession, p: TestSession) => dialogs.find((d) => d.user_id === u.uid && d.peer_id === p.uid)?.last_msg_id
  const idAt = (i: number) => ids[storedAt.indexOf(i)]
  const pairs: [TestSession, TestSession, number, string][] = [
    [a, r1, idAt(8), 'a-r1: a3'],
    [b, r1, idAt(7), 'b-r1: b2'],
    [c, r2, idAt(9), 'c-r2: c2'],
    [a, r2, idAt(5), 'a-r2: a2'],
  ]
  for (const [u, p, expected, name] of pairs) {
    t.same([dialogOf(u, p), dialogOf(p, u)], [expected, expected], `direct_dialogs ${name}, both directions`)
  }
  t.same([dialogOf(b, r2), dialogOf(r2, b)], [undefined, undefined], 'no dialog for the not_friends pair')
})

t.test('sendDirectMessages: the entries a group hands to held polls are what a read of the log renders, for a plain group and for one with a file, a reply and a forward', async (t) => {
  const app = await build(t)
  const channel = channelOf(app.config.databaseSchema)
  const [a, b, r] = await Promise.all(Array.from({ length: 3 }, () => signUp(app)))
  await befriend(app, a, r)
  await befriend(app, b, r)
  const upload = await app.inject({ method: 'POST', url: '/upload_file?name=plan.txt', headers: { authorization: `Bearer ${a.token}`, 'content-type': 'text/plain' }, payload: 'the plan' })
  const fileId = upload.json().file_id as number
  const idOf = (result: DirectSendResult) => (result.outcome === 'sent' ? result.id : Number.NaN)

  const plain = await sendDirectMessages(app.hotDb, channel, [
    { senderId: a.uid, recipientId: r.uid, text: 'hello', kind: 'text' },
    { senderId: b.uid, recipientId: r.uid, text: 'secret', kind: 'text', ciphertexts: { [String(r.uid)]: 'for r' } },
  ])
  const hello = idOf(plain.results[0])
  const linked = await sendDirectMessages(app.hotDb, channel, [
    { senderId: a.uid, recipientId: r.uid, text: 'the plan', kind: 'file', fileId },
    { senderId: b.uid, recipientId: r.uid, text: 'agreed', kind: 'text', replyToId: hello },
    { senderId: b.uid, recipientId: r.uid, text: 'hello', kind: 'text', forwardedFromId: hello },
  ])
  t.same([...plain.results, ...linked.results].map((result) => result.outcome), ['sent', 'sent', 'sent', 'sent', 'sent'], 'all sent')
  for (const [name, sent] of [['plain', plain], ['with a file, a reply and a forward', linked]] as const) {
    t.equal(sent.appended.length, 1, `${name}: one log grew`)
    const [{ userId, prev, entries }] = sent.appended
    const read = await readLog(app.db, userId, prev, entries.length)
    const asRead = entries.map((entry, i) => Object.fromEntries(Object.keys(read[i] ?? {}).map((key) => [key, entry[key as keyof LogEntry]])))
    t.same(asRead, read, `${name}: every field a read renders, the same`)
  }
  t.match(
    linked.appended[0].entries,
    [{ file: { file_id: fileId } }, { reply_to: { msg_id: hello, preview: 'hello' } }, { forwarded_from: { uid: a.uid, login: a.login } }],
    'the file, the reply and the forward are shown',
  )
  t.match(plain.appended[0].entries, [{ file: null, reply_to: null, forwarded_from: null, mentioned: false }, { ciphertext: 'for r' }], 'a plain entry has none of them')
})

t.test('sendDirectMessages: both directions of a conversation in one batch', async (t) => {
  const app = await build(t)
  const db = app.db
  const channel = channelOf(app.config.databaseSchema)
  const [a, b] = await Promise.all([signUp(app), signUp(app)])
  await befriend(app, a, b)
  const heads = await logHeads(db, [a.uid, b.uid])
  const { results } = await sendDirectMessages(db, channel, [
    { senderId: a.uid, recipientId: b.uid, text: 'ab1', kind: 'text' },
    { senderId: b.uid, recipientId: a.uid, text: 'ba1', kind: 'text' },
    { senderId: a.uid, recipientId: b.uid, text: 'ab2', kind: 'text' },
  ])
  t.same(results.map((r) => r.outcome), ['sent', 'sent', 'sent'], 'all three stored')
  const ids = results.map((r) => (r.outcome === 'sent' ? r.id : NaN))
  t.ok(ids[0] < ids[1] && ids[1] < ids[2], 'ids in input order')
  const events: { user_id: number; pos: number; message_id: number }[] = await db('events').whereIn('message_id', ids).orderBy(['user_id', 'pos']).select('user_id', 'pos', 'message_id')
  t.same(
    events.filter((e) => e.user_id === b.uid).map((e) => e.message_id),
    [ids[0], ids[2]],
    'b\'s log: a\'s two messages, in order',
  )
  t.same(events.filter((e) => e.user_id === a.uid).map((e) => e.message_id), [ids[1]], 'a\'s log: b\'s message')
  const after = await logHeads(db, [a.uid, b.uid])
  for (const u of [a, b]) {
    const mine = events.filter((e) => e.user_id === u.uid)
    t.ok(mine[0].pos > heads.get(u.uid)! && after.get(u.uid) === mine[mine.length - 1].pos, `${u.login}: past the old head, log_head at the newest`)
  }
  const dialogs: { user_id: number; last_msg_id: number }[] = await db('direct_dialogs').whereIn('user_id', [a.uid, b.uid]).select('user_id', 'last_msg_id')
  t.same(
    dialogs.map((d) => d.last_msg_id),
    [ids[2], ids[2]],
    'one dialog row per direction, both at the newest message of either side',
  )
})

// Regression: which of two same-id sends in ONE batch was stored depended on the query
// plan (rows reached the INSERT in join order, and ON CONFLICT kept whichever came first).
// With a contacts table large enough to be index-scanned, the prepared statement's generic
// plan (from its 6th run) stored the SECOND one. Now a repeat within the batch is never
// numbered or stored.
t.test('sendDirectMessages: the first of two same-id sends in a batch is stored, whatever the plan (many contacts)', async (t) => {
  const app = await build(t)
  const channel = channelOf(app.config.databaseSchema)
  const [sender, receiver] = await insertUsers(app, 2, 'plan')
  await app.db('contacts').insert([
    { owner_id: sender.uid, other_id: receiver.uid, status: 1 },
    { owner_id: receiver.uid, other_id: sender.uid, status: 1 },
  ])
  // Many unrelated contacts (as in any real deployment), analyzed: contacts is index-scanned.
  await app.db.raw(`INSERT INTO users (login, password_hash) SELECT 'filler' || g, 'x' FROM generate_series(1, 300) g`)
  await app.db.raw(
    `INSERT INTO contacts (owner_id, other_id, status)
     SELECT a.id, b.id, 1 FROM users a, users b WHERE a.login LIKE 'filler%' AND b.login LIKE 'filler%' AND a.id <> b.id`,
  )
  await app.db.raw('ANALYZE users, contacts, messages')

  // One connection, so the prepared statement is re-used and its generic plan kicks in.
  const db = createKnex({ url: testDatabaseUrl(), schema: app.config.databaseSchema, poolMax: 1 })
  t.teardown(() => db.destroy())
  const rounds: string[] = []
  for (let round = 0; round < 8; round++) {
    const { results } = await sendDirectMessages(db, channel, [
      { senderId: sender.uid, recipientId: receiver.uid, text: `first-${round}`, kind: 'text', clientMsgId: `same-${round}` },
      { senderId: sender.uid, recipientId: receiver.uid, text: `second-${round}`, kind: 'text', clientMsgId: `same-${round}` },
    ])
    const stored = await db('messages').where({ sender_id: sender.uid, client_msg_id: `same-${round}` }).first('text')
    rounds.push(`${results.map((r) => r.outcome).join(',')} ${stored?.text}`)
  }
  t.same(
    rounds,
    rounds.map((_, round) => `sent,raced first-${round}`),
    'every round: the first send is stored and the second reported raced',
  )
})

t.test('sendDirectMessages: an empty batch and an oversized one', async (t) => {
  const app = await build(t)
  const channel = channelOf(app.config.databaseSchema)
  t.same(await sendDirectMessages(app.db, channel, []), { results: [], appended: [] }, 'nothing in, nothing out')
  const tooMany = Array.from({ length: 401 }, (): DirectSend => ({ senderId: 1, recipientId: 2, text: 'x', kind: 'text' }))
  await t.rejects(sendDirectMessages(app.db, channel, tooMany), RangeError, 'more than IDS_PER_NOTIFY (one NOTIFY of recipients) is refused')
})

/** The two group-commit counters of GET /metrics. */
async function groupCounters(app: App) {
  const text = await metrics(app)
  return { statements: metricValue(text, 'messenger_direct_send_statements_total'), sends: metricValue(text, 'messenger_direct_sends_total') }
}

async function send(app: App, from: TestSession, to: TestSession, msg: string, clientMsgId?: string) {
  const body: Record<string, unknown> = { to_uid: to.uid, msg }
  if (clientMsgId !== undefined) body.client_msg_id = clientMsgId
  return call(app, 'send_msg', body, from.token)
}

t.test('send_msg: sends queued behind a blocked one are grouped, answered after their commit, delivered once in order', async (t) => {
  const app = await build(t)
  const [receiver, first, ...others] = await insertUsers(app, 12, 'gc')
  for (const s of [first, ...others]) await befriend(app, s, receiver)
  const c0 = await drain(app, receiver)
  const before = await groupCounters(app)

  const trx: Knex.Transaction = await app.db.transaction()
  let committed = false
  t.teardown(async () => {
    if (!committed) await trx.rollback().catch(() => {})
  })
  const heldPid: number = (await trx.raw('SELECT pg_backend_pid() AS pid')).rows[0].pid
  await trx.raw('SELECT 1 FROM users WHERE id = ? FOR NO KEY UPDATE', [receiver.uid])

  let answered = 0
  const track = (p: ReturnType<typeof send>) =>
    p.then((reply) => {
      answered++
      return reply
    })
  const pending = [track(send(app, first, receiver, 'first', 'cm-first'))]
  t.ok((await backendsBlockedBy(app, heldPid)) > 0, 'the first send waits in the database on the receiver\'s row')
  others.forEach((s, i) => pending.push(track(send(app, s, receiver, `queued-${i}`, `cm-${i}`))))
  await sleep(300)
  t.equal(answered, 0, 'no send is answered while the lock is held')
  const during = await groupCounters(app)
  t.equal(during.statements - before.statements, 1, 'one statement in flight: the queued sends wait in the server')
  t.equal(during.sends - before.sends, 1, 'carrying the first send only')

  await trx.commit()
  committed = true
  const replies = await Promise.all(pending)
  t.same(
    replies.map((r) => r.status),
    replies.map(() => 200),
    'all answered 200 after the commit',
  )
  const after = await groupCounters(app)
  const statements = after.statements - before.statements
  const sends = after.sends - before.sends
  t.equal(sends, 11, 'eleven sends went through the group commit')
  t.ok(statements < sends, `grouped: ${statements} statements for ${sends} sends`)

  const acked = replies.map((r) => r.body.msg_id as number)
  t.equal(new Set(acked).size, acked.length, 'each send got its own msg_id')
  const { msgs, cursor } = await collect(app, receiver, c0)
  const got = msgs.map((m) => m.msg_id)
  t.same([...got].sort((x, y) => x - y), [...acked].sort((x, y) => x - y), 'the receiver gets every message exactly once')
  t.same(got, [...got].sort((x, y) => x - y), 'in msg_id order')
  t.equal(got[0], acked[0], 'the blocked first send comes first')
  t.same(
    msgs.map((m) => [m.msg_id, m.sender_uid, m.text]),
    msgs.map((m) => {
      const k = acked.indexOf(m.msg_id)
      return [m.msg_id, [first, ...others][k].uid, k === 0 ? 'first' : `queued-${k - 1}`]
    }),
    'each with its sender and text',
  )

  // A retry of one of them: the same reply, nothing new stored or delivered.
  const [{ n: storedBefore }] = (await app.db('messages').where({ recipient_id: receiver.uid }).count({ n: '*' })) as Array<{ n: number }>
  const retry = await send(app, others[3], receiver, 'queued-3', 'cm-3')
  t.equal(retry.status, 200, 'a retry with the same client_msg_id is answered 200')
  t.same([retry.body.msg_id, retry.body.time], [replies[4].body.msg_id, replies[4].body.time], 'the retry names the same msg_id and time')
  const [{ n: storedAfter }] = (await app.db('messages').where({ recipient_id: receiver.uid }).count({ n: '*' })) as Array<{ n: number }>
  t.equal(storedAfter, storedBefore, 'and stores nothing new')
  const rest = await poll(app, receiver, cursor, 0)
  t.same([rest.msg_array, rest.events_array], [[], []], 'and delivers nothing new')
})

t.test('send_msg stress: concurrent senders, every acknowledged message exactly once, in order per sender', async (t) => {
  const RECEIVERS = 8
  const SENDERS = 24
  const PER_SENDER = 10
  // Held polls end by a message, or at their timeout on the app's clock, which moves once
  // every send was acknowledged (the last polls then end at once instead of after 1 s).
  const clock = new ManualClock()
  const app = await build(t, {}, undefined, clock)
  const users = await insertUsers(app, RECEIVERS + SENDERS, 'st')
  const receivers = users.slice(0, RECEIVERS)
  const senders = users.slice(RECEIVERS)
  const receiverOf = (i: number) => receivers[i % RECEIVERS]
  await Promise.all(senders.map((s, i) => befriend(app, s, receiverOf(i))))
  const starts = await Promise.all(receivers.map((r) => drain(app, r)))
  const before = await groupCounters(app)

  // Each sender sends one message at a time (waits for each reply); all senders at once.
  const acked = new Map<number, { sender: number; index: number; text: string }>()
  const ackOrder = new Map<number, number[]>()
  const failures: unknown[] = []
  let serverErrors = 0
  let sendsDone = false
  const sendAll = async () => {
    await Promise.all(
      senders.map(async (sender, i) => {
        ackOrder.set(sender.uid, [])
        for (let k = 0; k < PER_SENDER; k++) {
          const text = `s${i}-m${k}`
          const reply = await send(app, sender, receiverOf(i), text, `st-${i}-${k}`)
          if (reply.status >= 500) serverErrors++
          if (reply.status !== 200) failures.push(reply.body)
          else {
            acked.set(reply.body.msg_id, { sender: sender.uid, index: k, text })
            ackOrder.get(sender.uid)!.push(reply.body.msg_id)
          }
        }
      }),
    )
    sendsDone = true
  }

  // Each receiver polls with cursors while the sends run, until an empty reply after the last.
  const received = receivers.map(() => [] as PolledMessage[])
  const pollLoop = async (r: number) => {
    let cursor = starts[r]
    for (let polls = 0; ; polls++) {
      const doneBefore = sendsDone
      const reply = await poll(app, receivers[r], cursor, 1)
      received[r].push(...reply.msg_array)
      cursor = reply.cursor
      if (doneBefore && reply.msg_array.length === 0 && reply.events_array.length === 0) break
      if (polls > 5000) throw new Error('poll loop runaway')
    }
  }

  const began = Date.now()
  let stopClock = () => {}
  await Promise.all([sendAll().then(() => (stopClock = keepAdvancing(t, clock, 1000))), ...receivers.map((_, r) => pollLoop(r))])
  stopClock()
  const elapsed = Date.now() - began

  t.equal(serverErrors, 0, 'no 5xx')
  t.same(failures, [], 'every send acknowledged with 200')
  t.equal(acked.size, SENDERS * PER_SENDER, 'each with its own msg_id')

  let duplicates = 0
  let missing = 0
  let foreign = 0
  let wrongContent = 0
  let notInIdOrder = 0
  receivers.forEach((_, r) => {
    const ids = received[r].map((m) => m.msg_id)
    duplicates += ids.length - new Set(ids).size
    const mine = [...acked].filter(([, a]) => senders.findIndex((s) => s.uid === a.sender) % RECEIVERS === r).map(([id]) => id)
    missing += mine.filter((id) => !ids.includes(id)).length
    foreign += ids.filter((id) => !mine.includes(id)).length
    wrongContent += received[r].filter((m) => acked.get(m.msg_id)?.text !== m.text || acked.get(m.msg_id)?.sender !== m.sender_uid).length
    if (ids.some((id, k) => k > 0 && id < ids[k - 1])) notInIdOrder++
  })
  t.equal(duplicates, 0, 'no message delivered twice')
  t.equal(missing, 0, 'no acknowledged message lost')
  t.equal(foreign, 0, 'each receiver gets only its own senders\' messages')
  t.equal(wrongContent, 0, 'every delivered message carries its sender and text')
  t.equal(notInIdOrder, 0, 'each receiver gets its messages in msg_id order')

  let outOfOrder = 0
  senders.forEach((sender, i) => {
    const delivered = received[i % RECEIVERS].filter((m) => m.sender_uid === sender.uid).map((m) => m.msg_id)
    if (JSON.stringify(delivered) !== JSON.stringify(ackOrder.get(sender.uid))) outOfOrder++
  })
  t.equal(outOfOrder, 0, 'each sender\'s messages arrive in the order they were acknowledged')

  const after = await groupCounters(app)
  const statements = after.statements - before.statements
  const sends = after.sends - before.sends
  t.equal(sends, SENDERS * PER_SENDER, 'every send went through the group commit')
  t.ok(statements < sends, `grouped under load: ${statements} statements for ${sends} sends`)
  t.comment(`receivers=${RECEIVERS} senders=${SENDERS} messages=${acked.size} statements=${statements} elapsed=${elapsed}ms`)
})
