// Presence, public keys and end-to-end ciphertexts, through HTTP on a real PostgreSQL.
//
// Presence (src/services/presence.ts), on a ManualClock with the background sweep pushed
// out of the way (PRESENCE_SWEEP_SECONDS 3600) and `presence.sweep()` called by hand:
// a poll turns a user online and tells each friend exactly once (non-friends never);
// polls within the grace period are debounced; the user goes offline once, with the time
// of the last poll, only after PRESENCE_GRACE_SECONDS without one, and comes back online
// at the next poll; a held poll keeps them online and refreshes last_seen; two processes
// sweeping the same database announce each change exactly once, whichever sweeps first.
// Public keys (src/services/keys.ts): publish / replace / delete each tell the friends
// with one `key_changed` (an identical re-publish tells nobody); get_keys for self and
// friends only; the size, key_id and per-user caps. Ciphertexts: each reader of a direct
// or room message gets only their own entry, in update_data and in get_history; direct
// messages may name only their two users. And get_presence / publish_key in the wiki dialect.
import t from 'tap'
import type { App } from '../src/app.js'
import { ManualClock } from '../src/clock.js'
import type { Config } from '../src/config.js'
import { build, call, collect, createTestSchema, drain, eventually, insertUsers, metrics, metricValue, poll, signUp, wiki, befriend, type TestSession } from './helper.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>
type Reply = Awaited<ReturnType<typeof call>>

const GRACE_SECONDS = 60
/**
 * The background sweep (every 30 s of real time, the most the grace period allows) does
 * not fire within a test: every sweep here is called by hand.
 */
const PRESENCE: Partial<Config> = { presenceSweepSeconds: GRACE_SECONDS / 2, presenceGraceSeconds: GRACE_SECONDS }
const SECOND = 1000

/** A manual clock near real time, a quarter second past a whole second (so UNIX seconds are unambiguous). */
function newClock(): ManualClock {
  return new ManualClock(Math.floor(Date.now() / SECOND) * SECOND + 250)
}
const unix = (ms: number) => Math.floor(ms / SECOND)


/** The `presence` events about `user` among `events`. */
const presenceOf = (events: Json[], user: TestSession) => events.filter((e) => e.type === 'presence' && e.ruid === user.uid)
/** The `key_changed` events among `events`. */
const keyEvents = (events: Json[]) => events.filter((e) => e.type === 'key_changed')

async function ok(command: string, promise: Promise<Reply>): Promise<Json> {
  const reply = await promise
  if (reply.status !== 200) throw new Error(`${command} failed: ${reply.status} ${JSON.stringify(reply.body)}`)
  return reply.body as Json
}

/** How `viewer` sees `user` in get_presence (undefined: not listed). */
async function presenceSeenBy(app: App, viewer: TestSession, user: TestSession): Promise<Json | undefined> {
  const body = await ok('get_presence', call(app, 'get_presence', {}, viewer.token))
  return (body.presence as Json[]).find((p) => p.uid === user.uid)
}

async function createRoom(app: App, owner: TestSession) {
  const body = await ok('create_room', call(app, 'create_room', { name: `room${Math.random().toString(36).slice(2, 8)}`, type: 'public' }, owner.token))
  return body.room.room_id as number
}
const join = (app: App, s: TestSession, roomId: number) => ok('join_room', call(app, 'join_room', { room_id: roomId }, s.token))

/** Status and error code of a reply, for one-assertion comparisons. */
function outcome(reply: Reply) {
  return { status: reply.status, error: reply.status === 200 ? undefined : (reply.body as Json).error }
}

/** Resolves once a poll of `user` is held in `app`. */
async function heldIn(app: App, user: TestSession): Promise<void> {
  await eventually(() => [...app.eventLog.polls.heldUserIds()].includes(user.uid), { what: `a poll of ${user.login} to be held`, timeoutMs: 2000 })
}

// ---------------------------------------------------------------------------------------
// Presence

