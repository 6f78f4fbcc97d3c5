// Room fan-out on write (src/event-log/index.ts appendMessage, src/services/messages.ts
// sendToRoom): one room message is appended to every member's log in one statement and
// wakes every held poll through chunked NOTIFYs.
//
// 1. A 1,000-member room, every member holding an update_data long-poll: one message from
//    the owner reaches each member exactly once, never the sender, and the send latency
//    and the time until the last member's poll answered are measured and reported.
// 2. Concurrent room messages from two members plus a direct message to one of them: no
//    deadlock, and every member sees the room messages once, in history order.
// 3. The same three writers with the interleaving forced (a row lock held by the test
//    steers the timing): the direct message must not deadlock with the room message.
//
// Users are inserted directly (an argon2 hash per HTTP registration would cost ~20 s for
// 1,000 users), with sessions rows and tokens signed by the app, as the auth plugin checks.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import type { App } from '../src/app.js'
import { befriend, build, call, collect, eventually, insertUsers, poll, signUp, type TestSession, type PolledMessage } from './helper.js'

type Json = Record<string, unknown>

/** A private room of `owner`, with `members` added directly as plain members. */
async function roomWith(app: App, owner: TestSession, members: TestSession[], name: string): Promise<number> {
  const created = await call(app, 'create_room', { name, type: 'private' }, owner.token)
  if (created.status !== 200) throw new Error(`create_room failed: ${JSON.stringify(created.body)}`)
  const roomId = created.body.room.room_id as number
  await app.db('room_members').insert(members.map((m) => ({ room_id: roomId, user_id: m.uid, role: 'member' })))
  return roomId
}

/** update_data as a raw inject, so that many can be held at once. */
function holdPoll(app: App, session: TestSession, cursor: number, timeout: number) {
  return app.inject({
    method: 'POST',
    url: '/update_data',
    headers: { authorization: `Bearer ${session.token}` },
    payload: { cursor, timeout },
  })
}

async function logHeads(app: App, sessions: TestSession[]): Promise<Map<number, number>> {
  const rows: { id: number; log_head: number }[] = await app.db('users').select('id', 'log_head').whereIn('id', sessions.map((s) => s.uid))
  return new Map(rows.map((r) => [r.id, r.log_head]))
}

/** Limits an array of async jobs to `width` at a time. */
async function inBatches<T, R>(items: T[], width: number, job: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = []
  for (let i = 0; i < items.length; i += width) out.push(...(await Promise.all(items.slice(i, i + width).map(job))))
  return out
}

