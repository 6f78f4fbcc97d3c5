// The event catalogue (src/event-log/catalogue.ts) against what the server really emits.
//
// What this file proves: every event type of the catalogue is emitted by the server, and
// each one, triggered through HTTP between real users and read back through
// `update_data`, validates against its own catalogue schema (found by its `type`), matches
// exactly one schema of the `Event` union, and carries no field its schema does not
// declare. The set of types observed equals the set of types catalogued. The variants
// (direct and room edits and clears, joins and invitations, online and offline, published
// and deleted keys) are each seen. And the wiki dialect (`POST /` with `request:
// update_data` and a cursor) delivers the same events as the modern one from the same
// cursor, which validate the same way (that dialect's replies are not trimmed by a
// serializer, so a stray field would show there).
//
// Time is a ManualClock: the call sweep is pushed out of the way and called by hand; the
// presence sweep is called by hand too (a background run fired by an advance is awaited by
// polling, a few ms at a time).
import t, { type Test } from 'tap'
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'
import type { App } from '../src/app.js'
import { ManualClock } from '../src/clock.js'
import type { Config } from '../src/config.js'
import { EVENTS } from '../src/event-log/catalogue.js'
import { befriend, build, call, collect, poll, signUp, sleep, uniqueLogin, wiki, type TestSession } from './helper.js'

type Json = Record<string, unknown>
type Reply = Awaited<ReturnType<typeof call>>

const SECOND = 1000
const RING_SECONDS = 30
const ICE_SERVERS = [{ urls: ['stun:stun.example.test:3478', 'turn:turn.example.test:3478'], username: 'u', credential: 'p' }]
const CONFIG: Partial<Config> = {
  callRingSeconds: RING_SECONDS,
  // Never fires within the test: swept by hand.
  callSweepMs: 3_600_000,
  // Fires only when the clock is moved past the grace period, at the very end.
  presenceSweepSeconds: 600,
  presenceGraceSeconds: 1200,
  iceServers: ICE_SERVERS,
}

// --- The catalogue, compiled once -------------------------------------------------------

const ajv = new Ajv({ strict: false, allErrors: true })
addFormats.default(ajv)
// Added once each (the nested `IceServer` $id is registered with the one schema holding it).
for (const schema of EVENTS) ajv.addSchema(schema)

interface Entry {
  type: string
  id: string
  properties: string[]
  validate: ValidateFunction
}

const CATALOGUE: Entry[] = EVENTS.map((schema) => {
  const type: string = schema.properties.type.const
  const id = '$id' in schema ? schema.$id : undefined
  if (typeof id !== 'string') throw new Error(`the catalogue schema of ${type} has no $id`)
  const validate = ajv.getSchema(id)
  if (!validate) throw new Error(`ajv did not register ${id}`)
  return { type, id, properties: Object.keys(schema.properties), validate }
})
const BY_TYPE = new Map(CATALOGUE.map((entry) => [entry.type, entry]))
const ALL_TYPES = CATALOGUE.map((entry) => entry.type)
/** The `Event` union as the OpenAPI document states it: exactly one branch must match. */
const validateUnion = ajv.compile({ oneOf: CATALOGUE.map((entry) => ({ $ref: entry.id })) })