t.test('a poll turns the user online: each friend gets exactly one presence event, non-friends none; get_presence agrees', async (t) => {
  const clock = newClock()
  const app = await build(t, PRESENCE, undefined, clock)
  const alice = await signUp(app)
  const bob = await signUp(app)
  const carol = await signUp(app)
  const dave = await signUp(app) // a friend of bob's, not of alice's
  await befriend(app, alice, bob)
  await befriend(app, alice, carol)
  await befriend(app, bob, dave)

  t.strictSame(await presenceSeenBy(app, bob, alice), { uid: alice.uid, login: alice.login, online: false, last_seen: null }, 'never polled: offline, never seen')

  const polledAt = clock.now()
  await poll(app, alice, 0, 0)
  await drain(app, alice) // more polls at the same moment change nothing

  for (const friend of [bob, carol]) {
    const events = presenceOf((await collect(app, friend, 0)).events, alice)
    t.equal(events.length, 1, `friend ${friend.login} gets exactly one presence event about alice`)
    t.match(events[0], { type: 'presence', online: true, last_seen: unix(polledAt), ruid: alice.uid, text: alice.login }, 'online, last_seen the poll, ruid/text alice')
  }
  t.strictSame(presenceOf((await collect(app, dave, 0)).events, alice), [], 'a non-friend is never told')
  t.strictSame(presenceOf((await collect(app, alice, 0)).events, alice), [], 'nor is the user about themselves')

  t.strictSame(await presenceSeenBy(app, bob, alice), { uid: alice.uid, login: alice.login, online: true, last_seen: unix(polledAt) }, 'get_presence: online, last_seen the poll')
  t.equal(await presenceSeenBy(app, dave, alice), undefined, 'get_presence lists friends only')
})

t.test('first polls at once are recorded in groups: a popular friend gets exactly one online event per friend, mutual friends in one group tell each other', async (t) => {
  const clock = newClock()
  const app = await build(t, PRESENCE, undefined, clock)
  const popular = await signUp(app)
  const fans = await Promise.all(Array.from({ length: 30 }, () => signUp(app)))
  for (const fan of fans) await befriend(app, fan, popular)
  await befriend(app, fans[0], fans[1])
  const before = await metrics(app)

  await Promise.all(fans.map((fan) => poll(app, fan, 0, 0)))

  const after = await metrics(app)
  const groups = metricValue(after, 'messenger_presence_groups_total') - metricValue(before, 'messenger_presence_groups_total')
  const seen = metricValue(after, 'messenger_presence_seen_total') - metricValue(before, 'messenger_presence_seen_total')
  t.equal(seen, fans.length, 'each fan recorded as seen once')
  t.ok(groups < fans.length / 2, `in groups: ${groups} transactions for ${fans.length} users`)

  const told = (await collect(app, popular, 0)).events.filter((e: Json) => e.type === 'presence')
  t.strictSame(told.map((e: Json) => e.ruid).sort((a: number, b: number) => a - b), fans.map((fan) => fan.uid).sort((a, b) => a - b), 'the popular user is told of each fan exactly once')
  t.ok(told.every((e: Json) => e.online === true), 'each online')
  t.equal(presenceOf((await collect(app, fans[0], 0)).events, fans[1]).length, 1, 'a fan is told once of a mutual friend who came online with them')
  t.equal(presenceOf((await collect(app, fans[1], 0)).events, fans[0]).length, 1, 'and the other way round')
  t.strictSame(await presenceSeenBy(app, popular, fans[29]), { uid: fans[29].uid, login: fans[29].login, online: true, last_seen: unix(clock.now()) }, 'get_presence agrees')
})

t.test("a first poll does not queue behind a sweep's record of many ended polls (a reconnect storm's first polls stalled for a second behind one of 20,000)", async (t) => {
  const clock = newClock()
  const app = await build(t, PRESENCE, undefined, clock)
  const ENDED = 3000 // 12 groups of the sweep's record
  const ended = await insertUsers(app, ENDED, 'ended')
  for (const user of ended) app.services.presence.pollEnded(user.uid)
  const newcomer = await signUp(app)

  const recordedCount = async () =>
    Number((await app.db('users').whereIn('id', ended.map((user) => user.uid)).whereNotNull('last_seen_at').count({ n: '*' }))[0].n)

  const sweeping = app.services.presence.sweep()
  await poll(app, newcomer, 0, 0)
  const recorded = await recordedCount()
  await sweeping
  t.ok(recorded < ENDED, `the first poll answered while the sweep was still recording (${recorded} of ${ENDED} recorded)`)
  t.equal((await app.db('users').where({ id: newcomer.uid }).first('online')).online, true, 'the newcomer is online')
  t.equal(await recordedCount(), ENDED, 'and the sweep recorded every ended poll')
})

