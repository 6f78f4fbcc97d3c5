// Administrator broadcasts (routes/messages.ts `broadcast`, src/services/messages.ts,
// src/data/events.ts appendBroadcast/readLog), through HTTP on a real PostgreSQL.
//
// A broadcast is ONE message row (kind 'broadcast', no recipient, no room) plus ONE row of
// the `broadcasts` log; every poll merges that log into the user's own log in one
// statement. This file proves, from the outside:
//   1. every user who existed gets it exactly once in msg_array (kind 'broadcast'), the
//      administrator included, and never again from the next cursor;
//   2. it costs no per-user write: `events` is untouched for 200 users, `broadcasts` +1;
//   3. only ADMIN_LOGINS may broadcast (403), the MAX_MESSAGE_CHARS cap holds (400), and
//      `client_msg_id` makes retries, racing ones too, one broadcast;
//   4. users registered after it never get it (later broadcasts they do);
//   5. exactly once under concurrency: direct messages and 20 concurrent broadcasts, polled
//      with cursors and POLL_BATCH_LIMIT 5: every message once, cursors strictly
//      increasing, broadcasts in msg_id order (and in the same order for everyone);
//   6. it wakes held polls at once;
//   7. the cursorless desktop client (wiki dialect, last_update 0) gets it once;
//   8. it wakes a poll held by another app process on the same schema;
//   9. it cannot be edited or deleted (404) and never shows in get_dialogs or a history;
//  10. broadcasts are delivered in msg_id order even when the earlier one commits late
//      (the interleaving forced with a row lock);
//  11. a new device starting from the cursor `authorization` returns ("the current end of
//      the log") does not get broadcasts the account already had.
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import type { App } from '../src/app.js'
import {
  PROMPT_MS,
  backendsWaitingOn,
  befriend,
  build,
  call,
  collect,
  createTestSchema,
  drain,
  eventually,
  insertUsers,
  keepAdvancing,
  poll,
  signUp,
  sleep,
  uniqueLogin,
  wiki,
  type TestDatabase,
  type TestSession,
  type PolledMessage,
} from './helper.js'
import { ManualClock } from '../src/clock.js'
import type { Config } from '../src/config.js'

type Json = Record<string, unknown>

/** An app whose ADMIN_LOGINS names one account, registered with a mixed-case login (logins compare lower-cased). */
async function adminApp(t: Test, overrides: Partial<Config> = {}, clock?: ManualClock) {
  const login = uniqueLogin('Admin')
  const app = await build(t, { adminLogins: [login.toLowerCase()], ...overrides }, undefined, clock)
  const admin = await signUp(app, login)
  return { app, admin }
}

async function broadcast(app: App, admin: TestSession, msg: string, clientMsgId?: string) {
  const body: Json = { msg }
  if (clientMsgId !== undefined) body.client_msg_id = clientMsgId
  return call(app, 'broadcast', body, admin.token)
}

/** What a poll shows of a broadcast. */
function expectedItem(admin: TestSession, sent: { body: Json }, text: string): PolledMessage {
  return {
    msg_id: sent.body.msg_id as number,
    sender_uid: admin.uid,
    sender_login: admin.login,
    time: sent.body.time as number,
    text,
    kind: 'broadcast',
  }
}

async function rowCount(app: App, table: string): Promise<number> {
  const [{ n }] = (await app.db(table).count({ n: '*' })) as Array<{ n: string | number }>
  return Number(n)
}

async function inBatches<T, R>(items: T[], width: number, job: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = []
  for (let i = 0; i < items.length; i += width) out.push(...(await Promise.all(items.slice(i, i + width).map((item, k) => job(item, i + k)))))
  return out
}

const jitter = (maxMs: number) => sleep(Math.floor(Math.random() * maxMs))