const describe = (errors: ErrorObject[] | null | undefined) => (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`)

/** Every way `event` departs from the catalogue; empty when it conforms. */
function problems(event: Json): string[] {
  const found: string[] = []
  const entry = typeof event.type === 'string' ? BY_TYPE.get(event.type) : undefined
  if (!entry) return [`no catalogue schema has type ${JSON.stringify(event.type)}`]
  if (!entry.validate(event)) found.push(...describe(entry.validate.errors).map((e) => `${entry.id}: ${e}`))
  const matching = CATALOGUE.filter((other) => other.validate(event)).map((other) => other.id)
  if (matching.length !== 1 || matching[0] !== entry.id) found.push(`matches ${matching.length} union branches: ${matching.join(', ') || 'none'}`)
  if (!validateUnion(event)) found.push(`the Event union refuses it: ${describe(validateUnion.errors).slice(0, 3).join('; ')}`)
  const extra = Object.keys(event).filter((key) => !entry.properties.includes(key))
  if (extra.length > 0) found.push(`fields not in ${entry.id}: ${extra.join(', ')}`)
  return found
}

// --- Helpers ----------------------------------------------------------------------------

async function ok(what: string, promise: Promise<Reply>): Promise<Json> {
  const reply = await promise
  if (reply.status !== 200) throw new Error(`${what} failed: ${reply.status} ${JSON.stringify(reply.body)}`)
  return reply.body as Json
}

/** Resolves once a poll of `user` is held in `app`. */
async function heldIn(app: App, user: TestSession): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (app.eventLog.polls.holdsPollOf(user.uid)) return
    await sleep(5)
  }
  throw new Error('the poll was never held')
}

/** A second device of `user`: a session of its own. */
async function secondDevice(app: App, user: TestSession): Promise<TestSession> {
  const body = await ok('authorization', call(app, 'authorization', { login: user.login, password: 'secret1' }))
  const session = body.session as { session_key: number; token: string }
  return { ...user, session_key: session.session_key, token: session.token }
}

/** The finer case of an event, for the types that have several. */
function variantOf(event: Json): string | undefined {
  switch (event.type) {
    case 'message_edited':
    case 'message_deleted':
    case 'reaction':
    case 'message_pinned':
    case 'message_unpinned':
      return 'room_id' in event ? 'room' : 'direct'
    case 'history_cleared':
      return 'room_id' in event ? 'room' : 'direct'
    case 'member_joined':
      return 'invited_by' in event ? 'by invitation' : 'by join'
    case 'presence':
      return event.online ? 'online' : 'offline'
    case 'key_changed':
      return String(event.action)
    default:
      return undefined
  }
}

/**
 * Reads each device's log through update_data from where it last stopped, and checks every
 * event against the catalogue as it arrives (one assertion per event). `seen` holds the
 * types observed; `variants` the finer cases (variantOf) observed.
 */
class Inbox {
  readonly seen = new Set<string>()
  readonly variants = new Set<string>()
  private readonly cursors = new Map<string, number>()

  constructor(
    private readonly t: Test,
    private readonly app: App,
  ) {}

  private key = (device: TestSession) => `${device.uid}/${device.session_key}`

  cursor(device: TestSession): number {
    return this.cursors.get(this.key(device)) ?? 0
  }

  /** The events that arrived for `device` since its last read, all checked. */
  async read(device: TestSession): Promise<Json[]> {
    const { events, cursor } = await collect(this.app, device, this.cursor(device))
    this.cursors.set(this.key(device), cursor)
    for (const event of events) this.check(event, `${device.login}`)
    return events
  }

  /** A reply of a held poll: checked the same way. */
  accept(device: TestSession, events: Json[], cursor: number): Json[] {
    this.cursors.set(this.key(device), cursor)
    for (const event of events) this.check(event, `${device.login} (held poll)`)
    return events
  }

  /** Reads `device`'s log and returns the events of `type` (fails the test when there are none). */
  async expect(device: TestSession, type: string): Promise<Json[]> {
    const events = (await this.read(device)).filter((e) => e.type === type)
    this.t.ok(events.length > 0, `${device.login} got ${type}`)
    return events
  }

  check(event: Json, where: string): void {
    this.t.strictSame(problems(event), [], `${event.type} #${event.eid} to ${where} conforms to its catalogue schema`)
    if (typeof event.type !== 'string') return
    this.seen.add(event.type)
    const variant = variantOf(event)
    if (variant) this.variants.add(`${event.type} ${variant}`)
  }
}

const newClock = () => new ManualClock(Math.floor(Date.now() / SECOND) * SECOND + 250)

// ---------------------------------------------------------------------------------------