t.test('debounce: polls within the grace period announce nothing; past it one offline event with the last poll time; a new poll is online again', async (t) => {
  const clock = newClock()
  const app = await build(t, PRESENCE, undefined, clock)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const { presence } = app.services

  await poll(app, alice, 0, 0)
  let seen = await collect(app, bob, 0)
  t.equal(presenceOf(seen.events, alice).length, 1, 'the first poll: one online event')

  clock.advance(30 * SECOND)
  const lastPollAt = clock.now()
  await poll(app, alice, 0, 0)
  await presence.sweep()
  seen = await collect(app, bob, seen.cursor)
  t.strictSame(presenceOf(seen.events, alice), [], 'polling again 30 s later (then a sweep): no new presence event')
  t.strictSame(await presenceSeenBy(app, bob, alice), { uid: alice.uid, login: alice.login, online: true, last_seen: unix(lastPollAt) }, 'the sweep recorded the later poll as last_seen')

  clock.advance((GRACE_SECONDS - 1) * SECOND)
  await presence.sweep()
  seen = await collect(app, bob, seen.cursor)
  t.strictSame(presenceOf(seen.events, alice), [], '59 s after the last poll: still online, nothing announced')

  clock.advance(2 * SECOND)
  await presence.sweep()
  seen = await collect(app, bob, seen.cursor)
  const offline = presenceOf(seen.events, alice)
  t.equal(offline.length, 1, '61 s after the last poll: exactly one presence event')
  t.match(offline[0], { online: false, last_seen: unix(lastPollAt), ruid: alice.uid, text: alice.login }, 'offline, last_seen the last poll')
  t.strictSame(await presenceSeenBy(app, bob, alice), { uid: alice.uid, login: alice.login, online: false, last_seen: unix(lastPollAt) }, 'get_presence: offline')

  await presence.sweep()
  seen = await collect(app, bob, seen.cursor)
  t.strictSame(presenceOf(seen.events, alice), [], 'a further sweep announces nothing more')

  const backAt = clock.now()
  await poll(app, alice, 0, 0)
  seen = await collect(app, bob, seen.cursor)
  const back = presenceOf(seen.events, alice)
  t.equal(back.length, 1, 'polling again after going offline: one presence event at once (no sweep needed)')
  t.match(back[0], { online: true, last_seen: unix(backAt) }, 'online again, last_seen the new poll')
  t.match(await presenceSeenBy(app, bob, alice), { online: true, last_seen: unix(backAt) }, 'get_presence: online again')
})

t.test('a held poll keeps the user online past the grace period, and each sweep refreshes last_seen', async (t) => {
  const clock = newClock()
  // Polls may be held longer than the 100 s the clock moves here.
  const app = await build(t, { ...PRESENCE, pollMaxSeconds: 300 }, undefined, clock)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const { presence } = app.services

  // Bob does not poll until alice's held poll ended: his own presence would wake it.
  const cursor = await drain(app, alice)
  const held = poll(app, alice, cursor, 200)
  await heldIn(app, alice)

  clock.advance(50 * SECOND)
  await presence.sweep()
  t.match(await presenceSeenBy(app, bob, alice), { online: true, last_seen: unix(clock.now()) }, 'after 50 s: online, last_seen the sweep')
  clock.advance(50 * SECOND)
  t.ok([...app.eventLog.polls.heldUserIds()].includes(alice.uid), 'the poll is still held 100 s in')
  await presence.sweep()
  const sweptAt = clock.now()
  t.strictSame(await presenceSeenBy(app, bob, alice), { uid: alice.uid, login: alice.login, online: true, last_seen: unix(sweptAt) }, 'after 100 s (past the grace period since the poll began): online, last_seen refreshed')

  // Ends the held poll: a new poll of the same session supersedes it.
  await poll(app, alice, cursor, 0)
  const reply = await held
  t.strictSame([reply.msg_array, reply.events_array], [[], []], 'the held poll ended without entries')

  let seen = await collect(app, bob, 0)
  const events = presenceOf(seen.events, alice)
  t.equal(events.length, 1, 'friends got only the online event: no offline while the poll was held')
  t.match(events[0], { online: true })

  clock.advance((GRACE_SECONDS + 1) * SECOND)
  await presence.sweep()
  seen = await collect(app, bob, seen.cursor)
  const offline = presenceOf(seen.events, alice)
  t.equal(offline.length, 1, 'once the polls ended and the grace period passed: one presence event')
  t.match(offline[0], { online: false, last_seen: unix(sweptAt) }, 'offline, last_seen when the polls ended')
})

