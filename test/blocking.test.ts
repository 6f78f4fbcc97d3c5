// Blocking (block_user / unblock_user / list_blocked, src/services/blocks.ts): a blocked
// user's direct messages (the single-send and the group statement alike), calls, contact
// requests and room invitations get the answer anyone else would get and reach nobody;
// neither sees the other's presence; history stays; unblocking restores what the contact
// status allows; both dialects.
import t from 'tap'
import { ManualClock } from '../src/clock.js'
import { befriend, build, call, collect, drain, ok, poll, signUp, wiki } from './helper.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>


const answer = (reply: { status: number; body: unknown }) => ({ status: reply.status, body: reply.body })

t.test('direct messages and calls: a blocked friend gets what a stranger gets, both ways; history stays; unblock restores', async (t) => {
  const app = await build(t)
  const [alice, bob, stranger, dave] = await Promise.all([signUp(app), signUp(app), signUp(app), signUp(app)])
  await befriend(app, alice, bob)
  await befriend(app, alice, dave)
  const before = await ok(app, 'send_msg', { to_uid: alice.uid, msg: 'before the block' }, bob)
  const cursor = await drain(app, alice)

  t.strictSame(await ok(app, 'block_user', { uid: bob.uid }, alice), {}, 'alice blocks bob')
  t.strictSame(await ok(app, 'block_user', { uid: bob.uid }, alice), {}, 'twice is once')

  const fromStranger = await call(app, 'send_msg', { to_uid: alice.uid, msg: 'hi' }, stranger.token)
  const fromBob = await call(app, 'send_msg', { to_uid: alice.uid, msg: 'hi' }, bob.token)
  t.equal(fromBob.status, 403)
  t.strictSame(answer(fromBob), answer(fromStranger), "bob's message gets exactly a stranger's answer")
  t.equal((await call(app, 'send_msg', { to_uid: bob.uid, msg: 'hi' }, alice.token)).status, 403, 'and alice cannot write to bob either')

  // Concurrent sends share the group statement: bob's are refused there too, dave's go through.
  const together = await Promise.all([
    ...Array.from({ length: 4 }, (_, i) => call(app, 'send_msg', { to_uid: alice.uid, msg: `bob ${i}` }, bob.token)),
    ...Array.from({ length: 4 }, (_, i) => call(app, 'send_msg', { to_uid: alice.uid, msg: `dave ${i}` }, dave.token)),
  ])
  t.strictSame(together.map((reply) => reply.status), [403, 403, 403, 403, 200, 200, 200, 200], 'sent together: bob refused, dave through')
  const arrived = (await collect(app, alice, cursor)).msgs.map((message) => message.text)
  t.strictSame(arrived.sort(), ['dave 0', 'dave 1', 'dave 2', 'dave 3'], 'nothing of bob reaches alice')

  const callStranger = await call(app, 'call', { to_uid: alice.uid, offer: { sdp: 'o' } }, stranger.token)
  const callBob = await call(app, 'call', { to_uid: alice.uid, offer: { sdp: 'o' } }, bob.token)
  t.strictSame(answer(callBob), answer(callStranger), "bob's call gets a stranger's answer")

  const history = await ok(app, 'get_history', { to_uid: bob.uid }, alice)
  t.strictSame(history.messages.map((message: Json) => message.msg_id), [before.msg_id], 'history stays')

  t.strictSame(await ok(app, 'list_blocked', {}, alice), { blocked: [{ uid: bob.uid, login: bob.login, blocked_at: (await ok(app, 'list_blocked', {}, alice)).blocked[0].blocked_at }] })
  await ok(app, 'unblock_user', { uid: bob.uid }, alice)
  t.strictSame((await ok(app, 'list_blocked', {}, alice)).blocked, [], 'unblocked')
  t.equal((await call(app, 'send_msg', { to_uid: alice.uid, msg: 'after' }, bob.token)).status, 200, 'they are friends still: messages go through again')
})

t.test('contact requests and invitations from a blocked user are answered as usual and reach nobody', async (t) => {
  const app = await build(t)
  const [alice, mallory, stranger] = await Promise.all([signUp(app), signUp(app), signUp(app)])
  await ok(app, 'block_user', { uid: mallory.uid }, alice)
  const cursor = await drain(app, alice)

  const fromStranger = await ok(app, 'add_contact_request', { login: alice.login }, stranger)
  const fromMallory = await ok(app, 'add_contact_request', { login: alice.login }, mallory)
  t.strictSame(fromMallory, { ...fromStranger, status: fromStranger.status }, 'the same reply as a request sent')
  t.strictSame(await ok(app, 'add_contact_request', { login: alice.login }, mallory), fromMallory, 'asking again: the same')
  const contacts = (await ok(app, 'get_data', {}, alice)).contacts as Json[]
  t.strictSame(contacts.map((c) => c.friend_uid), [stranger.uid], "alice's list has the stranger's request only")
  const told = (await collect(app, alice, cursor)).events.filter((e) => e.type === 'contact_request')
  t.strictSame(told.map((e) => e.ruid), [stranger.uid], 'and she is told of it alone')
  const own = await call(app, 'add_contact_request', { login: mallory.login }, alice.token)
  t.equal(own.status, 409, 'alice must unblock before asking mallory herself')

  const room = await ok(app, 'create_room', { name: 'Trap', type: 'private' }, mallory)
  const roomId = room.room.room_id as number
  t.strictSame(await ok(app, 'invite_to_room', { room_id: roomId, uid: alice.uid }, mallory), {}, 'the invitation is answered as usual')
  const members = await ok(app, 'room_members', { room_id: roomId }, mallory)
  t.notOk((members.members as Json[]).some((m) => m.uid === alice.uid), 'and alice is not added')
  t.equal((await collect(app, alice, cursor)).events.filter((e) => e.type === 'member_joined').length, 0, 'nor told')
})