t.test('1. an admin broadcast reaches every existing user exactly once, the admin included', async (t) => {
  const { app, admin } = await adminApp(t)
  const users = await Promise.all(Array.from({ length: 30 }, () => signUp(app)))
  // Pairs become contacts, so every log has entries and every cursor is a real position.
  for (let i = 0; i < users.length; i += 2) await befriend(app, users[i], users[i + 1])
  const firstCursors = await Promise.all(users.map((u) => drain(app, u)))
  // Drained twice: the first round's polls put everyone online, which tells their contacts.
  const cursors = await Promise.all(users.map((u, i) => drain(app, u, firstCursors[i])))
  t.ok(
    cursors.every((c) => c > 0),
    'every user polls from a cursor past their own contact events',
  )
  const adminCursor = await drain(app, admin)

  const text = `Maintenance tonight at 23:00 — ünï ${randomBytes(3).toString('hex')}`
  const before = Math.floor(Date.now() / 1000)
  const sent = await broadcast(app, admin, text)
  t.equal(sent.status, 200, 'the admin broadcast is accepted')
  t.same(Object.keys(sent.body).sort(), ['msg_id', 'time'], 'the reply is {msg_id, time}')
  t.ok(Number.isSafeInteger(sent.body.msg_id) && sent.body.msg_id > 0, 'msg_id is a positive integer')
  t.ok(sent.body.time >= before - 1 && sent.body.time <= Math.floor(Date.now() / 1000) + 1, 'time is the send time in UNIX seconds')
  const item = expectedItem(admin, sent, text)

  const replies = await Promise.all(users.map((u, i) => poll(app, u, cursors[i])))
  t.same(
    replies.map((r) => r.msg_array),
    users.map(() => [item]),
    'each of the 30 users gets exactly one msg_array item: {msg_id, sender_uid, sender_login, time, text, kind: broadcast}',
  )
  t.same(
    replies.map((r) => r.events_array),
    users.map(() => []),
    'and no event with it',
  )
  t.ok(
    replies.every((r, i) => r.cursor > cursors[i]),
    'every user\'s cursor moved past the broadcast',
  )

  const again = await Promise.all(users.map((u, i) => poll(app, u, replies[i].cursor)))
  t.same(
    again.map((r) => [r.msg_array, r.events_array, r.cursor]),
    replies.map((r) => [[], [], r.cursor]),
    'polling again with the new cursor: nothing, not the broadcast again, cursor kept',
  )

  // The administrator existed when they sent it: their own poll carries it, once.
  const adminReply = await poll(app, admin, adminCursor)
  t.same(adminReply.msg_array, [item], "the admin's own poll includes the broadcast (like every account that existed)")
  const adminAgain = await poll(app, admin, adminReply.cursor)
  t.same(adminAgain.msg_array, [], 'and does not repeat it')

  // From cursor 0 (a full re-read): the broadcast is in the merged log exactly once.
  const full = await collect(app, users[0], 0)
  t.same(
    full.msgs.filter((m) => m.kind === 'broadcast'),
    [item],
    'a full re-read of a log from cursor 0 holds the broadcast exactly once',
  )
})

t.test('2. no per-user write storm: a broadcast to 200 users adds no events row, one broadcasts row', async (t) => {
  const { app, admin } = await adminApp(t)
  const users = await insertUsers(app, 200, 'mass')
  const c0 = await inBatches(users, 25, (u) => drain(app, u))

  const counts = async () => ({
    events: await rowCount(app, 'events'),
    broadcasts: await rowCount(app, 'broadcasts'),
    messages: await rowCount(app, 'messages'),
  })
  const before = await counts()
  const text = 'to all two hundred'
  const sent = await broadcast(app, admin, text)
  t.equal(sent.status, 200)
  const after = await counts()
  t.equal(after.events, before.events, `the events table is unchanged (${before.events} rows): no per-user insert`)
  t.equal(after.broadcasts, before.broadcasts + 1, 'the broadcasts log grew by exactly one row')
  t.equal(after.messages, before.messages + 1, 'exactly one message row was stored')

  const stored = await app.db('messages').select('kind', 'recipient_id', 'room_id', 'sender_id', 'text').where({ id: sent.body.msg_id }).first()
  t.same(stored, { kind: 'broadcast', recipient_id: null, room_id: null, sender_id: admin.uid, text }, 'the message row: kind broadcast, no recipient, no room')
  const logRows = await app.db('broadcasts').where({ message_id: sent.body.msg_id })
  t.equal(logRows.length, 1, 'one broadcasts row names the message')

  // And yet all 200 get it, once.
  const item = expectedItem(admin, sent, text)
  const got = await inBatches(users, 25, (u, i) => collect(app, u, c0[i]))
  const wrong = got.map((g, i) => ({ uid: users[i].uid, msgs: g.msgs })).filter((g) => g.msgs.length !== 1 || g.msgs[0].msg_id !== item.msg_id)
  t.same(wrong, [], 'each of the 200 users got the broadcast exactly once')
  t.same(got[0].msgs, [item], 'with the full message shape')
  t.equal(await rowCount(app, 'events'), before.events, 'polling it wrote no events either')
})