t.test('two processes sweeping the same database concurrently: friends get each offline event exactly once', async (t) => {
  const database = await createTestSchema(t)
  const start = newClock().now()
  const clockA = new ManualClock(start)
  const clockB = new ManualClock(start)
  const appA = await build(t, PRESENCE, database, clockA)
  const appB = await build(t, PRESENCE, database, clockB)
  const bob = await signUp(appA)
  const carol = await signUp(appB)

  for (let round = 0; round < 2; round++) {
    // Fresh users each round; some poll on A, some on B.
    const users: TestSession[] = []
    for (let i = 0; i < 4; i++) {
      const user = await signUp(appA)
      await befriend(appA, user, bob)
      await befriend(appB, user, carol)
      users.push(user)
    }
    const polledAt = clockA.now()
    for (const [i, user] of users.entries()) await poll(i % 2 === 0 ? appA : appB, user, 0, 0)

    clockA.advance((GRACE_SECONDS + 1) * SECOND)
    clockB.advance((GRACE_SECONDS + 1) * SECOND)
    await Promise.all([appA.services.presence.sweep(), appB.services.presence.sweep()])

    for (const [friend, app] of [[bob, appB], [carol, appA]] as const) {
      const { events } = await collect(app, friend, 0)
      for (const user of users) {
        t.strictSame(
          presenceOf(events, user).map((e) => [e.online, e.last_seen, e.text]),
          [
            [true, unix(polledAt), user.login],
            [false, unix(polledAt), user.login],
          ],
          `round ${round}: ${friend.login} is told once online, then once offline, about ${user.login}`,
        )
      }
    }
    for (const app of [appA, appB]) {
      t.strictSame(await presenceSeenBy(app, bob, users[0]), { uid: users[0].uid, login: users[0].login, online: false, last_seen: unix(polledAt) }, `round ${round}: offline as either process sees it`)
    }
  }
})

t.test('two processes: whichever sweeps first announces the offline, the other announces nothing (its record of the old poll is past grace)', async (t) => {
  for (const first of ['A', 'B'] as const) {
    const database = await createTestSchema(t)
    const start = newClock().now()
    const clockA = new ManualClock(start)
    const clockB = new ManualClock(start)
    const appA = await build(t, PRESENCE, database, clockA)
    const appB = await build(t, PRESENCE, database, clockB)
    const alice = await signUp(appA)
    const bob = await signUp(appA)
    await befriend(appA, alice, bob)

    await poll(appA, alice, 0, 0) // the poll's end is pending in A's next sweep
    clockA.advance((GRACE_SECONDS + 1) * SECOND)
    clockB.advance((GRACE_SECONDS + 1) * SECOND)
    const order = first === 'A' ? [appA, appB] : [appB, appA]
    for (const app of order) await app.services.presence.sweep()

    const events = presenceOf((await collect(appB, bob, 0)).events, alice)
    t.strictSame(
      events.map((e) => e.online),
      [true, false],
      `${first} sweeps first: bob is told online once, then offline once, and alice is not turned online again`,
    )
    t.match(await presenceSeenBy(appA, bob, alice), { online: false }, `${first} sweeps first: alice ends offline`)
  }
})

// ---------------------------------------------------------------------------------------
// Public keys

