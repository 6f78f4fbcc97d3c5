// Emoji reactions (react / unreact, src/services/messages.ts): to a message the user sees
// as history shows it, at most one of each emoji per user per message (twice is the same
// as once, and tells nobody again), a `reaction` event to everyone who sees the
// conversation for each change, history counting them per emoji with `mine`; anything the
// user does not see is the same 404 as a message that does not exist; MAX_REACTION_CHARS
// and "one emoji" at their edges; both dialects.
import t from 'tap'
import type { App } from '../src/app.js'
import { befriend, build, call, collect, drain, ok, signUp, type TestSession, wiki } from './helper.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>

const reactionEvents = (events: Json[]) => events.filter((event) => event.type === 'reaction')


/** How `viewer`'s history shows the message's reactions. */
async function reactionsIn(app: App, viewer: TestSession, conversation: Json, msgId: number) {
  const history = await ok(app, 'get_history', conversation, viewer)
  return (history.messages as Json[]).find((message) => message.msg_id === msgId)?.reactions
}

t.test('a direct chat: both sides told once per change, history counts per emoji with mine, twice is once', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const { msg_id } = await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'lunch?' }, alice)
  const cursors = { alice: await drain(app, alice), bob: await drain(app, bob) }

  const first = await ok(app, 'react', { msg_id, emoji: '👍' }, bob)
  t.strictSame(first, { msg_id, reactions: [{ emoji: '👍', count: 1, mine: true }] }, 'the reply: the reactions now')
  t.strictSame(await ok(app, 'react', { msg_id, emoji: '👍' }, bob), first, 'reacting again: the same, nothing added')
  await ok(app, 'react', { msg_id, emoji: '👍' }, alice)
  await ok(app, 'react', { msg_id, emoji: '❤️' }, alice)

  const toAlice = reactionEvents((await collect(app, alice, cursors.alice)).events)
  t.match(toAlice, [
    { type: 'reaction', msg_id, emoji: '👍', added: true, ruid: bob.uid, text: bob.login },
    { type: 'reaction', msg_id, emoji: '👍', added: true, ruid: alice.uid },
    { type: 'reaction', msg_id, emoji: '❤️', added: true, ruid: alice.uid },
  ], 'alice is told of each change once, in order (the repeat told nobody)')
  t.equal(toAlice.length, 3, 'and of nothing else')
  t.notOk('room_id' in toAlice[0], 'a direct chat has no room_id')
  t.equal(reactionEvents((await collect(app, bob, cursors.bob)).events).length, 3, 'bob is told of the same three')

  t.strictSame(await reactionsIn(app, alice, { to_uid: bob.uid }, msg_id), [
    { emoji: '👍', count: 2, mine: true },
    { emoji: '❤️', count: 1, mine: true },
  ], "alice's history: per emoji, oldest first, mine")
  t.strictSame(await reactionsIn(app, bob, { to_uid: alice.uid }, msg_id), [
    { emoji: '👍', count: 2, mine: true },
    { emoji: '❤️', count: 1, mine: false },
  ], "bob's history: the same counts, his own mine")

  const cursor = await drain(app, alice)
  t.strictSame(await ok(app, 'unreact', { msg_id, emoji: '👍' }, bob), { msg_id, reactions: [{ emoji: '👍', count: 1, mine: false }, { emoji: '❤️', count: 1, mine: false }] }, 'unreact: his is gone')
  t.strictSame((await ok(app, 'unreact', { msg_id, emoji: '👍' }, bob)).reactions.length, 2, 'unreacting again changes nothing')
  await ok(app, 'unreact', { msg_id, emoji: '🎉' }, bob) // never made
  t.match(reactionEvents((await collect(app, alice, cursor)).events), [{ emoji: '👍', added: false, ruid: bob.uid }], 'one event for the one change')
  t.equal(reactionEvents((await collect(app, alice, cursor)).events).length, 1, 'and none for what changed nothing')

  const dialogs = await ok(app, 'get_dialogs', {}, alice)
  t.strictSame(dialogs.dialogs[0].last_message.reactions, [{ emoji: '👍', count: 1, mine: true }, { emoji: '❤️', count: 1, mine: true }], 'get_dialogs shows them on the last message')
  const found = await ok(app, 'search_msgs', { to_uid: bob.uid, query: 'lunch' }, alice)
  t.equal(found.messages[0].reactions.length, 2, 'and search')
})