t.test('3. only admins broadcast; the text cap holds; client_msg_id retries (also racing) are one broadcast', async (t) => {
  const { app, admin } = await adminApp(t)
  const someone = await signUp(app)
  const observer = await signUp(app)
  const c0 = await drain(app, observer)
  const startBroadcasts = await rowCount(app, 'broadcasts')

  const refused = await broadcast(app, someone, 'I am not an admin')
  t.same({ status: refused.status, error: refused.body.error }, { status: 403, error: 'forbidden' }, 'a non-admin gets 403 forbidden')
  const noToken = await call(app, 'broadcast', { msg: 'anonymous' })
  t.equal(noToken.status, 401, 'without a session: 401')

  const tooLong = await broadcast(app, admin, 'x'.repeat(app.config.maxMessageChars + 1))
  t.same({ status: tooLong.status, error: tooLong.body.error }, { status: 400, error: 'bad_request' }, 'MAX_MESSAGE_CHARS + 1 characters: 400')
  const empty = await broadcast(app, admin, '')
  t.equal(empty.status, 400, 'an empty text: 400')
  t.equal(await rowCount(app, 'broadcasts'), startBroadcasts, 'nothing refused was stored')

  // The cap counts characters (code points), not UTF-16 units: exactly the cap passes.
  const atCap = '😀'.repeat(app.config.maxMessageChars)
  const capped = await broadcast(app, admin, atCap)
  t.equal(capped.status, 200, `exactly MAX_MESSAGE_CHARS (${app.config.maxMessageChars}) characters, astral ones included, are accepted`)

  // A sequential retry with the same client_msg_id.
  const first = await broadcast(app, admin, 'retry me', 'cmid-bc-1')
  t.equal(first.status, 200)
  const retry = await broadcast(app, admin, 'retry me', 'cmid-bc-1')
  t.equal(retry.status, 200, 'the retry is answered 200')
  t.same(retry.body, first.body, 'with the same msg_id and time')

  // Ten racing requests with one client_msg_id.
  const racing = await Promise.all(Array.from({ length: 10 }, () => broadcast(app, admin, 'raced', 'cmid-bc-race')))
  t.same(
    racing.map((r) => r.status),
    racing.map(() => 200),
    'every racing attempt answered 200',
  )
  const racedIds = new Set(racing.map((r) => r.body.msg_id))
  t.equal(racedIds.size, 1, 'all racing attempts name one msg_id')
  t.notOk(racedIds.has(first.body.msg_id), 'a different client_msg_id is a different broadcast')

  t.equal(await rowCount(app, 'broadcasts'), startBroadcasts + 3, 'three broadcasts stored: the capped one, the retried one, the raced one')
  const stored = await app.db('messages').where({ sender_id: admin.uid, kind: 'broadcast' }).count({ n: '*' })
  t.equal(Number((stored[0] as { n: string | number }).n), 3, 'and three broadcast messages')

  const { msgs } = await collect(app, observer, c0)
  t.same(
    msgs.map((m) => [m.msg_id, m.kind, m.text]),
    [
      [capped.body.msg_id, 'broadcast', atCap],
      [first.body.msg_id, 'broadcast', 'retry me'],
      [[...racedIds][0], 'broadcast', 'raced'],
    ],
    'an observer gets each broadcast exactly once: retries and races delivered nothing extra',
  )
})

t.test('4. a user registered after a broadcast does not get it (but gets later ones)', async (t) => {
  const { app, admin } = await adminApp(t)
  const early = await signUp(app)
  const earlyCursor = await drain(app, early)

  const old = await broadcast(app, admin, 'before you joined')
  t.equal(old.status, 200)
  await sleep(5)
  const late = await signUp(app)

  const fromZero = await collect(app, late, 0)
  t.notOk(
    fromZero.msgs.some((m) => m.msg_id === old.body.msg_id),
    'the late user\'s log from cursor 0 does not hold the earlier broadcast',
  )
  t.same(fromZero.msgs, [], 'their log from cursor 0 is empty of messages altogether')
  const earlyGot = await collect(app, early, earlyCursor)
  t.same(
    earlyGot.msgs.map((m) => m.msg_id),
    [old.body.msg_id],
    'the user who existed got it',
  )

  const fresh = await broadcast(app, admin, 'after you joined')
  t.equal(fresh.status, 200)
  const lateGot = await collect(app, late, fromZero.cursor)
  t.same(
    lateGot.msgs.map((m) => [m.msg_id, m.text, m.kind]),
    [[fresh.body.msg_id, 'after you joined', 'broadcast']],
    'a broadcast sent after they joined does reach the late user, once',
  )
  const lateAll = await collect(app, late, 0)
  t.same(
    lateAll.msgs.map((m) => m.msg_id),
    [fresh.body.msg_id],
    're-read from 0: only the later broadcast',
  )
})