t.test('the catalogue itself: one schema per type, each with a literal type and an $id', async (t) => {
  t.equal(new Set(ALL_TYPES).size, ALL_TYPES.length, 'no type is catalogued twice')
  for (const entry of CATALOGUE) t.match(entry.id, /Event$/, `${entry.type}: its schema is named ${entry.id}`)
  // The checker is not vacuous: it finds each kind of departure.
  const busy = { eid: 1, type: 'call_busy', ruid: 2, text: 'bob', time: 1_700_000_000, call_id: 3 }
  t.strictSame(problems(busy), [], 'a well-formed event passes')
  t.match(problems({ ...busy, call_id: undefined }), [/CallBusyEvent: .*call_id/, /matches 0 union branches/, /union refuses/], 'a missing field is found')
  t.match(problems({ ...busy, call_id: 'x' }), [/CallBusyEvent: \/call_id must be integer/, /matches 0/, /union refuses/], 'a field of the wrong type is found')
  t.strictSame(problems({ ...busy, secret: 1 }), ['fields not in CallBusyEvent: secret'], 'a field the schema does not declare is found')
  t.strictSame(problems({ ...busy, type: 'call_lost' }), ['no catalogue schema has type "call_lost"'], 'an uncatalogued type is found')
})

t.test('every event the server emits, triggered through HTTP and read through update_data, conforms to its catalogue schema; every catalogued type is emitted', async (t) => {
  const clock = newClock()
  const app = await build(t, CONFIG, undefined, clock)
  const [alice, bob, carol, dave, erin, frank] = await Promise.all(['alice', 'bob', 'carol', 'dave', 'erin', 'frank'].map((name) => signUp(app, uniqueLogin(name))))
  const inbox = new Inbox(t, app)

  // Contacts --------------------------------------------------------------------------------
  await ok('add_contact_request', call(app, 'add_contact_request', { login: bob.login }, alice.token))
  await inbox.expect(bob, 'contact_request')
  await ok('add_contact_reply', call(app, 'add_contact_reply', { contact_uid: alice.uid, status: 1 }, bob.token))
  await inbox.expect(alice, 'contact_accepted')

  await ok('add_contact_request', call(app, 'add_contact_request', { login: alice.login }, carol.token))
  await ok('add_contact_reply', call(app, 'add_contact_reply', { contact_uid: carol.uid, status: 2 }, alice.token))
  await inbox.expect(carol, 'contact_denied')

  await ok('add_contact_request', call(app, 'add_contact_request', { login: alice.login }, dave.token))
  await ok('add_contact_reply', call(app, 'add_contact_reply', { contact_uid: alice.uid, status: 3 }, dave.token))
  await inbox.expect(alice, 'contact_cancelled')

  await befriend(app, dave, erin)
  await ok('del_contact', call(app, 'del_contact', { contact_uid: erin.uid }, dave.token))
  await inbox.expect(erin, 'contact_deleted')

  // The friendships the rest needs (carol asks again after the denial; frank never polls).
  await befriend(app, carol, alice)
  await befriend(app, bob, carol)
  await befriend(app, alice, frank)
  for (const user of [alice, bob, carol, dave, erin]) await inbox.read(user)
  // Their first polls turned them online and each friend was told (a `presence online`
  // variant, checked at the end); frank never polls until he is called.

  // Direct messages -------------------------------------------------------------------------
  const alice2 = await secondDevice(app, alice)
  await inbox.read(alice2)
  const direct = await ok('send_msg', call(app, 'send_msg', { to_uid: bob.uid, msg: 'hello bob' }, alice.token))
  await ok('edit_msg', call(app, 'edit_msg', { msg_id: direct.msg_id, msg: 'hello, bob' }, alice.token))
  t.match(await inbox.expect(bob, 'message_edited'), [{ msg_id: direct.msg_id, msg: 'hello, bob' }])
  await ok('react', call(app, 'react', { msg_id: direct.msg_id, emoji: '👍' }, bob.token))
  t.match(await inbox.expect(alice, 'reaction'), [{ msg_id: direct.msg_id, emoji: '👍', added: true, ruid: bob.uid }])
  await ok('mark_read', call(app, 'mark_read', { to_uid: alice.uid, msg_id: direct.msg_id }, bob.token))
  t.match(await inbox.expect(alice, 'messages_read'), [{ through_msg_id: direct.msg_id, ruid: bob.uid }])
  await ok('pin_msg', call(app, 'pin_msg', { msg_id: direct.msg_id }, bob.token))
  t.match(await inbox.expect(alice, 'message_pinned'), [{ msg_id: direct.msg_id, ruid: bob.uid }])
  await ok('unpin_msg', call(app, 'unpin_msg', { msg_id: direct.msg_id }, alice.token))
  t.match(await inbox.expect(bob, 'message_unpinned'), [{ msg_id: direct.msg_id, ruid: alice.uid }])
  await ok('delete_msg', call(app, 'delete_msg', { msg_id: direct.msg_id }, alice.token))
  t.match(await inbox.expect(bob, 'message_deleted'), [{ msg_id: direct.msg_id }])
  await ok('send_msg', call(app, 'send_msg', { to_uid: bob.uid, msg: 'again' }, alice.token))
  await ok('clear_history', call(app, 'clear_history', { to_uid: bob.uid }, alice.token))
  t.match(await inbox.expect(alice2, 'history_cleared'), [{ to_uid: bob.uid }], "the clearer's other device is told")

  // Rooms -----------------------------------------------------------------------------------
  const created = await ok('create_room', call(app, 'create_room', { name: 'Catalogue', type: 'public', description: 'events' }, alice.token))
  const roomId = (created.room as { room_id: number }).room_id
  await ok('join_room', call(app, 'join_room', { room_id: roomId }, bob.token))
  t.match(await inbox.expect(alice, 'member_joined'), [{ room_id: roomId, uid: bob.uid }])
  await ok('invite_to_room', call(app, 'invite_to_room', { room_id: roomId, uid: carol.uid }, alice.token))
  t.match((await inbox.expect(bob, 'member_joined')).filter((e) => e.uid === carol.uid), [{ room_id: roomId, invited_by: alice.uid }], 'members are told of the invitation')

  const inRoom = await ok('send_msg', call(app, 'send_msg', { room_id: roomId, msg: 'hello room' }, alice.token))
  await ok('edit_msg', call(app, 'edit_msg', { msg_id: inRoom.msg_id, msg: 'hello, room' }, alice.token))
  t.match(await inbox.expect(carol, 'message_edited'), [{ msg_id: inRoom.msg_id, room_id: roomId }])
  await ok('react', call(app, 'react', { msg_id: inRoom.msg_id, emoji: '🎉' }, carol.token))
  t.match(await inbox.expect(bob, 'reaction'), [{ msg_id: inRoom.msg_id, emoji: '🎉', added: true, room_id: roomId }])
  await ok('pin_msg', call(app, 'pin_msg', { msg_id: inRoom.msg_id }, alice.token))
  t.match(await inbox.expect(carol, 'message_pinned'), [{ msg_id: inRoom.msg_id, room_id: roomId }])
  await ok('unpin_msg', call(app, 'unpin_msg', { msg_id: inRoom.msg_id }, alice.token))
  t.match(await inbox.expect(carol, 'message_unpinned'), [{ msg_id: inRoom.msg_id, room_id: roomId }])
  await ok('delete_msg', call(app, 'delete_msg', { msg_id: inRoom.msg_id }, alice.token))
  t.match(await inbox.expect(carol, 'message_deleted'), [{ msg_id: inRoom.msg_id, room_id: roomId }])
  await ok('send_msg', call(app, 'send_msg', { room_id: roomId, msg: 'to be cleared' }, alice.token))
  await ok('clear_history', call(app, 'clear_history', { room_id: roomId }, alice.token))
  t.match(await inbox.expect(bob, 'history_cleared'), [{ room_id: roomId }])

  await ok('set_role', call(app, 'set_role', { room_id: roomId, uid: bob.uid, role: 'moderator' }, alice.token))
  t.match(await inbox.expect(carol, 'role_changed'), [{ room_id: roomId, uid: bob.uid, role: 'moderator' }])
  await ok('rename_room', call(app, 'rename_room', { room_id: roomId, name: 'Catalogue 2' }, bob.token))
  await inbox.expect(alice, 'room_renamed')
  await ok('describe_room', call(app, 'describe_room', { room_id: roomId, description: 'all events' }, bob.token))
  await inbox.expect(carol, 'room_described')
  await ok('leave_room', call(app, 'leave_room', { room_id: roomId }, carol.token))
  await inbox.expect(alice, 'member_left')
  await ok('kick_member', call(app, 'kick_member', { room_id: roomId, uid: bob.uid }, alice.token))
  await inbox.expect(bob, 'member_kicked')
  await ok('join_room', call(app, 'join_room', { room_id: roomId }, bob.token))
  await ok('ban_member', call(app, 'ban_member', { room_id: roomId, uid: bob.uid }, alice.token))
  await inbox.expect(bob, 'member_banned')
  await ok('join_room', call(app, 'join_room', { room_id: roomId }, dave.token))
  await ok('unban_member', call(app, 'unban_member', { room_id: roomId, uid: bob.uid }, alice.token))
  await inbox.expect(dave, 'member_unbanned')
  await ok('delete_room', call(app, 'delete_room', { room_id: roomId }, alice.token))
  t.match(await inbox.expect(dave, 'room_deleted'), [{ room_id: roomId, name: 'Catalogue 2' }])

  // Keys ------------------------------------------------------------------------------------
  await ok('publish_key', call(app, 'publish_key', { key_id: 'laptop', key: 'PUBLIC-KEY-1', algorithm: 'x25519' }, alice.token))
  t.match(await inbox.expect(bob, 'key_changed'), [{ key_id: 'laptop', action: 'published' }])
  await ok('delete_key', call(app, 'delete_key', { key_id: 'laptop' }, alice.token))
  t.match(await inbox.expect(bob, 'key_changed'), [{ key_id: 'laptop', action: 'deleted' }])

  // Calls -----------------------------------------------------------------------------------
  for (const user of [alice, bob, carol]) await inbox.read(user)
  // Bob holds a poll: the call rings, and wakes it.
  const held = poll(app, bob, inbox.cursor(bob), 10)
  await heldIn(app, bob)
  const offer = { type: 'offer', sdp: 'v=0\r\n' }
  const first = await ok('call', call(app, 'call', { to_uid: bob.uid, offer }, alice.token))
  t.equal(first.status, 'ringing', 'the call rings')
  const woken = await held
  const rang = inbox.accept(bob, woken.events_array, woken.cursor).filter((e) => e.type === 'call_request')
  t.match(rang, [{ call_id: first.call_id, offer }], "bob's held poll is woken with call_request")

  const busy = await ok('call', call(app, 'call', { to_uid: bob.uid }, carol.token))
  t.equal(busy.status, 'busy', "carol's call meanwhile is busy")
  t.match(await inbox.expect(carol, 'call_busy'), [{ call_id: busy.call_id }])

  await ok('accept_call', call(app, 'accept_call', { call_id: first.call_id, answer: { type: 'answer', sdp: 'v=0\r\n' } }, bob.token))
  t.match(await inbox.expect(alice, 'call_accepted'), [{ call_id: first.call_id, ice_servers: ICE_SERVERS }])
  await ok('call_signal', call(app, 'call_signal', { call_id: first.call_id, payload: { candidate: 'candidate:1 1 UDP 1 192.0.2.1 1 typ host' } }, alice.token))
  await inbox.expect(bob, 'call_signal')
  await ok('hang_up', call(app, 'hang_up', { call_id: first.call_id }, bob.token))
  t.match(await inbox.expect(alice, 'call_ended'), [{ call_id: first.call_id, reason: 'hangup' }])

  const second = await ok('call', call(app, 'call', { to_uid: bob.uid }, alice.token))
  t.equal(second.status, 'ringing', 'a second call rings')
  await inbox.expect(bob, 'call_request')
  await ok('reject_call', call(app, 'reject_call', { call_id: second.call_id }, bob.token))
  t.match(await inbox.expect(alice, 'call_rejected'), [{ call_id: second.call_id, reason: 'rejected' }])

  const third = await ok('call', call(app, 'call', { to_uid: bob.uid }, alice.token))
  t.equal(third.status, 'ringing', 'a third call rings')
  await inbox.expect(bob, 'call_request')
  clock.advance((RING_SECONDS + 1) * SECOND)
  await app.services.calls.sweep()
  t.match(await inbox.expect(alice, 'call_timeout'), [{ call_id: third.call_id, reason: 'timeout' }])
  await inbox.expect(bob, 'call_timeout')

  const missed = await ok('call', call(app, 'call', { to_uid: frank.uid }, alice.token))
  t.equal(missed.status, 'offline', 'frank never polled: offline')
  t.match(await inbox.expect(alice, 'call_offline'), [{ call_id: missed.call_id }])
  t.match(await inbox.expect(frank, 'call_missed'), [{ call_id: missed.call_id }])

  // Presence: offline once the grace period passed -------------------------------------------
  for (const user of [alice, bob, carol]) await inbox.read(user)
  clock.advance((1200 + 1) * SECOND) // fires the background presence sweep too
  await app.services.presence.sweep()
  let offline: Json[] = []
  for (let i = 0; i < 400 && offline.length === 0; i++) {
    offline = (await inbox.read(bob)).filter((e) => e.type === 'presence' && e.online === false)
    if (offline.length === 0) await sleep(5)
  }
  t.ok(offline.length > 0, 'bob got presence (offline) about a friend')

  // What was observed --------------------------------------------------------------------------
  const missing = ALL_TYPES.filter((type) => !inbox.seen.has(type))
  const unknown = [...inbox.seen].filter((type) => !BY_TYPE.has(type))
  t.strictSame([...inbox.seen].sort(), [...ALL_TYPES].sort(), `the types observed are the catalogue's; missing: ${missing.join(', ') || 'none'}; not catalogued: ${unknown.join(', ') || 'none'}`)
  const variants = [
    'message_edited direct', 'message_edited room', 'message_deleted direct', 'message_deleted room', 'reaction direct', 'reaction room',
    'message_pinned direct', 'message_pinned room', 'message_unpinned direct', 'message_unpinned room',
    'history_cleared direct', 'history_cleared room', 'member_joined by join', 'member_joined by invitation',
    'presence online', 'presence offline', 'key_changed published', 'key_changed deleted',
  ]
  t.strictSame([...inbox.variants].sort(), [...variants].sort(), 'every variant was seen')
})

