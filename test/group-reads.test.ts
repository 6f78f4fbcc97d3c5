// Group reads (src/event-log/read.ts: readLogs through src/batcher.ts):
// the long-polls that one commit wakes read their logs together, in one statement.
//
// 1. readLogs(reads) gives exactly what each read alone (readLog) gives: every user only
//    their own entries, their own ciphertext, the broadcasts made since their account
//    exists, from their own cursor, at most the limit; also the same user twice.
// 2. Through HTTP: eight members of a room hold polls; one room message wakes them all;
//    each gets the message once, and /metrics shows their reads shared statements.
import t from 'tap'
import { readLog, readLogs, type LogRead } from '../src/event-log/read.js'
import { befriend, build, call, drain, eventually, metricValue, metrics, poll, signUp, uniqueLogin, type TestSession } from './helper.js'

t.test('readLogs: each read gets exactly what it would get alone', async (t) => {
  const adminLogin = uniqueLogin('Admin')
  const app = await build(t, { adminLogins: [adminLogin.toLowerCase()] })
  const admin = await signUp(app, adminLogin)
  const early = await signUp(app)
  const [alice, bob, carol] = await Promise.all([signUp(app), signUp(app), signUp(app)])
  await befriend(app, alice, bob)
  await befriend(app, alice, carol)
  await befriend(app, early, alice)

  // A broadcast that only `early` and the admin existed for; another that everyone gets.
  const lateComer = await signUp(app)
  await befriend(app, lateComer, alice)
  const first = await call(app, 'broadcast', { msg: 'before the late comer' }, admin.token)
  t.equal(first.status, 200)
  const veryLate = await signUp(app)
  await befriend(app, veryLate, alice)
  for (let i = 0; i < 4; i++) {
    const sent = await call(
      app,
      'send_msg',
      { to_uid: bob.uid, msg: `to bob ${i}`, ciphertexts: { [String(bob.uid)]: `for bob ${i}`, [String(alice.uid)]: `for alice ${i}` } },
      alice.token,
    )
    t.equal(sent.status, 200)
    t.equal((await call(app, 'send_msg', { to_uid: alice.uid, msg: `to alice ${i}` }, bob.token)).status, 200)
    t.equal((await call(app, 'send_msg', { to_uid: alice.uid, msg: `from carol ${i}` }, carol.token)).status, 200)
  }
  t.equal((await call(app, 'broadcast', { msg: 'for everyone' }, admin.token)).status, 200)

  const bobLog = await readLog(app.db, bob.uid, 0, 1000)
  const reads: LogRead[] = [
    { userId: alice.uid, after: 0 },
    { userId: bob.uid, after: 0 },
    { userId: carol.uid, after: 0 },
    { userId: bob.uid, after: bobLog[3].pos }, // the same user again, from a later cursor
    { userId: veryLate.uid, after: 0 }, // not the first broadcast
    { userId: early.uid, after: 0 },
    { userId: lateComer.uid, after: 0 },
  ]
  for (const limit of [1000, 3]) {
    const alone = await Promise.all(reads.map((read) => readLog(app.db, read.userId, read.after, limit)))
    const together = await readLogs(app.db, reads, limit)
    t.same(together, alone, `limit ${limit}: one statement, the same entries as one read each`)
    t.ok(
      together.every((entries) => entries.length <= limit),
      `limit ${limit}: the limit holds per read`,
    )
  }
  const [, bobs] = await readLogs(app.db, reads, 1000)
  t.same(
    bobs.filter((e) => e.ciphertext !== null).map((e) => e.ciphertext),
    ['for bob 0', 'for bob 1', 'for bob 2', 'for bob 3'],
    "bob's read carries bob's ciphertexts, not alice's",
  )
  const [, , , , lates] = await readLogs(app.db, reads, 1000)
  t.same(
    lates.filter((e) => e.type === 'message').map((e) => e.text),
    ['for everyone'],
    'a user created after a broadcast does not get it in a group read either',
  )
  t.same(await readLogs(app.db, [reads[1]], 1000), [bobLog], 'a lone read is readLog')
})

t.test('polls woken by one commit read their logs together, each once', async (t) => {
  const app = await build(t)
  // The commit comes from another process on the same database: the polls here hear only
  // its NOTIFY and read (in the writer's own process they would take its entries as given).
  const writer = await build(t, {}, { url: app.config.databaseUrl!, schema: app.config.databaseSchema })
  const owner = await signUp(app)
  const members: TestSession[] = []
  for (let i = 0; i < 8; i++) members.push(await signUp(app))
  const created = await call(app, 'create_room', { name: 'group reads', type: 'private' }, owner.token)
  t.equal(created.status, 200)
  const roomId = created.body.room.room_id as number
  await app.db('room_members').insert(members.map((m) => ({ room_id: roomId, user_id: m.uid, role: 'member' })))
  const cursors = await Promise.all(members.map((m) => drain(app, m)))

  const held = members.map((m, i) => poll(app, m, cursors[i], 10))
  await eventually(() => app.eventLog.polls.size >= members.length, { what: 'every member to hold a poll', timeoutMs: 2000, everyMs: 10 }).catch(() => {})
  t.equal(app.eventLog.polls.size, members.length, 'every member holds a poll')
  const before = await metrics(app)
  const readsBefore = metricValue(before, 'messenger_log_reads_total')
  const statementsBefore = metricValue(before, 'messenger_log_read_statements_total')

  const sent = await call(writer, 'send_msg', { room_id: roomId, msg: 'to all eight' }, owner.token)
  t.equal(sent.status, 200)
  const replies = await Promise.all(held)
  t.same(
    replies.map((r) => r.msg_array.map((m) => m.msg_id)),
    members.map(() => [sent.body.msg_id]),
    'each member got the message, once',
  )
  const after = await metrics(app)
  const reads = metricValue(after, 'messenger_log_reads_total') - readsBefore
  const statements = metricValue(after, 'messenger_log_read_statements_total') - statementsBefore
  t.equal(reads, members.length, 'one read per woken poll')
  t.ok(statements < reads, `their reads shared statements (${reads} reads in ${statements})`)

  // And each member's next poll starts from its own reply's cursor: nothing again.
  const again = await Promise.all(members.map((m, i) => poll(app, m, replies[i].cursor, 0)))
  t.ok(
    again.every((r) => r.msg_array.length === 0),
    'no member gets it twice',
  )
})