t.test('5. exactly once under concurrency: direct messages and 20 concurrent broadcasts, paged cursor polls', async (t) => {
  const BATCH = 5
  const N = 8
  const BROADCASTS = 20
  const TO_RECEIVER = 6
  const TO_SENDER = 3
  // Held polls end by an entry, or at their timeout on the app's clock, which moves once
  // every send was acknowledged (the last polls then end at once instead of after 1 s).
  const clock = new ManualClock()
  const { app, admin } = await adminApp(t, { pollBatchLimit: BATCH }, clock)
  const senders = await Promise.all(Array.from({ length: N }, () => signUp(app)))
  const receivers = await Promise.all(Array.from({ length: N }, () => signUp(app)))
  const pairs: Array<[TestSession, TestSession]> = []
  for (let i = 0; i < N; i++) pairs.push([senders[i], receivers[i]], [senders[i], receivers[(i + 1) % N]])
  for (const [s, r] of pairs) await befriend(app, s, r)

  const everyone = [...senders, ...receivers, admin]
  const starts = await Promise.all(everyone.map((u) => drain(app, u)))

  interface Sent {
    from: TestSession
    to: TestSession
    text: string
    seq: number
  }
  const direct = new Map<number, Sent>()
  const broadcasts = new Map<number, string>()
  const failures: unknown[] = []
  let sendsDone = false

  const sendAll = async () => {
    // Each pair: one sequential conversation (both directions), the pairs all at once.
    const conversations = pairs.map(async ([s, r], p) => {
      const plan = [
        ...Array.from({ length: TO_RECEIVER }, () => [s, r] as const),
        ...Array.from({ length: TO_SENDER }, () => [r, s] as const),
      ].sort(() => Math.random() - 0.5)
      for (let k = 0; k < plan.length; k++) {
        const [from, to] = plan[k]
        await jitter(40)
        const text = `p${p}-k${k}-${from.uid}>${to.uid}`
        const reply = await call(app, 'send_msg', { to_uid: to.uid, msg: text }, from.token)
        if (reply.status !== 200) failures.push(reply.body)
        else direct.set(reply.body.msg_id, { from, to, text, seq: k })
      }
    })
    // The broadcasts: all in flight at once, each after a small random delay.
    const announcements = Array.from({ length: BROADCASTS }, async (_, b) => {
      await jitter(400)
      const text = `announcement ${b}`
      const reply = await broadcast(app, admin, text)
      if (reply.status !== 200) failures.push(reply.body)
      else broadcasts.set(reply.body.msg_id, text)
    })
    await Promise.all([...conversations, ...announcements])
    sendsDone = true
  }

  interface Seen {
    msgs: PolledMessage[]
    cursors: number[]
    nonEmpty: number
    oversize: number
    events: number
    polls: number
  }
  const deadline = Date.now() + 20_000
  const pollLoop = async (user: TestSession, start: number): Promise<Seen> => {
    const seen: Seen = { msgs: [], cursors: [start], nonEmpty: 0, oversize: 0, events: 0, polls: 0 }
    let cursor = start
    for (;;) {
      if (Date.now() > deadline) throw new Error(`uid ${user.uid}: messages still arriving after 20 s`)
      const doneBefore = sendsDone
      const reply = await poll(app, user, cursor, 1)
      seen.polls++
      const count = reply.msg_array.length + reply.events_array.length
      if (count > BATCH) seen.oversize++
      if (count > 0) seen.nonEmpty++
      // Contacts' presence changes (everyone starts polling) are expected; nothing else is.
      seen.events += reply.events_array.filter((e) => e.type !== 'presence').length
      seen.msgs.push(...reply.msg_array)
      seen.cursors.push(reply.cursor)
      cursor = reply.cursor
      // An empty reply to a poll begun after every send was acknowledged: all is in.
      if (doneBefore && count === 0) return seen
    }
  }

  const began = Date.now()
  let stopClock = () => {}
  const [, ...seen] = await Promise.all([sendAll().then(() => (stopClock = keepAdvancing(t, clock, 1000))), ...everyone.map((u, i) => pollLoop(u, starts[i]))])
  stopClock()
  const elapsed = Date.now() - began

  t.same(failures, [], 'every send and broadcast was acknowledged with 200')
  t.equal(direct.size, pairs.length * (TO_RECEIVER + TO_SENDER), 'every direct message got its own msg_id')
  t.equal(broadcasts.size, BROADCASTS, 'every broadcast got its own msg_id')
  const broadcastIds = [...broadcasts.keys()].sort((a, b) => a - b)

  const problems = {
    oversize: [] as number[],
    events: [] as number[],
    duplicateDirect: [] as string[],
    missingDirect: [] as string[],
    strayDirect: [] as string[],
    wrongContent: [] as string[],
    duplicateBroadcast: [] as string[],
    missingBroadcast: [] as string[],
    outOfIdOrder: [] as string[],
    conversationOrder: [] as string[],
    cursorBack: [] as number[],
    cursorStall: [] as number[],
  }
  const broadcastOrders: string[] = []
  everyone.forEach((user, u) => {
    const s = seen[u]
    if (s.oversize) problems.oversize.push(user.uid)
    if (s.events) problems.events.push(user.uid)

    const gotDirect = s.msgs.filter((m) => m.kind !== 'broadcast')
    const gotBroadcast = s.msgs.filter((m) => m.kind === 'broadcast')

    const ids = gotDirect.map((m) => m.msg_id)
    const dup = ids.filter((id, i) => ids.indexOf(id) !== i)
    if (dup.length) problems.duplicateDirect.push(`uid ${user.uid}: ${dup.join(',')}`)
    const expected = [...direct.entries()].filter(([, d]) => d.to.uid === user.uid).map(([id]) => id)
    const missing = expected.filter((id) => !ids.includes(id))
    if (missing.length) problems.missingDirect.push(`uid ${user.uid}: ${missing.join(',')}`)
    const stray = ids.filter((id) => direct.get(id)?.to.uid !== user.uid)
    if (stray.length) problems.strayDirect.push(`uid ${user.uid}: ${stray.join(',')}`)
    for (const m of gotDirect) {
      const d = direct.get(m.msg_id)
      if (d && (d.from.uid !== m.sender_uid || d.from.login !== m.sender_login || d.text !== m.text || m.kind !== 'text')) {
        problems.wrongContent.push(`msg ${m.msg_id}`)
      }
    }
    for (const m of gotBroadcast) {
      if (broadcasts.get(m.msg_id) !== m.text || m.sender_uid !== admin.uid || m.sender_login !== admin.login) problems.wrongContent.push(`broadcast ${m.msg_id}`)
    }
    // Each conversation is sequential: its messages arrive in send order.
    const bySender = new Map<number, number[]>()
    for (const m of gotDirect) {
      const d = direct.get(m.msg_id)
      if (d) bySender.set(d.from.uid, [...(bySender.get(d.from.uid) ?? []), d.seq])
    }
    for (const [from, seqs] of bySender) {
      if (seqs.some((q, i) => i > 0 && q <= seqs[i - 1])) problems.conversationOrder.push(`${from}->${user.uid}: ${seqs.join(',')}`)
    }

    const bIds = gotBroadcast.map((m) => m.msg_id)
    const bDup = bIds.filter((id, i) => bIds.indexOf(id) !== i)
    if (bDup.length) problems.duplicateBroadcast.push(`uid ${user.uid}: ${bDup.join(',')}`)
    const bMissing = broadcastIds.filter((id) => !bIds.includes(id))
    if (bMissing.length) problems.missingBroadcast.push(`uid ${user.uid}: ${bMissing.join(',')}`)
    if (bIds.some((id, i) => i > 0 && id < bIds[i - 1])) problems.outOfIdOrder.push(`uid ${user.uid}: ${bIds.join(',')}`)
    broadcastOrders.push(bIds.join(','))

    // Cursors: strictly increasing across non-empty replies, unchanged by empty ones.
    const c = s.cursors
    if (c.some((x, i) => i > 0 && x < c[i - 1])) problems.cursorBack.push(user.uid)
    const advances = c.filter((x, i) => i > 0 && x > c[i - 1]).length
    if (advances !== s.nonEmpty) problems.cursorStall.push(user.uid)
  })

  t.same(problems.oversize, [], `no reply carried more than POLL_BATCH_LIMIT (${BATCH}) items`)
  t.same(problems.events, [], 'no events besides messages (and contacts\' presence) after the start cursors')
  t.same(problems.duplicateDirect, [], 'no direct message delivered twice')
  t.same(problems.missingDirect, [], 'no acknowledged direct message lost')
  t.same(problems.strayDirect, [], 'no direct message delivered to anyone but its recipient')
  t.same(problems.wrongContent, [], 'every delivered item carries its sender, text and kind')
  t.same(problems.conversationOrder, [], 'each sequential conversation arrives in send order')
  t.same(problems.duplicateBroadcast, [], `no user saw a broadcast twice (${everyone.length} users, admin included)`)
  t.same(problems.missingBroadcast, [], `every user saw all ${BROADCASTS} broadcasts`)
  t.same(problems.cursorBack, [], 'no cursor ever went back')
  t.same(problems.cursorStall, [], 'every non-empty reply strictly advanced the cursor, every empty one kept it')
  t.equal(new Set(broadcastOrders).size, 1, 'every user saw the broadcasts in the same order')
  t.same(problems.outOfIdOrder, [], 'every user saw the broadcasts in their msg_id order')

  // Drained: one more poll from each last cursor is empty.
  const after = await Promise.all(everyone.map((u, i) => poll(app, u, seen[i].cursors[seen[i].cursors.length - 1])))
  t.ok(
    after.every((r) => r.msg_array.length === 0 && r.events_array.length === 0),
    'nothing left after the last cursors',
  )
  const polls = seen.reduce((n, s) => n + s.polls, 0)
  t.comment(`users=${everyone.length} direct=${direct.size} broadcasts=${broadcasts.size} polls=${polls} batch=${BATCH} elapsed=${elapsed}ms`)
})