t.test('the wiki dialect delivers the same events from the same cursor, and they conform too', async (t) => {
  const clock = newClock()
  const app = await build(t, CONFIG, undefined, clock)
  const [alice, bob] = await Promise.all([signUp(app), signUp(app)])
  await befriend(app, alice, bob)
  await poll(app, bob, 0) // bob comes online: alice is told
  const created = await ok('create_room', call(app, 'create_room', { name: 'Wiki', type: 'public' }, bob.token))
  const roomId = (created.room as { room_id: number }).room_id
  await ok('join_room', call(app, 'join_room', { room_id: roomId }, alice.token))
  await ok('rename_room', call(app, 'rename_room', { room_id: roomId, name: 'Wiki 2' }, bob.token))
  await ok('publish_key', call(app, 'publish_key', { key_id: 'k', key: 'KEY' }, bob.token))
  const sent = await ok('send_msg', call(app, 'send_msg', { to_uid: alice.uid, msg: 'hi' }, bob.token))
  await ok('edit_msg', call(app, 'edit_msg', { msg_id: sent.msg_id, msg: 'hi!' }, bob.token))
  const placed = await ok('call', call(app, 'call', { to_uid: alice.uid, offer: { sdp: 'o' } }, bob.token))
  t.equal(placed.status, 'offline', 'alice has not polled: offline (call_missed for her)')

  const modern = await poll(app, alice, 0)
  const viaWiki = await wiki(app, 'update_data', { cursor: 0, timeout: 0 }, alice)
  t.equal(viaWiki.status, 200, 'update_data through POST / answers 200')
  const events = viaWiki.body.events_array as Json[]
  t.strictSame(
    events.map((e) => e.type),
    ['contact_accepted', 'presence', 'member_joined', 'room_renamed', 'key_changed', 'message_edited', 'call_missed'],
    'the wiki reply holds the events in order',
  )
  const inbox = new Inbox(t, app)
  for (const event of events) inbox.check(event, `${alice.login} (wiki dialect)`)
  t.strictSame(events, modern.events_array, 'the same events, field for field, as the modern dialect from the same cursor')
  t.equal(viaWiki.body.cursor, modern.cursor, 'the same cursor')
})