t.test('publish_key / delete_key: friends get one key_changed per real change, non-friends none', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  const carol = await signUp(app)
  const dave = await signUp(app)
  await befriend(app, alice, bob)
  await befriend(app, alice, carol)
  await befriend(app, bob, dave)
  const cursors = new Map<TestSession, number>()
  for (const s of [alice, bob, carol, dave]) cursors.set(s, await drain(app, s))
  /** The key_changed events each of bob, carol, dave, alice got since the last look. */
  async function told() {
    const out: Json[][] = []
    for (const s of [bob, carol, dave, alice]) {
      const seen = await collect(app, s, cursors.get(s)!)
      cursors.set(s, seen.cursor)
      out.push(keyEvents(seen.events))
    }
    return out
  }

  t.strictSame(await ok('publish_key', call(app, 'publish_key', { key_id: 'phone', key: 'K1', algorithm: 'x25519' }, alice.token)), {}, 'publish_key answers {}')
  let [b, c, d, a] = await told()
  for (const [name, events] of [['bob', b], ['carol', c]] as const) {
    t.equal(events.length, 1, `${name} gets exactly one key_changed`)
    t.match(events[0], { type: 'key_changed', key_id: 'phone', action: 'published', ruid: alice.uid, text: alice.login }, `${name}: published, by alice`)
  }
  t.strictSame([d, a], [[], []], 'a non-friend and alice herself are not told')

  t.equal((await call(app, 'publish_key', { key_id: 'phone', key: 'K1', algorithm: 'x25519' }, alice.token)).status, 200, 'publishing the identical key again succeeds')
  t.strictSame(await told(), [[], [], [], []], '... and tells nobody')

  t.equal((await call(app, 'publish_key', { key_id: 'phone', key: 'K2', algorithm: 'x25519' }, alice.token)).status, 200)
  ;[b, c, d, a] = await told()
  t.strictSame([b, c].map((events) => events.map((e) => [e.key_id, e.action])), [[['phone', 'published']], [['phone', 'published']]], 'a changed key: one event to each friend')
  t.strictSame([d, a], [[], []])

  t.equal((await call(app, 'publish_key', { key_id: 'phone', key: 'K2', algorithm: 'ed25519' }, alice.token)).status, 200)
  ;[b, c] = await told()
  t.strictSame([b.length, c.length], [1, 1], 'a changed algorithm alone is a change too')

  t.strictSame(await ok('delete_key', call(app, 'delete_key', { key_id: 'phone' }, alice.token)), {}, 'delete_key answers {}')
  ;[b, c, d, a] = await told()
  for (const [name, events] of [['bob', b], ['carol', c]] as const) {
    t.equal(events.length, 1, `${name} gets exactly one key_changed for the deletion`)
    t.match(events[0], { type: 'key_changed', key_id: 'phone', action: 'deleted', ruid: alice.uid, text: alice.login })
  }
  t.strictSame([d, a], [[], []])

  t.strictSame(outcome(await call(app, 'delete_key', { key_id: 'phone' }, alice.token)), { status: 404, error: 'not_found' }, 'deleting it again: 404 not_found')
  t.strictSame(outcome(await call(app, 'delete_key', { key_id: 'never-published' }, alice.token)), { status: 404, error: 'not_found' }, 'deleting an unknown key: 404 not_found')
  t.strictSame(await told(), [[], [], [], []], 'a refused delete tells nobody')
  t.strictSame(outcome(await call(app, 'delete_key', { key_id: 'phone' }, bob.token)), { status: 404, error: 'not_found' }, 'nobody deletes a key they do not own')
})