t.test('6. a broadcast wakes held polls promptly', async (t) => {
  const { app, admin } = await adminApp(t)
  const users = await Promise.all(Array.from({ length: 3 }, () => signUp(app)))
  const holders = [...users, admin]
  const cursors = await Promise.all(holders.map((u) => drain(app, u)))

  const began = Date.now()
  const held = holders.map((u, i) => poll(app, u, cursors[i], 5).then((reply) => ({ reply, at: Date.now() })))
  await eventually(() => app.eventLog.polls.size === holders.length, { what: 'the polls to be held', timeoutMs: 2000 })
  await sleep(200)
  t.equal(app.eventLog.polls.size, holders.length, `all ${holders.length} polls (timeout 5) are still held`)
  const sentAt = Date.now()
  const sent = await broadcast(app, admin, 'wake up, everyone')
  t.equal(sent.status, 200)
  const answers = await Promise.all(held)
  const latest = Math.max(...answers.map((a) => a.at - sentAt))
  t.ok(latest < PROMPT_MS, `every held poll answered promptly after the broadcast (slowest ${latest} ms), well before the 5 s timeout`)
  t.ok(
    answers.every((a) => a.at - began >= 200),
    'they were really held until the broadcast',
  )
  const item = expectedItem(admin, sent, 'wake up, everyone')
  t.same(
    answers.map((a) => a.reply.msg_array),
    holders.map(() => [item]),
    'each woken poll carries the broadcast',
  )
})