t.test("in a chat they already share, the blocked user's reactions, pins and read receipts reach nobody; blocking withdraws pending requests", async (t) => {
  const app = await build(t)
  const [alice, bob, carol] = await Promise.all([signUp(app), signUp(app), signUp(app)])
  await befriend(app, alice, bob)
  const { msg_id } = await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'before' }, alice)
  await ok(app, 'block_user', { uid: bob.uid }, alice)
  const cursor = await drain(app, alice)
  await ok(app, 'react', { msg_id, emoji: '👍' }, bob)
  await ok(app, 'pin_msg', { msg_id }, bob)
  await ok(app, 'mark_read', { to_uid: alice.uid, msg_id }, bob)
  const told = (await collect(app, alice, cursor)).events.map((e) => e.type)
  t.strictSame(told, [], 'alice is told of none of it')

  await ok(app, 'add_contact_request', { login: carol.login }, alice)
  await ok(app, 'block_user', { uid: carol.uid }, alice)
  const accepted = await call(app, 'add_contact_reply', { contact_uid: alice.uid, status: 1 }, carol.token)
  t.not(accepted.status, 200, "carol can no longer accept alice's earlier request")
  t.notOk(((await ok(app, 'get_data', {}, alice)).contacts ?? []).some((c: Json) => c.friend_uid === carol.uid), 'and they are not contacts')
})

t.test('presence: neither sees the other once one blocked', async (t) => {
  const clock = new ManualClock(Math.floor(Date.now() / 1000) * 1000 + 250)
  const app = await build(t, { presenceSweepSeconds: 30, presenceGraceSeconds: 60 }, undefined, clock)
  const [alice, bob, carol] = await Promise.all([signUp(app), signUp(app), signUp(app)])
  await befriend(app, alice, bob)
  await befriend(app, alice, carol)
  await ok(app, 'block_user', { uid: bob.uid }, alice)
  const cursors = { bob: await drain(app, bob), carol: await drain(app, carol) }

  await poll(app, alice, 0, 0) // alice comes online
  const presenceOfAlice = (events: Json[]) => events.filter((e) => e.type === 'presence' && e.ruid === alice.uid)
  t.equal(presenceOfAlice((await collect(app, carol, cursors.carol)).events).length, 1, 'carol is told alice is online')
  t.equal(presenceOfAlice((await collect(app, bob, cursors.bob)).events).length, 0, 'bob is not')
  const bobSees = (await ok(app, 'get_presence', {}, bob)).presence as Json[]
  t.notOk(bobSees.some((p) => p.uid === alice.uid), "bob's get_presence leaves alice out, as for a non-friend")
  const aliceSees = (await ok(app, 'get_presence', {}, alice)).presence as Json[]
  t.strictSame(aliceSees.map((p) => p.uid), [carol.uid], "and alice's leaves bob out")
})

t.test('bad input, and the wiki dialect', async (t) => {
  const app = await build(t)
  const [alice, bob] = await Promise.all([signUp(app), signUp(app)])
  t.equal((await call(app, 'block_user', { uid: alice.uid }, alice.token)).status, 400, 'not yourself')
  t.equal((await call(app, 'block_user', { uid: 999_999_999 }, alice.token)).status, 404, 'an unknown user: 404')
  t.equal((await call(app, 'block_user', {}, alice.token)).status, 400, 'no uid: 400')
  t.equal((await call(app, 'block_user', { uid: bob.uid })).status, 401, 'no session: 401')
  t.equal((await wiki(app, 'block_user', { uid: bob.uid }, alice)).status, 200, 'block_user through POST /')
  const listed = await wiki(app, 'list_blocked', {}, alice)
  t.equal(listed.body.blocked[0].uid, bob.uid, 'list_blocked through POST /')
  const bad = await wiki(app, 'unblock_user', { uid: alice.uid }, alice)
  t.equal(bad.status, 400)
  t.equal(typeof bad.body, 'string', 'errors are bare strings')
})