t.test('1,000-member room: one message wakes every held poll exactly once', async (t) => {
  const MEMBERS = 1000
  const app = await build(t)
  const owner = await signUp(app)
  const setupStart = performance.now()
  const members = await insertUsers(app, MEMBERS, 'fan')
  const roomId = await roomWith(app, owner, members, 'fan-out 1000')
  t.comment(`setup of ${MEMBERS} users, sessions and memberships: ${Math.round(performance.now() - setupStart)} ms`)

  const view = await call(app, 'room_members', { room_id: roomId, count: 1000 }, members[MEMBERS - 1].token)
  t.equal(view.status, 200, 'a directly added member is recognised (token and membership)')
  t.equal(view.body.members.length, 1000, 'the room lists its members (first page of 1,000)')

  // Fresh users: empty logs, head 0. Every member holds a poll from there.
  const heads = await logHeads(app, members)
  t.ok(members.every((m) => heads.get(m.uid) === 0), 'every member starts with an empty log')
  const ownerStart = (await poll(app, owner, 0, 0)).cursor

  const answeredAt = new Array<number>(MEMBERS)
  // Held for the longest timeout: opening 1,000 polls and letting their first reads finish
  // can take over 10 s on a busy machine, and no poll may end before the send.
  const held = members.map((m, i) =>
    holdPoll(app, m, 0, 60).then((response) => {
      answeredAt[i] = performance.now()
      return response
    }),
  )
  const holdStart = performance.now()
  await eventually(() => app.eventLog.polls.size >= MEMBERS, { what: '1,000 held polls', timeoutMs: 30_000 })
  const holdReady = performance.now()
  // The polls have subscribed; let their first (empty) log reads finish too, so the send
  // is timed against quiet pools rather than against the tail of 1,000 first reads (they
  // run on the hot path's pool, the presence records on the other).
  const pools = [app.db, app.hotDb].map((db) => (db.client as { pool: { numUsed(): number; numPendingAcquires(): number } }).pool)
  const idle = () => pools.every((pool) => pool.numUsed() === 0 && pool.numPendingAcquires() === 0)
  await eventually(idle, { what: 'idle database pools', timeoutMs: 30_000 })
  t.comment(`1,000 polls held after ${Math.round(holdReady - holdStart)} ms (pools idle after ${Math.round(performance.now() - holdStart)} ms)`)
  t.equal(app.eventLog.polls.size, MEMBERS, 'exactly one held poll per member')
  t.equal(answeredAt.filter((x) => x !== undefined).length, 0, 'no poll answered before the send')

  const text = `hello 1000 ${randomBytes(3).toString('hex')}`
  const sendStart = performance.now()
  const sent = await call(app, 'send_msg', { room_id: roomId, msg: text }, owner.token)
  const sendDone = performance.now()
  t.equal(sent.status, 200, 'the owner sends one message to the room')
  const msgId = sent.body.msg_id as number

  const responses = await Promise.all(held)
  const lastAnswer = Math.max(...answeredAt)
  const sendLatency = sendDone - sendStart
  const toLast = lastAnswer - sendStart
  const sortedDelays = answeredAt.map((a) => a - sendStart).sort((a, b) => a - b)
  const pct = (p: number) => Math.round(sortedDelays[Math.min(MEMBERS - 1, Math.floor((p / 100) * MEMBERS))])
  t.comment(`send_msg latency (request to 200): ${Math.round(sendLatency)} ms`)
  t.comment(`send start to the last member's poll answered: ${Math.round(toLast)} ms (p50 ${pct(50)} ms, p90 ${pct(90)} ms, p99 ${pct(99)} ms)`)

  const badStatus = responses.filter((r) => r.statusCode !== 200).map((r) => `${r.statusCode} ${r.body}`)
  t.same(badStatus.slice(0, 5), [], 'every held poll answered 200')
  const replies = responses.map((r) => r.json() as { cursor: number; msg_array: PolledMessage[]; events_array: Json[] })
  const early = answeredAt.filter((a) => a < sendStart).length
  t.equal(early, 0, 'no poll answered before the send started')
  const wrong = replies
    .map((reply, i) => ({ uid: members[i].uid, reply }))
    .filter(({ reply }) => {
      const m = reply.msg_array
      return reply.events_array.length !== 0 || m.length !== 1 || m[0].msg_id !== msgId || m[0].room_id !== roomId || m[0].text !== text || m[0].sender_uid !== owner.uid
    })
  t.equal(wrong.length, 0, 'every one of the 1,000 members got exactly that message, with its room_id, in its held poll')
  if (wrong.length > 0) t.comment(`first wrong replies: ${JSON.stringify(wrong.slice(0, 3))}`)
  t.ok(toLast < 5000, `the last member had it within 5 s (took ${Math.round(toLast)} ms; target 1 s on a quiet machine)`)

  // Exactly once: polling on from each returned cursor finds nothing more.
  const again = await inBatches(members, 250, (m) => poll(app, m, replies[members.indexOf(m)].cursor, 0))
  const repeats = again.filter((r) => r.msg_array.length > 0 || r.events_array.length > 0).length
  t.equal(repeats, 0, 'no member gets it twice (the next poll from the returned cursor is empty)')
  t.ok(again.every((r, i) => r.cursor === replies[i].cursor), 'and keeps each cursor')

  // Never the sender.
  const ownerMsgs = (await collect(app, owner, ownerStart)).msgs
  t.same(ownerMsgs.filter((m) => m.msg_id === msgId), [], "the sender's own log does not have it")
  const [{ entries, users }] = await app.db('events').where({ message_id: msgId }).select(app.db.raw('count(*)::int AS entries, count(DISTINCT user_id)::int AS users'))
  t.same({ entries, users }, { entries: MEMBERS, users: MEMBERS }, 'the message was appended once to each of the 1,000 recipients')
  t.equal(app.eventLog.polls.size, 0, 'no poll left held')
})

/** The room's history, oldest first, as a member reads it. */
async function roomHistory(app: App, reader: TestSession, roomId: number): Promise<{ msg_id: number; sender_uid: number }[]> {
  const history = await call(app, 'get_history', { room_id: roomId, count: 100 }, reader.token)
  if (history.status !== 200) throw new Error(`get_history failed: ${JSON.stringify(history.body)}`)
  return history.body.messages as { msg_id: number; sender_uid: number }[]
}