t.test('7. the cursorless desktop client (wiki dialect, last_update 0) gets a broadcast once', async (t) => {
  const { app, admin } = await adminApp(t, { pollDefaultSeconds: 0 })
  const user = await signUp(app)

  const initial = await wiki(app, 'update_data', { last_update: 0 }, user)
  t.equal(initial.status, 200)
  t.same(initial.body.msg_array, [], 'nothing for the user yet')

  const sent = await broadcast(app, admin, 'hello desktop')
  t.equal(sent.status, 200)
  const first = await wiki(app, 'update_data', { last_update: 0 }, user)
  t.equal(first.status, 200)
  t.notOk('event_array' in first.body, 'no event_array key')
  t.same(first.body.msg_array, [expectedItem(admin, sent, 'hello desktop')], 'the next wiki poll delivers the broadcast')
  const second = await wiki(app, 'update_data', { last_update: 0 }, user)
  t.same(second.body.msg_array, [], 'the poll right after it does not repeat it')
  await sleep(50)
  const third = await wiki(app, 'update_data', { last_update: 0 }, user)
  t.same(third.body.msg_array, [], 'nor does a later one')

  // The admin command itself through the wiki dialect, and a second broadcast, also once.
  const viaWiki = await wiki(app, 'broadcast', { msg: 'second notice' }, admin)
  t.equal(viaWiki.status, 200, 'broadcast works through POST / too')
  const fourth = await wiki(app, 'update_data', { last_update: 0 }, user)
  t.same(
    (fourth.body.msg_array as PolledMessage[]).map((m) => [m.msg_id, m.text, m.kind]),
    [[viaWiki.body.msg_id, 'second notice', 'broadcast']],
    'the second broadcast arrives once',
  )
  const fifth = await wiki(app, 'update_data', { last_update: 0 }, user)
  t.same(fifth.body.msg_array, [], 'and is not repeated')
  const refused = await wiki(app, 'broadcast', { msg: 'nope' }, user)
  t.equal(refused.status, 403, 'a non-admin through POST /: 403')
  t.type(refused.body, 'string', 'with a bare JSON string body')
})

