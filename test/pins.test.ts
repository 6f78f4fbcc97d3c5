// Pinned messages (pin_msg / unpin_msg / get_pins, src/services/messages.ts): in a direct
// chat either side pins, in a room moderators and the owner (members get 403); pinning
// twice is once and tells nobody again; each change is an event to the conversation;
// get_pins lists what the reader's history shows (deleted and cleared messages left out),
// the latest pinned first; MAX_PINS_PER_CONVERSATION at its edge; what the user cannot
// see is the same 404 as a message that does not exist; both dialects.
import t from 'tap'
import { befriend, build, call, collect, drain, ok, signUp, wiki } from './helper.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>


const pinEvents = (events: Json[]) => events.filter((event) => event.type === 'message_pinned' || event.type === 'message_unpinned')

t.test('a direct chat: either side pins and unpins, once per change, and both see the list', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const first = await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'the address is 5 Main St' }, alice)
  const second = await ok(app, 'send_msg', { to_uid: alice.uid, msg: 'the code is 1234' }, bob)
  const cursor = await drain(app, alice)

  t.strictSame(await ok(app, 'pin_msg', { msg_id: first.msg_id }, bob), { msg_id: first.msg_id, pinned: true }, 'bob pins alice\'s message')
  t.strictSame(await ok(app, 'pin_msg', { msg_id: first.msg_id }, alice), { msg_id: first.msg_id, pinned: true }, 'pinning again: the same')
  await ok(app, 'pin_msg', { msg_id: second.msg_id }, alice)

  const listed = await ok(app, 'get_pins', { to_uid: alice.uid }, bob)
  t.strictSame(listed.pins.map((pin: Json) => [pin.message.msg_id, pin.message.text, pin.pinned_by]), [
    [second.msg_id, 'the code is 1234', alice.uid],
    [first.msg_id, 'the address is 5 Main St', bob.uid],
  ], 'the latest pinned first, with who pinned it')
  t.type(listed.pins[0].pinned_at, 'number')
  t.strictSame((await ok(app, 'get_pins', { to_uid: bob.uid }, alice)).pins.length, 2, 'alice sees the same pins')

  await ok(app, 'unpin_msg', { msg_id: first.msg_id }, alice)
  await ok(app, 'unpin_msg', { msg_id: first.msg_id }, alice) // not pinned any more: nothing
  t.match(pinEvents((await collect(app, alice, cursor)).events), [
    { type: 'message_pinned', msg_id: first.msg_id, ruid: bob.uid },
    { type: 'message_pinned', msg_id: second.msg_id, ruid: alice.uid },
    { type: 'message_unpinned', msg_id: first.msg_id, ruid: alice.uid },
  ], 'one event per change, in order')
  t.equal(pinEvents((await collect(app, alice, cursor)).events).length, 3, 'and none for what changed nothing')

  await ok(app, 'delete_msg', { msg_id: second.msg_id }, bob)
  t.strictSame((await ok(app, 'get_pins', { to_uid: bob.uid }, alice)).pins, [], 'a deleted message leaves the pins')
})