t.test('a room: every member told, with room_id; outsiders, deleted and cleared messages get the 404 of a message that does not exist', async (t) => {
  const app = await build(t)
  const [owner, member, outsider, alice, bob] = await Promise.all([signUp(app), signUp(app), signUp(app), signUp(app), signUp(app)])
  const room = await ok(app, 'create_room', { name: 'Reacting', type: 'private' }, owner)
  const roomId = room.room.room_id as number
  await ok(app, 'invite_to_room', { room_id: roomId, uid: member.uid }, owner)
  const { msg_id } = await ok(app, 'send_msg', { room_id: roomId, msg: 'ship it' }, owner)
  const cursor = await drain(app, owner)

  await ok(app, 'react', { msg_id, emoji: '🚀' }, member)
  t.match(reactionEvents((await collect(app, owner, cursor)).events), [{ msg_id, emoji: '🚀', added: true, room_id: roomId, ruid: member.uid }], 'the owner is told, with room_id')
  t.strictSame(await reactionsIn(app, owner, { room_id: roomId }, msg_id), [{ emoji: '🚀', count: 1, mine: false }], 'room history counts it')

  const missing = await call(app, 'react', { msg_id: msg_id + 1_000_000, emoji: '👍' }, outsider.token)
  t.equal(missing.status, 404, 'a message that does not exist: 404')
  const notMember = await call(app, 'react', { msg_id, emoji: '👍' }, outsider.token)
  t.strictSame({ status: notMember.status, body: notMember.body }, { status: missing.status, body: missing.body }, 'a room message to a non-member: the very same answer')

  await befriend(app, alice, bob)
  const direct = await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'between us' }, alice)
  const stranger = await call(app, 'react', { msg_id: direct.msg_id, emoji: '👍' }, outsider.token)
  t.strictSame({ status: stranger.status, body: stranger.body }, { status: missing.status, body: missing.body }, "someone else's direct message: the same")

  await ok(app, 'clear_history', { to_uid: bob.uid }, alice)
  t.equal((await call(app, 'react', { msg_id: direct.msg_id, emoji: '👍' }, alice.token)).status, 404, 'a message the user cleared from their history: 404 for them')
  t.equal((await call(app, 'react', { msg_id: direct.msg_id, emoji: '👍' }, bob.token)).status, 200, 'the other side still sees it')
  await ok(app, 'delete_msg', { msg_id: direct.msg_id }, alice)
  t.equal((await call(app, 'react', { msg_id: direct.msg_id, emoji: '👍' }, bob.token)).status, 404, 'a deleted message: 404')

  await ok(app, 'leave_room', { room_id: roomId }, member)
  t.equal((await call(app, 'unreact', { msg_id, emoji: '🚀' }, member.token)).status, 404, 'a room left: 404')
})

t.test('one emoji, at most MAX_REACTION_CHARS characters; bad input is a 400', async (t) => {
  const app = await build(t, { maxReactionChars: 4 })
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const { msg_id } = await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'hi' }, alice)
  const status = async (emoji: unknown) => (await call(app, 'react', { msg_id, emoji }, bob.token)).status

  t.equal(await status('👍🏽'), 200, 'a skin tone: 2 characters')
  t.equal(await status('1️⃣'), 200, 'a keycap: 3 characters')
  t.equal(await status('🇺🇦'), 200, 'a flag: 2 characters')
  t.equal(await status('👨‍💻'), 200, 'a joined sequence at 3 characters')
  t.equal(await status('❤️‍🔥'), 200, 'exactly 4 characters: the limit')
  const over = await call(app, 'react', { msg_id, emoji: '👩‍❤️‍👨' }, bob.token)
  t.equal(over.status, 400, '6 characters: over MAX_REACTION_CHARS')
  t.match(over.body, { error: 'bad_request', message: /at most 4 characters/ })
  for (const bad of ['a', '123', '👍 ', ' ', 'ok👍']) t.equal(await status(bad), 400, `not one emoji: ${JSON.stringify(bad)}`)
  t.equal(await status(''), 400, 'empty')
  t.equal(await status(5), 400, 'not a string')
  t.equal((await call(app, 'react', { emoji: '👍' }, bob.token)).status, 400, 'no msg_id')
  t.equal((await call(app, 'react', { msg_id, emoji: '👍' })).status, 401, 'no session')
})

t.test('wiki dialect: react and unreact through POST /, errors as bare strings', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const { msg_id } = await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'hi' }, alice)
  const reacted = await wiki(app, 'react', { msg_id, emoji: '😂' }, bob)
  t.equal(reacted.status, 200)
  t.strictSame(reacted.body, { msg_id, reactions: [{ emoji: '😂', count: 1, mine: true }] })
  const removed = await wiki(app, 'unreact', { msg_id, emoji: '😂' }, bob)
  t.strictSame(removed.body, { msg_id, reactions: [] })
  const bad = await wiki(app, 'react', { msg_id, emoji: 'x' }, bob)
  t.equal(bad.status, 400)
  t.equal(typeof bad.body, 'string', 'the error is a bare JSON string')
})