t.test('8. two apps on one schema: a broadcast through app A wakes a poll held on app B', async (t) => {
  const database: TestDatabase = await createTestSchema(t)
  const login = uniqueLogin('Admin')
  const appA = await build(t, { adminLogins: [login.toLowerCase()] }, database)
  const appB = await build(t, { adminLogins: [login.toLowerCase()] }, database)
  const admin = await signUp(appA, login)
  const user = await signUp(appB)
  const cursor = await drain(appB, user) // also opens app B's LISTEN connection

  const began = Date.now()
  const held = poll(appB, user, cursor, 5)
  await eventually(() => appB.eventLog.polls.size === 1, { what: 'the poll to be held on app B', timeoutMs: 2000 })
  await sleep(200)
  t.equal(appB.eventLog.polls.size, 1, 'the poll is held on app B')
  t.equal(appA.eventLog.polls.size, 0, 'and none on app A')
  const sentAt = Date.now()
  const sent = await broadcast(appA, admin, 'across processes')
  t.equal(sent.status, 200, 'broadcast through app A')
  const reply = await held
  const latency = Date.now() - sentAt
  t.ok(latency < PROMPT_MS, `app B's held poll answered promptly after the broadcast (${latency} ms), not at its 5 s timeout`)
  t.ok(Date.now() - began >= 200, 'it was really held')
  t.same(reply.msg_array, [expectedItem(admin, sent, 'across processes')], 'with the broadcast')
  const again = await poll(appA, user, reply.cursor)
  t.same(again.msg_array, [], 'and the same cursor on app A shows nothing more')
})

t.test('9. broadcasts cannot be edited or deleted and never show in dialogs or history', async (t) => {
  const { app, admin } = await adminApp(t)
  const user = await signUp(app)
  const loner = await signUp(app)
  await befriend(app, admin, user)
  const hello = await call(app, 'send_msg', { to_uid: admin.uid, msg: 'hello admin' }, user.token)
  t.equal(hello.status, 200)
  const userCursor = await drain(app, user)
  const adminCursor = await drain(app, admin)

  const text = 'immutable notice'
  const sent = await broadcast(app, admin, text)
  t.equal(sent.status, 200)
  const id = sent.body.msg_id

  for (const [who, session] of [
    ['the admin who sent it', admin],
    ['a user who received it', user],
  ] as const) {
    const edit = await call(app, 'edit_msg', { msg_id: id, msg: 'changed' }, session.token)
    t.same({ status: edit.status, error: edit.body.error }, { status: 404, error: 'not_found' }, `edit_msg by ${who}: 404`)
    const del = await call(app, 'delete_msg', { msg_id: id }, session.token)
    t.same({ status: del.status, error: del.body.error }, { status: 404, error: 'not_found' }, `delete_msg by ${who}: 404`)
  }
  const row = await app.db('messages').select('text', 'edited_at', 'deleted_at').where({ id }).first()
  t.same(row, { text, edited_at: null, deleted_at: null }, 'the stored broadcast is unchanged')

  const item = expectedItem(admin, sent, text)
  const userGot = await collect(app, user, userCursor)
  t.same(userGot.msgs, [item], 'the user still gets it, unedited')
  const changes = (events: Json[]) => events.filter((e) => e.type === 'message_edited' || e.type === 'message_deleted')
  t.same(changes(userGot.events), [], 'and no message_edited or message_deleted event')
  const adminGot = await collect(app, admin, adminCursor)
  t.same(changes(adminGot.events), [], 'the admin got no edit or delete event either')

  for (const [who, session] of [
    ['the admin', admin],
    ['a user with a dialog', user],
    ['a user without contacts', loner],
  ] as const) {
    const dialogs = await call(app, 'get_dialogs', {}, session.token)
    t.equal(dialogs.status, 200)
    const lastIds = (dialogs.body.dialogs as Array<{ last_message: PolledMessage | null }>).map((d) => d.last_message?.msg_id)
    t.notOk(lastIds.includes(id), `get_dialogs of ${who}: no dialog shows the broadcast`)
    t.notOk(JSON.stringify(dialogs.body).includes(text), `get_dialogs of ${who}: the broadcast text appears nowhere`)
  }
  const userDialogs = await call(app, 'get_dialogs', {}, user.token)
  t.same(
    (userDialogs.body.dialogs as Array<{ to_uid?: number; last_message: PolledMessage | null }>).map((d) => [d.to_uid, d.last_message?.msg_id]),
    [[admin.uid, hello.body.msg_id]],
    "the user's dialog with the admin still ends with the direct message, not the later broadcast",
  )
  t.same((await call(app, 'get_dialogs', {}, loner.token)).body, { dialogs: [], total: 0 }, 'a user without contacts has no dialog at all')

  const history = await call(app, 'get_history', { to_uid: admin.uid }, user.token)
  t.equal(history.status, 200)
  t.same(
    (history.body.messages as PolledMessage[]).map((m) => m.msg_id),
    [hello.body.msg_id],
    'the direct history with the admin does not contain the broadcast',
  )
})