t.test('get_keys: the owner and friends get [{key_id, algorithm, key, time}] by key_id; anyone else 403 not_friends', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  const dave = await signUp(app)
  const erin = await signUp(app)
  await befriend(app, alice, bob)
  await ok('add_contact_request', call(app, 'add_contact_request', { login: alice.login }, erin.token)) // pending, never accepted

  const before = Math.floor(Date.now() / SECOND)
  await ok('publish_key', call(app, 'publish_key', { key_id: 'phone', key: 'PHONE-KEY' }, alice.token))
  await ok('publish_key', call(app, 'publish_key', { key_id: 'laptop', key: 'LAPTOP-KEY', algorithm: 'x25519' }, alice.token))
  const after = Math.ceil(Date.now() / SECOND)

  for (const [name, viewer] of [['alice herself', alice], ['a friend', bob]] as const) {
    const reply = await call(app, 'get_keys', { uid: alice.uid }, viewer.token)
    t.equal(reply.status, 200, `${name}: 200`)
    const keys = reply.body.keys as Json[]
    t.strictSame(
      keys.map(({ time: _time, ...rest }) => rest),
      [
        { key_id: 'laptop', algorithm: 'x25519', key: 'LAPTOP-KEY' },
        { key_id: 'phone', algorithm: '', key: 'PHONE-KEY' },
      ],
      `${name}: both keys by key_id, algorithm '' when none was given`,
    )
    t.ok(keys.every((k) => Number.isInteger(k.time) && k.time >= before && k.time <= after), `${name}: time is the UNIX second of publishing`)
    t.strictSame(Object.keys(keys[0]).sort(), ['algorithm', 'key', 'key_id', 'time'], `${name}: exactly these fields`)
  }
  t.strictSame((await ok('get_keys', call(app, 'get_keys', { uid: bob.uid }, alice.token))).keys, [], 'a friend without keys: []')

  t.strictSame(outcome(await call(app, 'get_keys', { uid: alice.uid }, dave.token)), { status: 403, error: 'not_friends' }, 'a stranger: 403 not_friends')
  t.strictSame(outcome(await call(app, 'get_keys', { uid: alice.uid }, erin.token)), { status: 403, error: 'not_friends' }, 'a pending request is not friendship: 403')
  t.strictSame(outcome(await call(app, 'get_keys', { uid: erin.uid }, alice.token)), { status: 403, error: 'not_friends' }, 'nor from the other side: 403')
})

t.test('publish_key caps: key length, key_id syntax, MAX_PUBLIC_KEYS (409; replacing at the cap still works)', async (t) => {
  const app = await build(t, { maxPublicKeys: 3 })
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  let cursor = await drain(app, bob)
  const publish = (key_id: string, key: string, algorithm?: string) =>
    call(app, 'publish_key', { key_id, key, ...(algorithm !== undefined ? { algorithm } : {}) }, alice.token)

  t.strictSame(outcome(await publish('big', 'k'.repeat(8193))), { status: 400, error: 'bad_request' }, 'a key of 8193 characters: 400')
  t.strictSame(outcome(await publish('k1', 'k'.repeat(8192))), { status: 200, error: undefined }, 'a key of exactly 8192 characters is accepted')
  t.strictSame(outcome(await publish('my phone', 'K')), { status: 400, error: 'bad_request' }, 'a key_id with a space: 400')
  t.strictSame(outcome(await publish('x'.repeat(65), 'K')), { status: 400, error: 'bad_request' }, 'a key_id of 65 characters: 400')
  t.strictSame(outcome(await publish('', 'K')), { status: 400, error: 'bad_request' }, 'an empty key_id: 400')
  t.strictSame(outcome(await publish('empty', '')), { status: 400, error: 'bad_request' }, 'an empty key: 400')
  t.strictSame(outcome(await publish('alg', 'K', 'a'.repeat(65))), { status: 400, error: 'bad_request' }, 'an algorithm of 65 characters: 400')
  t.strictSame(outcome(await call(app, 'delete_key', { key_id: 'bad id' }, alice.token)), { status: 400, error: 'bad_request' }, 'delete_key checks the key_id too')

  t.equal((await publish('k2', 'K2')).status, 200)
  t.equal((await publish('dev-3.a:b_c', 'K3')).status, 200, 'letters, digits and _ . : - make a key_id')
  t.strictSame(outcome(await publish('k4', 'K4')), { status: 409, error: 'invalid_state' }, 'a fourth key beyond MAX_PUBLIC_KEYS 3: 409 invalid_state')
  let seen = await collect(app, bob, cursor)
  cursor = seen.cursor
  t.strictSame(keyEvents(seen.events).map((e) => e.key_id), ['k1', 'k2', 'dev-3.a:b_c'], 'the refused publishes told nobody')

  t.strictSame(outcome(await publish('k2', 'K2-new')), { status: 200, error: undefined }, 'replacing an existing key_id at the cap works')
  t.strictSame(outcome(await publish('k2', 'K2-new')), { status: 200, error: undefined }, 'so does re-publishing it unchanged')
  seen = await collect(app, bob, cursor)
  cursor = seen.cursor
  t.strictSame(keyEvents(seen.events).map((e) => [e.key_id, e.action]), [['k2', 'published']], 'one event for the replacement, none for the identical re-publish')
  const keys = (await ok('get_keys', call(app, 'get_keys', { uid: alice.uid }, alice.token))).keys as Json[]
  t.strictSame(keys.map((k) => [k.key_id, k.key.length > 20 ? `${k.key.length} chars` : k.key]), [['dev-3.a:b_c', 'K3'], ['k1', '8192 chars'], ['k2', 'K2-new']], 'three keys stored, k2 replaced')

  await ok('delete_key', call(app, 'delete_key', { key_id: 'k1' }, alice.token))
  t.strictSame(outcome(await publish('k4', 'K4')), { status: 200, error: undefined }, 'after deleting one, a new key_id fits again')
})

