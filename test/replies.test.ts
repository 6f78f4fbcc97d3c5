// Replies and threads (send_msg with `reply_to`, get_thread): a reply names a message of
// the same conversation that the sender sees (anything else is the 404 of a missing
// message); history, search and update_data carry `reply_to` with the original's sender
// and a preview of REPLY_PREVIEW_CHARS characters, or `deleted` once it is gone; the
// thread view pages the replies to one message; the single and the grouped direct send
// both store it; both dialects.
import t from 'tap'
import { REPLY_PREVIEW_CHARS } from '../src/event-log/sql.js'
import { befriend, build, call, collect, drain, ok, signUp, wiki } from './helper.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>


t.test('a direct reply: history, search and update_data carry the original and its preview; deleted, it says so', async (t) => {
  const app = await build(t)
  const [alice, bob] = await Promise.all([signUp(app), signUp(app)])
  await befriend(app, alice, bob)
  const long = 'where shall we meet for lunch tomorrow? '.repeat(5)
  const question = await ok(app, 'send_msg', { to_uid: bob.uid, msg: long }, alice)
  const cursor = await drain(app, alice)

  const answer = await ok(app, 'send_msg', { to_uid: alice.uid, msg: 'the usual place', reply_to: question.msg_id }, bob)
  const expected = { msg_id: question.msg_id, sender_uid: alice.uid, sender_login: alice.login, preview: long.slice(0, REPLY_PREVIEW_CHARS), deleted: false }
  const polled = (await collect(app, alice, cursor)).msgs
  t.strictSame(polled.map((m) => m.reply_to), [expected], 'update_data: reply_to with a preview of REPLY_PREVIEW_CHARS characters')
  const history = await ok(app, 'get_history', { to_uid: bob.uid }, alice)
  t.strictSame(history.messages.map((m: Json) => m.reply_to), [null, expected], 'history: null for the original, the reference for the reply')
  const found = await ok(app, 'search_msgs', { to_uid: bob.uid, query: 'usual' }, alice)
  t.strictSame(found.messages[0].reply_to, expected, 'search too')

  await ok(app, 'delete_msg', { msg_id: question.msg_id }, alice)
  const after = await ok(app, 'get_history', { to_uid: alice.uid }, bob)
  t.strictSame(after.messages.find((m: Json) => m.msg_id === answer.msg_id).reply_to, { ...expected, preview: null, deleted: true }, 'the original deleted: the reply keeps a marker, no text')
  t.equal((await call(app, 'send_msg', { to_uid: alice.uid, msg: 'x', reply_to: question.msg_id }, bob.token)).status, 404, 'replying to a deleted message: 404')

  // Sent together, the replies share the group statement: each keeps its reference.
  const base = await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'pick one' }, alice)
  await Promise.all(['a', 'b', 'c'].map((choice) => ok(app, 'send_msg', { to_uid: alice.uid, msg: choice, reply_to: base.msg_id }, bob)))
  const thread = await ok(app, 'get_thread', { msg_id: base.msg_id }, alice)
  t.strictSame(thread.replies.map((m: Json) => m.text).sort(), ['a', 'b', 'c'], 'grouped sends store reply_to too')
})

t.test('a reply must answer a message of the same conversation that the sender sees', async (t) => {
  const app = await build(t)
  const [alice, bob, carol] = await Promise.all([signUp(app), signUp(app), signUp(app)])
  await befriend(app, alice, bob)
  await befriend(app, alice, carol)
  const toBob = await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'for bob' }, alice)
  const missing = await call(app, 'send_msg', { to_uid: alice.uid, msg: 'x', reply_to: toBob.msg_id + 1_000_000 }, carol.token)
  t.equal(missing.status, 404, 'a message that does not exist: 404')
  const notTheirs = await call(app, 'send_msg', { to_uid: alice.uid, msg: 'x', reply_to: toBob.msg_id }, carol.token)
  t.strictSame({ status: notTheirs.status, body: notTheirs.body }, { status: missing.status, body: missing.body }, 'a message carol cannot see: the same answer')
  t.equal((await call(app, 'send_msg', { to_uid: carol.uid, msg: 'x', reply_to: toBob.msg_id }, alice.token)).status, 404, 'one of another conversation: 404')
  const roomId = (await ok(app, 'create_room', { name: 'Replies', type: 'public' }, alice)).room.room_id as number
  t.equal((await call(app, 'send_msg', { room_id: roomId, msg: 'x', reply_to: toBob.msg_id }, alice.token)).status, 404, 'a direct message answered in a room: 404')
  t.equal((await call(app, 'send_msg', { to_uid: alice.uid, msg: 'x', reply_to: toBob.msg_id }, alice.token)).status, 400, "writing to yourself is send_msg's 400 first")
  const notMember = await call(app, 'send_msg', { room_id: roomId, msg: 'x', reply_to: toBob.msg_id }, carol.token)
  t.equal(notMember.status, 403, "a room you are not in is send_msg's 403 first")
})

t.test('a room thread: get_thread pages the replies; outsiders get 404', async (t) => {
  const app = await build(t)
  const [owner, member, outsider] = await Promise.all([signUp(app), signUp(app), signUp(app)])
  const roomId = (await ok(app, 'create_room', { name: 'Threads', type: 'public' }, owner)).room.room_id as number
  await ok(app, 'join_room', { room_id: roomId }, member)
  const root = await ok(app, 'send_msg', { room_id: roomId, msg: 'release on Friday?' }, owner)
  const ids: number[] = []
  for (const text of ['yes', 'no', 'maybe']) ids.push((await ok(app, 'send_msg', { room_id: roomId, msg: text, reply_to: root.msg_id }, member)).msg_id)
  await ok(app, 'send_msg', { room_id: roomId, msg: 'unrelated' }, member)

  const first = await ok(app, 'get_thread', { msg_id: root.msg_id, count: 2 }, owner)
  t.equal(first.root.text, 'release on Friday?', 'the root as history shows it')
  t.strictSame(first.replies.map((m: Json) => m.text), ['yes', 'no'], 'the first page, oldest first')
  t.equal(first.has_more, true)
  const second = await ok(app, 'get_thread', { msg_id: root.msg_id, count: 2, after: ids[1] }, owner)
  t.strictSame(second.replies.map((m: Json) => m.text), ['maybe'], 'the next page')
  t.equal(second.has_more, false)
  t.ok(second.replies[0].reply_to.msg_id === root.msg_id, 'each reply names the root')

  t.equal((await call(app, 'get_thread', { msg_id: root.msg_id }, outsider.token)).status, 404, 'a non-member: 404')
  t.equal((await call(app, 'get_thread', { msg_id: root.msg_id, count: 101 }, owner.token)).status, 400, 'count over 100: 400')
})

t.test('wiki dialect: reply_to and get_thread through POST /', async (t) => {
  const app = await build(t)
  const [alice, bob] = await Promise.all([signUp(app), signUp(app)])
  await befriend(app, alice, bob)
  const question = await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'ping' }, alice)
  t.equal((await wiki(app, 'send_msg', { to_uid: alice.uid, msg: 'pong', reply_to: question.msg_id }, bob)).status, 200)
  const thread = await wiki(app, 'get_thread', { msg_id: question.msg_id }, alice)
  t.equal(thread.body.replies[0].text, 'pong')
  const bad = await wiki(app, 'get_thread', { msg_id: question.msg_id + 1_000_000 }, alice)
  t.equal(bad.status, 404)
  t.equal(typeof bad.body, 'string', 'errors are bare strings')
})