t.test('200-member room: two concurrent room messages and a direct message, no deadlock, history order everywhere', async (t) => {
  const ROUNDS = 30
  const app = await build(t)
  const owner = await signUp(app)
  const members = await insertUsers(app, 199, 'duo')
  const everyone = [owner, ...members]
  const roomId = await roomWith(app, owner, members, 'fan-out 200')
  // Room senders A and B with high ids; the direct message goes to A from Z, the member
  // with the lowest id: Z's and A's rows are both among the room messages' recipients.
  const A = members[members.length - 1]
  const B = members[members.length - 2]
  const Z = members[0]
  await befriend(app, Z, A)
  const starts = await logHeads(app, everyone)

  const failures: string[] = []
  const sentDirect: number[] = []
  const began = performance.now()
  for (let round = 0; round < ROUNDS; round++) {
    const replies = await Promise.all([
      call(app, 'send_msg', { room_id: roomId, msg: `r${round} from A` }, A.token),
      call(app, 'send_msg', { room_id: roomId, msg: `r${round} from B` }, B.token),
      call(app, 'send_msg', { to_uid: A.uid, msg: `r${round} Z to A` }, Z.token),
    ])
    replies.forEach((r, i) => {
      if (r.status !== 200) failures.push(`round ${round} send ${i}: ${r.status} ${JSON.stringify(r.body)}`)
    })
    if (replies[2].status === 200) sentDirect.push(replies[2].body.msg_id)
  }
  t.comment(`${ROUNDS} rounds of 3 concurrent sends in ${Math.round(performance.now() - began)} ms`)
  t.same(failures, [], 'every send completed with 200 (no deadlock)')

  const history = await roomHistory(app, owner, roomId)
  const ids = history.map((m) => m.msg_id)
  t.same(ids, [...ids].sort((x, y) => x - y), 'the history is in msg_id order')
  const fromA = history.filter((m) => m.sender_uid === A.uid).length
  const fromB = history.filter((m) => m.sender_uid === B.uid).length
  t.same([fromA, fromB], [ROUNDS, ROUNDS], "the history holds each sender's messages")

  const drained = await inBatches(everyone, 50, async (m) => ({ m, msgs: (await collect(app, m, starts.get(m.uid)!)).msgs }))
  let badOrder = 0
  let badDirect = 0
  for (const { m, msgs } of drained) {
    // Exactly once and in history order: the room messages of the member's log are the
    // history minus the member's own messages, in the same order.
    const got = msgs.filter((x) => x.room_id === roomId).map((x) => x.msg_id)
    const expected = history.filter((x) => x.sender_uid !== m.uid).map((x) => x.msg_id)
    if (JSON.stringify(got) !== JSON.stringify(expected) && badOrder++ < 3) {
      t.comment(`member ${m.uid}: log ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}`)
    }
    const direct = msgs.filter((x) => x.room_id === undefined).map((x) => x.msg_id)
    if (JSON.stringify(direct) !== JSON.stringify(m.uid === A.uid ? sentDirect : [])) badDirect++
  }
  t.equal(badOrder, 0, "every member got the others' room messages exactly once, in the order of the room history")
  t.equal(badDirect, 0, 'only A got the direct messages, each once, in send order')
})

t.test('a direct message racing a room message (forced interleaving) does not deadlock', async (t) => {
  const app = await build(t)
  const owner = await signUp(app)
  const members = await insertUsers(app, 50, 'lock')
  const roomId = await roomWith(app, owner, members, 'deadlock probe')
  const W = members[0] // a recipient whose row the test holds for a moment
  const Z = members[1] // writes directly to A; locked by the fan-out after W
  const A = members[members.length - 1] // sends to the room
  await befriend(app, Z, A)

  // Another writer holds W's row (as any concurrent append to W's log would), so the room
  // message stops in its fan-out after storing the message and before it reaches Z.
  let releaseW!: () => void
  const wReleased = new Promise<void>((resolve) => (releaseW = resolve))
  let holderPid = 0
  const holder = app.db.transaction(async (trx) => {
    holderPid = (await trx.raw('SELECT pg_backend_pid() AS pid')).rows[0].pid
    await trx.raw('SELECT id FROM users WHERE id = ? FOR UPDATE', [W.uid])
    await wReleased
  })
  await eventually(() => holderPid !== 0, { what: 'the row holder', timeoutMs: 5000 })

  const blockedBy = async (pid: number): Promise<number[]> =>
    (await app.db.raw('SELECT pid FROM pg_stat_activity WHERE ? = ANY(pg_blocking_pids(pid))', [pid])).rows.map((r: { pid: number }) => r.pid)

  let roomSend: ReturnType<typeof call> | undefined
  let directSend: ReturnType<typeof call> | undefined
  try {
    roomSend = call(app, 'send_msg', { room_id: roomId, msg: 'to the room' }, A.token)
    let roomPid = 0
    await eventually(async () => ([roomPid] = await blockedBy(holderPid)).length > 0 && roomPid > 0, { what: 'the room message to wait for W', timeoutMs: 5000 })

    // Now the direct message Z -> A: it locks Z and A, in id order.
    let directDone = false
    directSend = call(app, 'send_msg', { to_uid: A.uid, msg: 'to A' }, Z.token).finally(() => (directDone = true))
    await eventually(async () => directDone || (await blockedBy(roomPid)).length > 0, { what: 'the direct message to finish or to wait for the room message', timeoutMs: 5000 })
    t.comment(directDone ? 'the direct message went through at once' : 'the direct message waits for the room message (it holds Z, wants A)')
  } finally {
    releaseW()
    await holder
  }
  const [room, direct] = await Promise.all([roomSend!, directSend!])
  t.equal(room.status, 200, `the room message is stored (${room.status} ${room.status === 200 ? '' : JSON.stringify(room.body)})`)
  t.equal(direct.status, 200, `the direct message is stored (${direct.status} ${direct.status === 200 ? '' : JSON.stringify(direct.body)})`)
})

// A room's append of 1,000 entries looks costly to the planner, which then JIT-compiles it:
// 70 of its 143 ms on a PostgreSQL with JIT. The app's connections turn JIT off.
t.test("the app's database connections run without JIT", async (t) => {
  const app = await build(t)
  const { rows } = await app.db.raw('SHOW jit')
  t.equal(rows[0].jit, 'off')
})
