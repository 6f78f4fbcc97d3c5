// Read receipts: in a direct chat, marking the other side's messages read tells them once
// (`messages_read`) and history shows `read_by` 1 on what they sent; in a room `read_by`
// counts the members who read each message; with receipts off (set_read_receipts) nothing
// is told or counted, while the reader's own unread counts work as before; both dialects.
import t from 'tap'
import type { App } from '../src/app.js'
import { befriend, build, call, collect, drain, ok, signUp, type TestSession, wiki } from './helper.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>


const readBy = async (app: App, viewer: TestSession, conversation: Json) =>
  ((await ok(app, 'get_history', conversation, viewer)).messages as Json[]).map((message) => message.read_by)

t.test('a direct chat: the sender is told once and history shows what was read; private receipts tell and show nothing', async (t) => {
  const app = await build(t)
  const [alice, bob] = await Promise.all([signUp(app), signUp(app)])
  await befriend(app, alice, bob)
  const first = await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'one' }, alice)
  const second = await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'two' }, alice)
  const cursor = await drain(app, alice)
  t.strictSame(await readBy(app, alice, { to_uid: bob.uid }), [0, 0], 'nothing read yet')

  await ok(app, 'mark_read', { to_uid: alice.uid, msg_id: first.msg_id }, bob)
  await ok(app, 'mark_read', { to_uid: alice.uid, msg_id: first.msg_id }, bob) // again: nothing new
  const told = (await collect(app, alice, cursor)).events.filter((e) => e.type === 'messages_read')
  t.match(told, [{ type: 'messages_read', through_msg_id: first.msg_id, ruid: bob.uid }], 'alice is told once')
  t.equal(told.length, 1)
  t.strictSame(await readBy(app, alice, { to_uid: bob.uid }), [1, 0], 'her history: the first is read')

  t.strictSame(await ok(app, 'set_read_receipts', { enabled: false }, bob), { read_receipts: false })
  const later = await drain(app, alice)
  const marked = await ok(app, 'mark_read', { to_uid: alice.uid, msg_id: second.msg_id }, bob)
  t.equal(marked.unread, 0, "bob's own unread count still works")
  t.strictSame((await collect(app, alice, later)).events.filter((e) => e.type === 'messages_read'), [], 'private: alice is not told')
  t.strictSame(await readBy(app, alice, { to_uid: bob.uid }), [0, 0], 'nor shown any of it')
  await ok(app, 'set_read_receipts', { enabled: true }, bob)
  t.strictSame(await readBy(app, alice, { to_uid: bob.uid }), [1, 1], 'on again: his markers show')

  // Marks sent at once: the pair's lock orders them, so one move, one event.
  const third = await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'three' }, alice)
  const mid = await drain(app, alice)
  await Promise.all([1, 2, 3].map(() => ok(app, 'mark_read', { to_uid: alice.uid, msg_id: third.msg_id }, bob)))
  t.equal((await collect(app, alice, mid)).events.filter((e) => e.type === 'messages_read').length, 1, 'concurrent marks: told once')
})

t.test('a room: read_by counts the members who read each message, not the sender, not private readers', async (t) => {
  const app = await build(t)
  const [owner, ann, ben, cy] = await Promise.all([signUp(app), signUp(app), signUp(app), signUp(app)])
  const roomId = (await ok(app, 'create_room', { name: 'Receipts', type: 'public' }, owner)).room.room_id as number
  for (const user of [ann, ben, cy]) await ok(app, 'join_room', { room_id: roomId }, user)
  const first = await ok(app, 'send_msg', { room_id: roomId, msg: 'first' }, owner)
  const second = await ok(app, 'send_msg', { room_id: roomId, msg: 'second' }, owner)
  await ok(app, 'mark_read', { room_id: roomId, msg_id: second.msg_id }, owner)
  await ok(app, 'mark_read', { room_id: roomId, msg_id: second.msg_id }, ann)
  await ok(app, 'mark_read', { room_id: roomId, msg_id: first.msg_id }, ben)
  await ok(app, 'set_read_receipts', { enabled: false }, cy)
  await ok(app, 'mark_read', { room_id: roomId, msg_id: second.msg_id }, cy)
  t.strictSame(await readBy(app, owner, { room_id: roomId }), [2, 1], 'first: ann and ben; second: ann (the sender and private cy not counted)')
  t.strictSame(await readBy(app, cy, { room_id: roomId }), [2, 1], 'every member sees the same counts')
  t.equal((await call(app, 'set_read_receipts', { enabled: 'no' }, ann.token)).status, 400, 'a non-boolean: 400')
  const viaWiki = await wiki(app, 'set_read_receipts', { enabled: true }, cy)
  t.strictSame(viaWiki.body, { read_receipts: true }, 'through POST / too')
})