t.test('a room: moderators and the owner pin, members get 403; outsiders the 404 of a missing message; cleared messages are not listed', async (t) => {
  const app = await build(t)
  const [owner, moderator, member, outsider] = await Promise.all([signUp(app), signUp(app), signUp(app), signUp(app)])
  const roomId = (await ok(app, 'create_room', { name: 'Pins', type: 'public' }, owner)).room.room_id as number
  for (const user of [moderator, member]) await ok(app, 'join_room', { room_id: roomId }, user)
  await ok(app, 'set_role', { room_id: roomId, uid: moderator.uid, role: 'moderator' }, owner)
  const { msg_id } = await ok(app, 'send_msg', { room_id: roomId, msg: 'rules: be kind' }, member)
  const cursor = await drain(app, member)

  const byMember = await call(app, 'pin_msg', { msg_id }, member.token)
  t.equal(byMember.status, 403, 'a plain member may not pin')
  t.match(byMember.body, { error: 'forbidden' })
  t.equal((await call(app, 'pin_msg', { msg_id }, moderator.token)).status, 200, 'a moderator may')
  t.match(pinEvents((await collect(app, member, cursor)).events), [{ type: 'message_pinned', msg_id, room_id: roomId, ruid: moderator.uid }], 'members are told, with room_id')
  t.equal((await ok(app, 'get_pins', { room_id: roomId }, member)).pins[0].message.msg_id, msg_id, 'members see the pin')

  const missing = await call(app, 'pin_msg', { msg_id: msg_id + 1_000_000 }, outsider.token)
  const notMember = await call(app, 'pin_msg', { msg_id }, outsider.token)
  t.strictSame({ status: notMember.status, body: notMember.body }, { status: missing.status, body: missing.body }, 'a non-member: the same 404 as a message that does not exist')
  t.equal(missing.status, 404)
  t.equal((await call(app, 'get_pins', { room_id: roomId }, outsider.token)).status, 403, 'get_pins answers a non-member as get_history does')

  await ok(app, 'clear_history', { room_id: roomId }, owner)
  t.strictSame((await ok(app, 'get_pins', { room_id: roomId }, member)).pins, [], 'a cleared message is not listed')
  t.equal((await call(app, 'unpin_msg', { msg_id }, owner.token)).status, 404, 'nor can it be unpinned')
})

t.test('MAX_PINS_PER_CONVERSATION: the last one fits, one more is 409; pinning a pinned one at the cap still works', async (t) => {
  const app = await build(t, { maxPinsPerConversation: 2 })
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const ids: number[] = []
  for (let i = 0; i < 3; i++) ids.push((await ok(app, 'send_msg', { to_uid: bob.uid, msg: `m${i}` }, alice)).msg_id)
  await ok(app, 'pin_msg', { msg_id: ids[0] }, alice)
  t.equal((await call(app, 'pin_msg', { msg_id: ids[1] }, bob.token)).status, 200, 'the 2nd pin fits')
  const over = await call(app, 'pin_msg', { msg_id: ids[2] }, alice.token)
  t.equal(over.status, 409, 'a 3rd is refused')
  t.match(over.body, { error: 'invalid_state', message: /At most 2 pinned/ })
  t.equal((await call(app, 'pin_msg', { msg_id: ids[1] }, alice.token)).status, 200, 'pinning a pinned one at the cap: fine')
  await ok(app, 'unpin_msg', { msg_id: ids[0] }, bob)
  t.equal((await call(app, 'pin_msg', { msg_id: ids[2] }, alice.token)).status, 200, 'after an unpin there is room again')
  // Concurrent pins at the cap: the conversation is locked, so exactly one wins.
  await ok(app, 'unpin_msg', { msg_id: ids[1] }, alice)
  const raced = await Promise.all([call(app, 'pin_msg', { msg_id: ids[0] }, alice.token), call(app, 'pin_msg', { msg_id: ids[1] }, bob.token), call(app, 'pin_msg', { msg_id: ids[1] + 0 }, alice.token)])
  t.equal((await ok(app, 'get_pins', { to_uid: bob.uid }, alice)).pins.length, 2, `never more than the cap (statuses ${raced.map((r) => r.status).join(', ')})`)
  t.equal((await call(app, 'pin_msg', {}, alice.token)).status, 400, 'no msg_id: 400')
})

t.test('wiki dialect: pin_msg and get_pins through POST /', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const { msg_id } = await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'pin me' }, alice)
  t.strictSame((await wiki(app, 'pin_msg', { msg_id }, bob)).body, { msg_id, pinned: true })
  const listed = await wiki(app, 'get_pins', { to_uid: alice.uid }, bob)
  t.equal(listed.status, 200)
  t.equal(listed.body.pins[0].message.text, 'pin me')
  const missing = await wiki(app, 'pin_msg', { msg_id: msg_id + 1_000_000 }, bob)
  t.equal(missing.status, 404)
  t.equal(typeof missing.body, 'string', 'errors are bare strings')
})