t.test('10. broadcasts arrive in msg_id order even when the earlier one commits late', async (t) => {
  // Two administrators. The test holds admin one's users row FOR UPDATE, so their
  // broadcast gets its msg_id and then waits (the message's foreign key check); admin two
  // broadcasts meanwhile. Broadcast ids must grow in delivery (log) order, as message ids
  // grow in commit order within every other conversation.
  const loginOne = uniqueLogin('AdminOne')
  const loginTwo = uniqueLogin('AdminTwo')
  const app = await build(t, { adminLogins: [loginOne.toLowerCase(), loginTwo.toLowerCase()] })
  const one = await signUp(app, loginOne)
  const two = await signUp(app, loginTwo)
  const user = await signUp(app)
  const c0 = await drain(app, user)

  const blocker = await app.db.transaction()
  const safety = setTimeout(() => void blocker.rollback().catch(() => {}), 5000)
  t.teardown(async () => {
    clearTimeout(safety)
    if (!blocker.isCompleted()) await blocker.rollback().catch(() => {})
  })
  const { rows } = await blocker.raw('SELECT pg_backend_pid() AS pid')
  const blockerPid: number = rows[0].pid
  await blocker.raw('SELECT id FROM users WHERE id = ? FOR UPDATE', [one.uid])

  const firstP = broadcast(app, one, 'first')
  await eventually(
    async () => {
      const r = await app.db.raw('SELECT count(*)::int AS n FROM pg_stat_activity WHERE ? = ANY(pg_blocking_pids(pid))', [blockerPid])
      return r.rows[0].n > 0
    },
    { what: 'the first broadcast to wait on the held row', timeoutMs: 3000 },
  )
  // The second broadcast either completes now (its own lock order) or waits behind the first.
  let secondDone = false
  const secondP = broadcast(app, two, 'second').finally(() => (secondDone = true))
  await eventually(async () => secondDone || (await backendsWaitingOn(app, blockerPid)) >= 2, {
    what: 'the second broadcast to complete or to wait behind the first',
  }).catch(() => {})
  await blocker.commit()
  clearTimeout(safety)
  const [first, second] = await Promise.all([firstP, secondP])
  t.equal(first.status, 200)
  t.equal(second.status, 200)
  t.ok(first.body.msg_id < second.body.msg_id, 'the broadcast sent first has the lower msg_id')

  const { msgs } = await collect(app, user, c0)
  t.same(
    msgs.map((m) => [m.msg_id, m.text]),
    [
      [first.body.msg_id, 'first'],
      [second.body.msg_id, 'second'],
    ],
    'the user gets them in msg_id order',
  )
})

t.test('11. a new device starting from the authorization cursor does not get old broadcasts again', async (t) => {
  const { app, admin } = await adminApp(t)
  const active = await signUp(app)
  const friend = await signUp(app)
  await befriend(app, active, friend)
  const quiet = await signUp(app) // no entries of its own at all

  const activeCursor = await drain(app, active)
  const sent = await broadcast(app, admin, 'already seen')
  t.equal(sent.status, 200)
  const activeGot = await poll(app, active, activeCursor)
  t.same(
    activeGot.msg_array.map((m) => m.msg_id),
    [sent.body.msg_id],
    'the first device got the broadcast',
  )
  const quietGot = await collect(app, quiet, 0)
  t.same(
    quietGot.msgs.map((m) => m.msg_id),
    [sent.body.msg_id],
    'the quiet user got it too',
  )

  for (const [who, session, seenCursor] of [
    ['a user with entries of their own', active, activeGot.cursor],
    ['a user with no entries of their own', quiet, quietGot.cursor],
  ] as const) {
    const login = await call(app, 'authorization', { login: session.login, password: 'secret1' })
    t.equal(login.status, 200)
    const device: TestSession = { uid: login.body.session.uid, session_key: login.body.session.session_key, token: login.body.session.token, login: session.login }
    const cursor = login.body.cursor as number
    t.ok(cursor >= seenCursor, `${who}: the login cursor (${cursor}) is at or past the broadcast already delivered (${seenCursor})`)
    const fresh = await poll(app, device, cursor)
    t.same(fresh.msg_array, [], `${who}: the new device, polling from "the current end of the log", does not get the old broadcast again`)
  }
})