// ---------------------------------------------------------------------------------------
// Ciphertexts

t.test('a direct message with ciphertexts: each side gets only its own entry, in update_data and get_history', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  const carol = await signUp(app)
  await befriend(app, alice, bob)
  await befriend(app, alice, carol)
  let bobCursor = await drain(app, bob)

  const sent = await ok(
    'send_msg',
    call(app, 'send_msg', { to_uid: bob.uid, msg: '[encrypted]', ciphertexts: { [String(bob.uid)]: 'C1', [String(alice.uid)]: 'C0' } }, alice.token),
  )
  const seen = await collect(app, bob, bobCursor)
  bobCursor = seen.cursor
  t.equal(seen.msgs.length, 1, 'bob gets the message')
  t.match(seen.msgs[0], { msg_id: sent.msg_id, sender_uid: alice.uid, text: '[encrypted]', ciphertext: 'C1' }, "update_data carries bob's entry as ciphertext")
  t.notOk(JSON.stringify(seen.msgs[0]).includes('"C0"'), "alice's entry never reaches bob")

  const bobHistory = await ok('get_history', call(app, 'get_history', { to_uid: alice.uid }, bob.token))
  t.match(bobHistory.messages, [{ msg_id: sent.msg_id, text: '[encrypted]', ciphertext: 'C1' }], "bob's get_history: his entry")
  const aliceHistory = await ok('get_history', call(app, 'get_history', { to_uid: bob.uid }, alice.token))
  t.match(aliceHistory.messages, [{ msg_id: sent.msg_id, text: '[encrypted]', ciphertext: 'C0' }], "alice's get_history: her own entry")

  const plain = await ok('send_msg', call(app, 'send_msg', { to_uid: bob.uid, msg: 'plain' }, alice.token))
  const plainSeen = await collect(app, bob, bobCursor)
  bobCursor = plainSeen.cursor
  t.notOk('ciphertext' in plainSeen.msgs[0], 'a message without ciphertexts: no ciphertext field in update_data')
  const plainRow = (await ok('get_history', call(app, 'get_history', { to_uid: alice.uid }, bob.token))).messages.find((m: Json) => m.msg_id === plain.msg_id)
  t.equal(plainRow.ciphertext, null, '... and ciphertext null in get_history')

  const bad = async (ciphertexts: Json, what: string) => {
    t.strictSame(outcome(await call(app, 'send_msg', { to_uid: bob.uid, msg: 'x', ciphertexts }, alice.token)), { status: 400, error: 'bad_request' }, what)
  }
  await bad({ [String(bob.uid)]: 'C1', [String(carol.uid)]: 'C3' }, 'a ciphertexts key naming a third user: 400')
  await bad({ abc: 'C1' }, 'a non-numeric ciphertexts key: 400')
  await bad({ [`0${bob.uid}`]: 'C1' }, 'a uid with a leading zero: 400')
  await bad({ [String(bob.uid)]: 42 }, 'a non-string ciphertext: 400')
  const after = await collect(app, bob, bobCursor)
  t.strictSame(after.msgs, [], 'the refused sends stored nothing')
  t.equal((await ok('get_history', call(app, 'get_history', { to_uid: alice.uid }, bob.token))).messages.length, 2)
})

