// Typing indicators (typing): ephemeral notices handed to the held update_data polls of the
// other side of a direct chat or of a room's members, through a NOTIFY (so on any server
// process), never stored: they move no cursor, are never unread, a poll that was not held
// never sees them (nor one past TYPING_SECONDS); TYPING_PER_MINUTE at its
// edge; the same permission answers as send_msg; the wiki dialect's polls never carry them.
import t from 'tap'
import type { App } from '../src/app.js'
import { ManualClock } from '../src/clock.js'
import { befriend, build, call, drain, eventually, ok, poll, signUp, type TestSession, wiki } from './helper.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>

const newClock = () => new ManualClock(Math.floor(Date.now() / 1000) * 1000 + 250)


/** Starts a long poll; resolves, once the app holds it, with the poll's answer to come. */
async function held(app: App, session: TestSession, cursor: number): Promise<{ answer: ReturnType<typeof call> }> {
  const before = app.eventLog.polls.size
  const answer = call(app, 'update_data', { cursor, timeout: 30 }, session.token)
  await eventually(() => app.eventLog.polls.size > before, { what: `${session.login}'s poll to be held` })
  return { answer }
}

t.test('a direct chat: the held poll answers with the notice, the same cursor and nothing stored; exactly-once goes on', async (t) => {
  const clock = newClock()
  const app = await build(t, {}, undefined, clock)
  const [alice, bob] = await Promise.all([signUp(app), signUp(app)])
  await befriend(app, alice, bob)
  const cursor = await drain(app, bob)

  const waiting = await held(app, bob, cursor)
  const sentAt = performance.now()
  t.strictSame(await ok(app, 'typing', { to_uid: bob.uid }, alice), {})
  const answer = await waiting.answer
  t.ok(performance.now() - sentAt < 1000, 'within a second')
  t.equal(answer.status, 200)
  t.strictSame(answer.body.typing, [{ uid: alice.uid, login: alice.login, to_uid: alice.uid, expires_at: clock.now() + 6000 }], 'who, where, until when')
  t.strictSame([answer.body.msg_array, answer.body.events_array, answer.body.cursor], [[], [], cursor], 'no entry, the same cursor')

  const next = await held(app, bob, cursor)
  await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'hello' }, alice)
  const delivered = await next.answer
  t.strictSame(delivered.body.msg_array.map((m: Json) => m.text), ['hello'], 'the message after it arrives once, from the same cursor')
  t.notOk('typing' in delivered.body, 'no stale notice with it')
  t.equal(((await ok(app, 'get_dialogs', {}, bob)).dialogs as Json[])[0].unread, 1, 'only the message is unread')
})

t.test('a poll that was not held never sees a notice, expired or not; a held one does', async (t) => {
  const clock = newClock()
  const app = await build(t, { typingSeconds: 5 }, undefined, clock)
  const [alice, bob] = await Promise.all([signUp(app), signUp(app)])
  await befriend(app, alice, bob)
  const cursor = await drain(app, bob)
  await ok(app, 'typing', { to_uid: bob.uid }, alice) // nobody polling
  clock.advance(6000)
  const later = await poll(app, bob, cursor, 0)
  t.notOk('typing' in later, 'a poll started after it expired never sees it')

  const waiting = await held(app, bob, cursor)
  await ok(app, 'typing', { to_uid: bob.uid }, alice)
  t.equal((await waiting.answer).body.typing.length, 1, 'the held poll has it')
})

t.test('a room: every member but the typist, permission as send_msg, and the rate limit at its edge', async (t) => {
  const clock = newClock()
  const app = await build(t, { typingPerMinute: 3 }, undefined, clock)
  const [owner, ann, outsider, stranger] = await Promise.all([signUp(app), signUp(app), signUp(app), signUp(app)])
  const roomId = (await ok(app, 'create_room', { name: 'Typing', type: 'public' }, owner)).room.room_id as number
  await ok(app, 'join_room', { room_id: roomId }, ann)
  const cursor = await drain(app, ann)

  const waiting = await held(app, ann, cursor)
  await ok(app, 'typing', { room_id: roomId }, owner)
  t.match((await waiting.answer).body.typing, [{ uid: owner.uid, room_id: roomId }], 'the member sees the owner typing in the room')
  t.equal((await call(app, 'typing', { room_id: roomId }, outsider.token)).status, 403, 'a non-member: 403')
  t.match((await call(app, 'typing', { to_uid: owner.uid }, stranger.token)).body, { error: 'not_friends' }, 'a non-friend: not_friends')
  const channel = (await ok(app, 'create_room', { name: 'Quiet', type: 'public', channel: true }, owner)).room.room_id as number
  await ok(app, 'join_room', { room_id: channel }, ann)
  t.match((await call(app, 'typing', { room_id: channel }, ann.token)).body, { error: 'read_only_channel' }, 'a channel member cannot post, nor type')

  // owner has sent 1; 2 more fit, the next is 429 until a minute has passed.
  t.equal((await call(app, 'typing', { room_id: roomId }, owner.token)).status, 200)
  t.equal((await call(app, 'typing', { room_id: roomId }, owner.token)).status, 200, 'the 3rd in a minute fits')
  const over = await call(app, 'typing', { room_id: roomId }, owner.token)
  t.equal(over.status, 429, 'the 4th is 429')
  t.ok(Number(over.headers['retry-after']) > 0, 'with Retry-After')
  clock.advance(60_000)
  t.equal((await call(app, 'typing', { room_id: roomId }, owner.token)).status, 200, 'a minute later it fits again')
  t.equal((await call(app, 'typing', { room_id: roomId, to_uid: ann.uid }, owner.token)).status, 400, 'both targets: 400')
})

t.test("the wiki dialect's polls never carry typing notices", async (t) => {
  const clock = newClock()
  const app = await build(t, {}, undefined, clock)
  const [alice, bob] = await Promise.all([signUp(app), signUp(app)])
  await befriend(app, alice, bob)
  const cursor = await drain(app, bob)
  const before = app.eventLog.polls.size
  const wikiPoll = wiki(app, 'update_data', { cursor, timeout: 30 }, bob)
  await eventually(() => app.eventLog.polls.size > before, { what: 'the wiki poll to be held' })
  const second = await ok(app, 'authorization', { login: bob.login, password: 'secret1' }, bob)
  const modern = await held(app, { ...bob, token: second.session.token, session_key: second.session.session_key }, cursor)
  await ok(app, 'typing', { to_uid: bob.uid }, alice)
  t.equal((await modern.answer).body.typing.length, 1, 'the modern poll of the same user got it')
  t.ok(app.eventLog.polls.holdsPollOf(bob.uid), 'the wiki poll is still held: the notice did not end it')
  await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'hi' }, alice)
  const answer = await wikiPoll
  t.notOk('typing' in answer.body, 'its answer has no typing field')
  t.equal(answer.body.msg_array.length, 1)
})