t.test('a room message with per-member ciphertexts: each member sees only their own entry; a member without one sees none', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  const carol = await signUp(app)
  const roomId = await createRoom(app, alice)
  await join(app, bob, roomId)
  await join(app, carol, roomId)
  const bobCursor = await drain(app, bob)
  const carolCursor = await drain(app, carol)

  const sent = await ok(
    'send_msg',
    call(app, 'send_msg', { room_id: roomId, msg: '[encrypted]', ciphertexts: { [String(alice.uid)]: 'CA', [String(bob.uid)]: 'CB' } }, alice.token),
  )
  const bobMsgs = (await collect(app, bob, bobCursor)).msgs
  t.equal(bobMsgs.length, 1)
  t.match(bobMsgs[0], { msg_id: sent.msg_id, room_id: roomId, text: '[encrypted]', ciphertext: 'CB' }, 'bob: his own entry')
  t.notOk(JSON.stringify(bobMsgs[0]).includes('"CA"'), "bob never sees alice's entry")

  const carolMsgs = (await collect(app, carol, carolCursor)).msgs
  t.equal(carolMsgs.length, 1)
  t.match(carolMsgs[0], { msg_id: sent.msg_id, room_id: roomId, text: '[encrypted]' }, 'carol gets the message')
  t.notOk('ciphertext' in carolMsgs[0], 'carol, named by no entry: no ciphertext field')
  t.notOk(/"C[AB]"/.test(JSON.stringify(carolMsgs[0])), 'nor anyone else’s entry')

  for (const [name, s, expected] of [['alice', alice, 'CA'], ['bob', bob, 'CB'], ['carol', carol, null]] as const) {
    const history = await ok('get_history', call(app, 'get_history', { room_id: roomId }, s.token))
    const row = (history.messages as Json[]).find((m) => m.msg_id === sent.msg_id)
    t.equal(row?.ciphertext, expected, `${name}'s get_history: ciphertext ${JSON.stringify(expected)}`)
  }
})

// ---------------------------------------------------------------------------------------
// Wiki dialect

t.test('wiki dialect: get_presence and publish_key (and their errors as bare strings)', async (t) => {
  const clock = newClock()
  const app = await build(t, PRESENCE, undefined, clock)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)

  const polledAt = clock.now()
  await poll(app, alice, 0, 0)
  const presence = await wiki(app, 'get_presence', {}, bob)
  t.equal(presence.status, 200)
  t.strictSame(presence.body, { presence: [{ uid: alice.uid, login: alice.login, online: true, last_seen: unix(polledAt) }] }, 'get_presence: the same reply as POST /get_presence')

  const cursor = await drain(app, bob)
  const published = await wiki(app, 'publish_key', { key_id: 'desk', key: 'WIKI-KEY', algorithm: 'x25519' }, alice)
  t.equal(published.status, 200)
  t.strictSame(published.body, {}, 'publish_key answers {}')
  const events = keyEvents((await collect(app, bob, cursor)).events)
  t.equal(events.length, 1, 'the friend is told once')
  t.match(events[0], { key_id: 'desk', action: 'published', ruid: alice.uid, text: alice.login })
  const keys = await wiki(app, 'get_keys', { uid: alice.uid }, bob)
  t.match(keys.body, { keys: [{ key_id: 'desk', algorithm: 'x25519', key: 'WIKI-KEY' }] }, 'get_keys through the wiki dialect sees it')

  const badId = await wiki(app, 'publish_key', { key_id: 'bad id', key: 'K' }, alice)
  t.equal(badId.status, 400, 'a bad key_id: 400')
  t.type(badId.body, 'string', '... with a bare string body')
  const missing = await wiki(app, 'delete_key', { key_id: 'nope' }, alice)
  t.equal(missing.status, 404, 'deleting an unknown key: 404')
  t.type(missing.body, 'string', '... with a bare string body')
  const unauthenticated = await wiki(app, 'get_presence', {})
  t.equal(unauthenticated.status, 401, 'get_presence without a session: 401')
})
