// The message lifecycle (PROTOCOL part B), through HTTP on a real PostgreSQL: who may
// edit, delete, clear, read and search what; the events everyone who sees a conversation
// gets; history pages (also while messages keep arriving); search; read markers and
// unread counts; the dialogs list; message kinds; and the wiki dialect of these commands.
import t, { type Test } from 'tap'
import { collect, drain, eventually, sleep, build, call, wiki, signUp, befriend, type TestSession } from './helper.js'
import type { App } from '../src/app.js'
import type { Static } from 'typebox'
import type { Dialog as DialogSchema, GetHistoryReply, Message } from '../src/schemas/messages.js'

// The shapes the routes answer with, from their schemas.
type Msg = Static<typeof Message>
type Page = Static<typeof GetHistoryReply>
type Dialog = Static<typeof DialogSchema>
type Item = Record<string, unknown>
type Target = { to_uid: number } | { room_id: number }

const NO_SUCH_USER = 9_999_999

/** A command that must succeed: its body, or a thrown error naming what went wrong. */
async function ok(app: App, command: string, body: Record<string, unknown>, who: TestSession) {
  const reply = await call(app, command, body, who.token)
  if (reply.status !== 200) throw new Error(`${command} ${JSON.stringify(body)} by ${who.login}: ${reply.status} ${JSON.stringify(reply.body)}`)
  return reply.body
}

async function send(app: App, from: TestSession, target: Target, msg: string, extra: Record<string, unknown> = {}): Promise<number> {
  return (await ok(app, 'send_msg', { ...target, msg, ...extra }, from)).msg_id
}

async function history(app: App, who: TestSession, target: Target, page: Record<string, unknown> = {}): Promise<Page> {
  return ok(app, 'get_history', { ...target, ...page }, who)
}

async function search(app: App, who: TestSession, target: Target, query: string, extra: Record<string, unknown> = {}): Promise<Msg[]> {
  return (await ok(app, 'search_msgs', { ...target, query, ...extra }, who)).messages
}

async function dialogs(app: App, who: TestSession, page: Record<string, unknown> = {}): Promise<{ dialogs: Dialog[]; total: number }> {
  return ok(app, 'get_dialogs', page, who)
}

/** A public room owned by `owner`, joined by `members` (in this order). */
async function createRoom(app: App, owner: TestSession, members: TestSession[], name = 'room'): Promise<number> {
  const roomId = (await ok(app, 'create_room', { name, type: 'public' }, owner)).room.room_id
  for (const member of members) await ok(app, 'join_room', { room_id: roomId }, member)
  return roomId
}


const ids = (messages: { msg_id: unknown }[]) => messages.map((m) => m.msg_id as number)
const ofType = (events: Item[], type: string) => events.filter((e) => e.type === type)

t.test('permission matrix: edit_msg and delete_msg', async (t) => {
  const app = await build(t)
  const [a, b, stranger, owner, moderator, member, other] = await Promise.all(Array.from({ length: 7 }, () => signUp(app)))
  await befriend(app, a, b)
  const room = await createRoom(app, owner, [moderator, member, other])
  await ok(app, 'set_role', { room_id: room, uid: moderator.uid, role: 'moderator' }, owner)

  const cells: { what: string; sender: TestSession; target: Target; actor: TestSession; edit: number; del: number }[] = [
    { what: 'own direct message', sender: a, target: { to_uid: b.uid }, actor: a, edit: 200, del: 200 },
    { what: "the other side's direct message", sender: b, target: { to_uid: a.uid }, actor: a, edit: 403, del: 403 },
    { what: "a stranger's direct message", sender: a, target: { to_uid: b.uid }, actor: stranger, edit: 404, del: 404 },
    { what: 'own room message', sender: member, target: { room_id: room }, actor: member, edit: 200, del: 200 },
    { what: "another member's room message, as a member", sender: other, target: { room_id: room }, actor: member, edit: 403, del: 403 },
    { what: "another member's room message, as a moderator", sender: member, target: { room_id: room }, actor: moderator, edit: 403, del: 200 },
    { what: "another member's room message, as the owner", sender: member, target: { room_id: room }, actor: owner, edit: 403, del: 200 },
    { what: "the owner's room message, as a moderator", sender: owner, target: { room_id: room }, actor: moderator, edit: 403, del: 200 },
    { what: "a message in a room I'm not in", sender: member, target: { room_id: room }, actor: stranger, edit: 403, del: 403 },
  ]
  for (const cell of cells) {
    const forEdit = await send(app, cell.sender, cell.target, `to edit: ${cell.what}`)
    const edited = await call(app, 'edit_msg', { msg_id: forEdit, msg: 'edited' }, cell.actor.token)
    t.equal(edited.status, cell.edit, `edit_msg, ${cell.what}: ${cell.edit}`)
    const forDelete = await send(app, cell.sender, cell.target, `to delete: ${cell.what}`)
    const deleted = await call(app, 'delete_msg', { msg_id: forDelete }, cell.actor.token)
    t.equal(deleted.status, cell.del, `delete_msg, ${cell.what}: ${cell.del}`)
  }

  const gone = await send(app, a, { to_uid: b.uid }, 'deleted already')
  await ok(app, 'delete_msg', { msg_id: gone }, a)
  t.equal((await call(app, 'edit_msg', { msg_id: gone, msg: 'again' }, a.token)).status, 404, 'edit_msg, a deleted message: 404')
  t.equal((await call(app, 'delete_msg', { msg_id: gone }, a.token)).status, 404, 'delete_msg, a deleted message: 404')
  t.equal((await call(app, 'edit_msg', { msg_id: 987654321, msg: 'x' }, a.token)).status, 404, 'edit_msg, no such message: 404')
  t.equal((await call(app, 'delete_msg', { msg_id: 987654321 }, a.token)).status, 404, 'delete_msg, no such message: 404')
})

t.test('permission matrix: clear_history, get_history and search_msgs', async (t) => {
  const app = await build(t)
  const [a, b, stranger, owner, moderator, member, banned] = await Promise.all(Array.from({ length: 7 }, () => signUp(app)))
  await befriend(app, a, b)
  await befriend(app, a, stranger)
  await send(app, a, { to_uid: b.uid }, 'alpha from a')
  await send(app, b, { to_uid: a.uid }, 'alpha from b')
  await send(app, a, { to_uid: stranger.uid }, 'beta only for the stranger')
  const room = await createRoom(app, owner, [moderator, member, banned])
  await ok(app, 'set_role', { room_id: room, uid: moderator.uid, role: 'moderator' }, owner)
  await send(app, member, { room_id: room }, 'alpha in the room')
  await ok(app, 'ban_member', { room_id: room, uid: banned.uid }, owner)

  // What each reader gets: the status and, on success, how many messages it sees.
  const readCells: { what: string; actor: TestSession; target: Target; expected: { status: number; n?: number } }[] = [
    { what: 'direct, the sender side', actor: a, target: { to_uid: b.uid }, expected: { status: 200, n: 2 } },
    { what: 'direct, the other side', actor: b, target: { to_uid: a.uid }, expected: { status: 200, n: 2 } },
    { what: 'direct with someone I never wrote to (only our conversation: empty)', actor: b, target: { to_uid: stranger.uid }, expected: { status: 200, n: 0 } },
    { what: "direct with a user who wrote to someone else (not theirs to read)", actor: stranger, target: { to_uid: b.uid }, expected: { status: 200, n: 0 } },
    { what: 'direct with a user who does not exist', actor: a, target: { to_uid: NO_SUCH_USER }, expected: { status: 404 } },
    { what: 'room, a member', actor: member, target: { room_id: room }, expected: { status: 200, n: 1 } },
    { what: 'room, a moderator', actor: moderator, target: { room_id: room }, expected: { status: 200, n: 1 } },
    { what: 'room, the owner', actor: owner, target: { room_id: room }, expected: { status: 200, n: 1 } },
    { what: 'room, not a member', actor: stranger, target: { room_id: room }, expected: { status: 403 } },
    { what: 'room, banned', actor: banned, target: { room_id: room }, expected: { status: 403 } },
  ]
  for (const cell of readCells) {
    const got = await call(app, 'get_history', { ...cell.target }, cell.actor.token)
    t.same(
      got.status === 200 ? { status: 200, n: got.body.messages.length } : { status: got.status },
      cell.expected,
      `get_history, ${cell.what}`,
    )
    const found = await call(app, 'search_msgs', { ...cell.target, query: 'alpha' }, cell.actor.token)
    t.same(
      found.status === 200 ? { status: 200, n: found.body.messages.length } : { status: found.status },
      cell.expected,
      `search_msgs, ${cell.what}`,
    )
  }

  // Refusals first: the owner's clear (last) changes the room for everyone.
  const clearCells: { what: string; actor: TestSession; target: Target; status: number }[] = [
    { what: 'direct, the sender side', actor: a, target: { to_uid: b.uid }, status: 200 },
    { what: 'direct, the other side', actor: b, target: { to_uid: a.uid }, status: 200 },
    { what: 'direct with a user who does not exist', actor: a, target: { to_uid: NO_SUCH_USER }, status: 404 },
    { what: 'room, a member', actor: member, target: { room_id: room }, status: 403 },
    { what: 'room, a moderator', actor: moderator, target: { room_id: room }, status: 403 },
    { what: 'room, not a member', actor: stranger, target: { room_id: room }, status: 403 },
    { what: 'room, banned', actor: banned, target: { room_id: room }, status: 403 },
    { what: 'room, the owner', actor: owner, target: { room_id: room }, status: 200 },
  ]
  for (const cell of clearCells) {
    const cleared = await call(app, 'clear_history', { ...cell.target }, cell.actor.token)
    t.equal(cleared.status, cell.status, `clear_history, ${cell.what}: ${cell.status}`)
  }
  t.equal((await call(app, 'clear_history', { to_uid: b.uid, room_id: room }, a.token)).status, 400, 'clear_history naming both a user and a room: 400')
})

t.test('edit: message_edited reaches the other side and every room member; history shows the new text', async (t) => {
  const app = await build(t)
  const [a, b, owner, member, outsider] = await Promise.all(Array.from({ length: 5 }, () => signUp(app)))
  await befriend(app, a, b)
  const room = await createRoom(app, owner, [member])
  const [fromA, fromB, fromOwner, fromMember, fromOutsider] = await Promise.all([a, b, owner, member, outsider].map((s) => drain(app, s)))

  const direct = await send(app, a, { to_uid: b.uid }, 'first draft')
  const edited = await ok(app, 'edit_msg', { msg_id: direct, msg: 'final text' }, a)
  t.equal(edited.msg_id, direct, 'edit_msg answers the msg_id')
  t.type(edited.edited_at, 'number', 'and edited_at, a number')

  const seenByB = await collect(app, b, fromB)
  const [event] = ofType(seenByB.events, 'message_edited')
  t.match(
    event,
    { type: 'message_edited', ruid: a.uid, text: a.login, msg_id: direct, msg: 'final text', edited_at: edited.edited_at },
    'the other side gets message_edited with msg_id, the new text and edited_at',
  )
  t.type(event?.eid, 'number', 'the event has an eid')
  t.type(event?.time, 'number', 'and a time')
  t.same(
    seenByB.msgs.map((m) => ({ msg_id: m.msg_id, text: m.text, edited_at: m.edited_at })),
    [{ msg_id: direct, text: 'final text', edited_at: edited.edited_at }],
    'update_data read from before the edit carries the message with its new text and edited_at',
  )
  t.equal(ofType((await collect(app, a, fromA)).events, 'message_edited').length, 1, "the sender's other devices hear of the edit too")

  for (const [who, target] of [
    [a, { to_uid: b.uid }],
    [b, { to_uid: a.uid }],
  ] as const) {
    const [shown] = (await history(app, who, target)).messages
    t.match(shown, { msg_id: direct, text: 'final text', edited_at: edited.edited_at }, `${who === a ? 'the sender' : 'the recipient'}'s history shows the new text and edited_at`)
  }
  const unedited = await send(app, b, { to_uid: a.uid }, 'never edited')
  t.equal((await history(app, a, { to_uid: b.uid })).messages.find((m) => m.msg_id === unedited)?.edited_at, null, 'an unedited message has edited_at null')

  const inRoom = await send(app, member, { room_id: room }, 'room draft')
  const roomEdit = await ok(app, 'edit_msg', { msg_id: inRoom, msg: 'room final' }, member)
  for (const [who, from] of [
    [owner, fromOwner],
    [member, fromMember],
  ] as const) {
    const events = ofType((await collect(app, who, from)).events, 'message_edited')
    t.match(
      events,
      [{ msg_id: inRoom, msg: 'room final', edited_at: roomEdit.edited_at, room_id: room, ruid: member.uid }],
      `room member ${who === owner ? 'owner' : 'sender'} gets message_edited with the room_id`,
    )
  }
  t.equal(ofType((await collect(app, outsider, fromOutsider)).events, 'message_edited').length, 0, 'someone outside the room hears nothing')
  t.match((await history(app, owner, { room_id: room })).messages, [{ msg_id: inRoom, text: 'room final', edited_at: roomEdit.edited_at }], 'room history shows the new text')
})

t.test('edit: the text cap applies to edits', async (t) => {
  const app = await build(t, { maxMessageChars: 10 })
  const [a, b] = await Promise.all([signUp(app), signUp(app)])
  await befriend(app, a, b)
  const msgId = await send(app, a, { to_uid: b.uid }, 'short')
  const tooLong = await call(app, 'edit_msg', { msg_id: msgId, msg: 'x'.repeat(11) }, a.token)
  t.same({ status: tooLong.status, error: tooLong.body.error }, { status: 400, error: 'bad_request' }, 'an edit over MAX_MESSAGE_CHARS is 400 bad_request')
  t.equal((await history(app, b, { to_uid: a.uid })).messages[0].text, 'short', 'and the message keeps its text')
  t.equal((await call(app, 'edit_msg', { msg_id: msgId, msg: '😀'.repeat(10) }, a.token)).status, 200, 'exactly the cap (counted in characters, not UTF-16 units) is accepted')
  t.equal((await call(app, 'edit_msg', { msg_id: msgId, msg: '' }, a.token)).status, 400, 'an empty edit is 400')
})

t.test('delete: message_deleted to those who see the conversation; the message never comes back', async (t) => {
  const app = await build(t)
  const [a, b, owner, moderator, member, outsider] = await Promise.all(Array.from({ length: 6 }, () => signUp(app)))
  await befriend(app, a, b)
  const room = await createRoom(app, owner, [moderator, member])
  await ok(app, 'set_role', { room_id: room, uid: moderator.uid, role: 'moderator' }, owner)
  const [fromA, fromB, fromOwner, fromModerator, fromMember, fromOutsider] = await Promise.all(
    [a, b, owner, moderator, member, outsider].map((s) => drain(app, s)),
  )

  const kept = await send(app, a, { to_uid: b.uid }, 'kept words')
  const doomed = await send(app, a, { to_uid: b.uid }, 'doomed secret words')
  t.equal((await dialogs(app, b)).dialogs[0].last_message?.msg_id, doomed, 'before the delete, the doomed message is the last one')
  await ok(app, 'delete_msg', { msg_id: doomed }, a)

  const seenByB = await collect(app, b, fromB)
  t.match(ofType(seenByB.events, 'message_deleted'), [{ msg_id: doomed, ruid: a.uid, text: a.login }], 'the other side gets message_deleted')
  t.same(ids(seenByB.msgs as { msg_id: unknown }[]), [kept], 'update_data read from an older cursor skips the deleted message')
  t.match(ofType((await collect(app, a, fromA)).events, 'message_deleted'), [{ msg_id: doomed }], "the sender's other devices get message_deleted too")
  for (const [who, target, name] of [
    [a, { to_uid: b.uid }, 'sender'],
    [b, { to_uid: a.uid }, 'recipient'],
  ] as const) {
    t.same(ids((await history(app, who, target)).messages), [kept], `get_history (${name}) never shows it`)
    t.same(ids(await search(app, who, target, 'doomed')), [], `search_msgs (${name}) never finds it`)
    t.same(ids(await search(app, who, target, 'words')), [kept], `search_msgs (${name}) finds only the kept message`)
    const [dialog] = (await dialogs(app, who)).dialogs
    t.equal(dialog.last_message?.msg_id, kept, `get_dialogs (${name}): last_message is the one before it`)
  }
  t.same(ids((await history(app, b, { to_uid: a.uid }, { after: kept })).messages), [], 'paging forward past the last kept message finds nothing')

  const roomKept = await send(app, owner, { room_id: room }, 'room kept')
  const roomDoomed = await send(app, member, { room_id: room }, 'room doomed')
  await ok(app, 'delete_msg', { msg_id: roomDoomed }, moderator)
  for (const [who, from, name] of [
    [owner, fromOwner, 'owner'],
    [moderator, fromModerator, 'moderator'],
    [member, fromMember, 'sender'],
  ] as const) {
    const seen = await collect(app, who, from)
    t.match(ofType(seen.events, 'message_deleted'), [{ msg_id: roomDoomed, room_id: room, ruid: moderator.uid }], `room ${name} gets message_deleted`)
    t.notOk(ids(seen.msgs as { msg_id: unknown }[]).includes(roomDoomed), `room ${name}: update_data from an older cursor skips it`)
  }
  t.equal(ofType((await collect(app, outsider, fromOutsider)).events, 'message_deleted').length, 0, 'someone outside the room hears nothing')
  t.same(ids((await history(app, member, { room_id: room })).messages), [roomKept], 'room history never shows it')
  t.same(ids(await search(app, member, { room_id: room }, 'room')), [roomKept], 'room search never finds it')
  const roomDialog = (await dialogs(app, member)).dialogs.find((d) => d.room_id === room)
  t.equal(roomDialog?.last_message?.msg_id, roomKept, "get_dialogs: the room's last_message is the one before it")
})

t.test('clear_history: a direct chat for the clearer only, a room for every member', async (t) => {
  const app = await build(t)
  const [a, b, owner, member, other] = await Promise.all(Array.from({ length: 5 }, () => signUp(app)))
  await befriend(app, a, b)
  const before = [
    await send(app, a, { to_uid: b.uid }, 'old one'),
    await send(app, b, { to_uid: a.uid }, 'old two'),
    await send(app, a, { to_uid: b.uid }, 'old three'),
  ]
  const [fromA, fromB] = await Promise.all([drain(app, a), drain(app, b)])
  await ok(app, 'clear_history', { to_uid: b.uid }, a)

  t.same((await history(app, a, { to_uid: b.uid })).messages, [], "the clearer's history is empty")
  t.same(await search(app, a, { to_uid: b.uid }, 'old'), [], 'and search finds nothing of it')
  const [aDialog] = (await dialogs(app, a)).dialogs
  t.same({ last_message: aDialog.last_message, unread: aDialog.unread }, { last_message: null, unread: 0 }, "the clearer's dialog has no last message and nothing unread")
  t.same(ids((await history(app, b, { to_uid: a.uid })).messages), before, 'the other side still sees everything')
  t.same(ids(await search(app, b, { to_uid: a.uid }, 'old')), [...before].reverse(), 'and still finds everything')
  t.match(ofType((await collect(app, a, fromA)).events, 'history_cleared'), [{ to_uid: b.uid, through_msg_id: before[2], ruid: a.uid }], "the clearer's devices get history_cleared")
  t.equal(ofType((await collect(app, b, fromB)).events, 'history_cleared').length, 0, 'the other side gets no history_cleared')

  const after = await send(app, b, { to_uid: a.uid }, 'new after the clear')
  t.same(ids((await history(app, a, { to_uid: b.uid })).messages), [after], 'a new message after the clear appears for the clearer')
  t.same(ids(await search(app, a, { to_uid: b.uid }, 'new')), [after], 'and is found')
  t.same(ids((await history(app, b, { to_uid: a.uid })).messages), [...before, after], 'the other side sees old and new')

  const room = await createRoom(app, owner, [member, other])
  const roomOld = [await send(app, member, { room_id: room }, 'room old'), await send(app, other, { room_id: room }, 'room older')]
  const froms = await Promise.all([owner, member, other].map((s) => drain(app, s)))
  await ok(app, 'clear_history', { room_id: room }, owner)
  for (const [i, who] of [owner, member, other].entries()) {
    t.same((await history(app, who, { room_id: room })).messages, [], `room history is empty for member ${i}`)
    t.match(ofType((await collect(app, who, froms[i])).events, 'history_cleared'), [{ room_id: room, through_msg_id: roomOld[1], ruid: owner.uid }], `member ${i} gets history_cleared`)
  }
  t.same(await search(app, member, { room_id: room }, 'room'), [], 'cleared room messages are not found')
  const roomNew = await send(app, other, { room_id: room }, 'room new')
  t.same(ids((await history(app, member, { room_id: room })).messages), [roomNew], 'a new room message after the clear appears')
})

t.test('history paging: 25 messages, 10 a page, back with before and forward with after', async (t) => {
  const app = await build(t)
  const [a, b] = await Promise.all([signUp(app), signUp(app)])
  await befriend(app, a, b)
  const all: number[] = []
  for (let i = 0; i < 25; i++) all.push(await send(app, i % 2 ? b : a, i % 2 ? { to_uid: a.uid } : { to_uid: b.uid }, `message ${i}`))
  const target = { to_uid: b.uid }

  // Backward: the newest page first, each page oldest first.
  const back1 = await history(app, a, target, { count: 10 })
  t.same({ ids: ids(back1.messages), has_more: back1.has_more }, { ids: all.slice(15), has_more: true }, 'newest page: messages 16..25, oldest first, more before')
  const back2 = await history(app, a, target, { count: 10, before: back1.messages[0]?.msg_id ?? all[15] })
  t.same({ ids: ids(back2.messages), has_more: back2.has_more }, { ids: all.slice(5, 15), has_more: true }, 'before the first of it: 6..15, more before')
  const back3 = await history(app, a, target, { count: 10, before: back2.messages[0]?.msg_id ?? all[5] })
  t.same({ ids: ids(back3.messages), has_more: back3.has_more }, { ids: all.slice(0, 5), has_more: false }, 'then 1..5, nothing more')
  t.same([...ids(back3.messages), ...ids(back2.messages), ...ids(back1.messages)], all, 'paging back: no gaps, no repeats')
  t.same((await history(app, a, target, { count: 10, before: all[0] })).messages, [], 'before the first message: nothing')

  // Forward, from the very beginning.
  const fromStart = await call(app, 'get_history', { ...target, count: 10, after: 0 }, a.token)
  t.same(
    fromStart.status === 200 ? { ids: ids(fromStart.body.messages), has_more: fromStart.body.has_more } : { status: fromStart.status, body: fromStart.body },
    { ids: all.slice(0, 10), has_more: true },
    'after: 0 starts at the beginning: 1..10, more after',
  )
  const fwd2 = await history(app, a, target, { count: 10, after: all[9] })
  t.same({ ids: ids(fwd2.messages), has_more: fwd2.has_more }, { ids: all.slice(10, 20), has_more: true }, 'after the 10th: 11..20, more after')
  const fwd3 = await history(app, a, target, { count: 10, after: fwd2.messages[9]?.msg_id ?? all[19] })
  t.same({ ids: ids(fwd3.messages), has_more: fwd3.has_more }, { ids: all.slice(20), has_more: false }, 'then 21..25, nothing more')
  const fwd4 = await history(app, a, target, { count: 10, after: all[24] })
  t.same({ ids: ids(fwd4.messages), has_more: fwd4.has_more }, { ids: [], has_more: false }, 'after the last: empty, nothing more')
  t.same(ids((await history(app, a, target, { count: 10, after: all[4], before: all[8] })).messages), all.slice(5, 8), 'after and before together bound the page')
  t.equal((await call(app, 'get_history', { ...target, count: 101 }, a.token)).status, 400, 'count over 100 is 400')
  t.match((await history(app, a, target, { count: 1 })).messages, [{ msg_id: all[24], text: 'message 24', sender_uid: a.uid, sender_login: a.login, to_uid: b.uid, room_id: null, kind: 'text', edited_at: null }], 'a message carries its fields')
})

/**
 * While `loops` keep sending concurrently, a reader pages forward with `after` from 0
 * until it caught up after they stopped: it must see every message once, in id order.
 */
async function pageWhileSending(
  t: Test,
  app: App,
  reader: TestSession,
  target: Target,
  loops: { from: TestSession; target: Target }[],
  seed: number,
) {
  const PER_LOOP = 30
  const acked: number[] = []
  const seen: number[] = []
  let pages = 0
  let pos = 0
  const first = await call(app, 'get_history', { ...target, after: 0, count: 7 }, reader.token)
  t.equal(first.status, 200, 'the reader may start paging forward from after: 0')
  if (first.status === 200) {
    seen.push(...ids(first.body.messages))
  } else {
    // So that the rest is still checked: only the seed exists yet; take it as the start.
    seen.push(...ids((await history(app, reader, target)).messages))
  }
  pos = seen[seen.length - 1] ?? 0
  t.same(seen, [seed], 'before the senders start, the reader sees the seed')

  let sending = true
  const senders = Promise.all(
    loops.map(async (loop, i) => {
      for (let k = 0; k < PER_LOOP; k++) acked.push(await send(app, loop.from, loop.target, `loop ${i} message ${k}`))
    }),
  ).finally(() => {
    sending = false
  })
  const reading = (async () => {
    for (;;) {
      const stoppedBefore = !sending
      const page = await history(app, reader, target, { after: pos, count: 7 })
      pages++
      seen.push(...ids(page.messages))
      if (page.messages.length > 0) pos = page.messages[page.messages.length - 1].msg_id
      if (page.messages.length === 0 && stoppedBefore) return page
      if (page.messages.length === 0) await sleep(2)
    }
  })()
  await senders
  const last = await reading
  t.equal(last.has_more, false, 'caught up: has_more is false')
  t.ok(pages > 3, `the reader paged while they were sending (${pages} pages)`)
  t.ok(
    seen.every((id, i) => i === 0 || id > seen[i - 1]),
    'the pages, one after another, are in strictly increasing msg_id',
  )
  t.equal(new Set(seen).size, seen.length, 'no message twice')
  t.same([...seen].sort((x, y) => x - y), [seed, ...acked].sort((x, y) => x - y), 'the union is exactly every message sent')
}

t.test('history paging under concurrent inserts: a room with 3 senders', async (t) => {
  const app = await build(t)
  const [owner, s1, s2, s3, reader] = await Promise.all(Array.from({ length: 5 }, () => signUp(app)))
  const room = await createRoom(app, owner, [s1, s2, s3, reader])
  const seed = await send(app, owner, { room_id: room }, 'seed')
  await pageWhileSending(t, app, reader, { room_id: room }, [s1, s2, s3].map((from) => ({ from, target: { room_id: room } })), seed)
})

t.test('history paging under concurrent inserts: a direct chat, both sides sending', async (t) => {
  const app = await build(t)
  const [a, b] = await Promise.all([signUp(app), signUp(app)])
  await befriend(app, a, b)
  const seed = await send(app, a, { to_uid: b.uid }, 'seed')
  await pageWhileSending(
    t,
    app,
    b,
    { to_uid: a.uid },
    [
      { from: a, target: { to_uid: b.uid } },
      { from: b, target: { to_uid: a.uid } },
      { from: a, target: { to_uid: b.uid } },
    ],
    seed,
  )
})

t.test('search: words and prefixes regardless of case, within one conversation', async (t) => {
  const app = await build(t)
  const [a, b, c, owner, outsider] = await Promise.all(Array.from({ length: 5 }, () => signUp(app)))
  await befriend(app, a, b)
  await befriend(app, a, c)
  const helloWorld = await send(app, a, { to_uid: b.uid }, 'hello World')
  const helloThere = await send(app, b, { to_uid: a.uid }, 'Hello there')
  const worldPeace = await send(app, a, { to_uid: b.uid }, 'world peace, at last!')
  const again = await send(app, b, { to_uid: a.uid }, 'Another HELLO, world; again')
  const zebra = await send(app, a, { to_uid: c.uid }, 'zebra crossing hello')
  const ab = { to_uid: b.uid }

  t.same(ids(await search(app, a, ab, 'Hel')), [again, helloThere, helloWorld], '"Hel" finds every hello, newest first')
  t.same(ids(await search(app, a, ab, 'WORLD')), [again, worldPeace, helloWorld], 'case does not matter')
  t.same(ids(await search(app, a, ab, 'hel wor')), [again, helloWorld], 'two words must both match (as prefixes)')
  t.same(ids(await search(app, a, ab, '  hello,   world!! ')), [again, helloWorld], 'punctuation and spaces between words are ignored')
  t.same(ids(await search(app, a, ab, 'ello')), [], 'a word is matched from its beginning only')
  t.same(ids(await search(app, a, ab, 'zebra')), [], 'a word that appears only in another conversation finds nothing here')
  t.same(ids(await search(app, a, { to_uid: c.uid }, 'zebra')), [zebra], 'it is found in its own conversation')
  t.same(ids(await search(app, c, { to_uid: b.uid }, 'hello')), [], 'someone else searching a party of our chat finds none of it')
  t.match(await search(app, b, { to_uid: a.uid }, 'peace'), [{ msg_id: worldPeace, text: 'world peace, at last!', sender_uid: a.uid }], 'the other side finds the same, with the message fields')

  await ok(app, 'delete_msg', { msg_id: worldPeace }, a)
  t.same(ids(await search(app, b, { to_uid: a.uid }, 'peace')), [], 'a deleted message is not found')
  await ok(app, 'clear_history', { to_uid: a.uid }, b)
  t.same(ids(await search(app, b, { to_uid: a.uid }, 'hello')), [], 'cleared messages are not found by the clearer')
  t.same(ids(await search(app, a, ab, 'hello')), [again, helloThere, helloWorld], 'but still by the other side')

  const room = await createRoom(app, owner, [a])
  const inRoom = await send(app, a, { room_id: room }, 'Hello room')
  t.same(ids(await search(app, owner, { room_id: room }, 'hello')), [inRoom], 'a room member searches the room only')
  const refused = await call(app, 'search_msgs', { room_id: room, query: 'hello' }, outsider.token)
  t.same({ status: refused.status, error: refused.body.error }, { status: 403, error: 'forbidden' }, 'a non-member of the room gets 403')
  await ok(app, 'clear_history', { room_id: room }, owner)
  t.same(ids(await search(app, a, { room_id: room }, 'hello')), [], 'messages of a cleared room are not found')
})

t.test('search: paging with before; a query without a word is 400', async (t) => {
  const app = await build(t)
  const [a, b] = await Promise.all([signUp(app), signUp(app)])
  await befriend(app, a, b)
  const items: number[] = []
  for (let i = 0; i < 12; i++) {
    items.push(await send(app, a, { to_uid: b.uid }, `page item ${i}`))
    await send(app, b, { to_uid: a.uid }, `noise ${i}`)
  }
  const newestFirst = [...items].reverse()
  const target = { to_uid: b.uid }
  const p1 = await search(app, a, target, 'item', { count: 5 })
  t.same(ids(p1), newestFirst.slice(0, 5), 'first page: the 5 newest matches, newest first')
  const p2 = await search(app, a, target, 'item', { count: 5, before: p1[4]?.msg_id ?? newestFirst[4] })
  t.same(ids(p2), newestFirst.slice(5, 10), 'before the last of it: the next 5')
  const p3 = await search(app, a, target, 'item', { count: 5, before: p2[4]?.msg_id ?? newestFirst[9] })
  t.same(ids(p3), newestFirst.slice(10), 'then the last 2')
  t.same(await search(app, a, target, 'item', { count: 5, before: items[0] }), [], 'before the oldest match: nothing')

  for (const query of ['!!!', '... ?? -- ,', ' ']) {
    const refused = await call(app, 'search_msgs', { ...target, query }, a.token)
    t.same({ status: refused.status, error: refused.body.error }, { status: 400, error: 'bad_request' }, `query ${JSON.stringify(query)} has no word: 400`)
  }
  t.equal((await call(app, 'search_msgs', { ...target, query: '' }, a.token)).status, 400, 'an empty query is 400')
})

t.test('search: over ~2000 messages the GIN index messages_search is usable', async (t) => {
  const app = await build(t)
  const [a, b, c] = await Promise.all([signUp(app), signUp(app), signUp(app)])
  await befriend(app, a, b)
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel']
  const rows = Array.from({ length: 2000 }, (_, i) => {
    const toC = i % 5 === 4
    return {
      sender_id: i % 3 === 0 ? b.uid : a.uid,
      recipient_id: toC ? c.uid : i % 3 === 0 ? a.uid : b.uid,
      text: `filler ${words[i % 8]} ${words[(i * 7) % 8]} number${i}${i % 400 === 7 ? ' Quetzalcoatl' : ''}`,
    }
  })
  await app.db('messages').insert(rows)
  await app.db.raw('ANALYZE messages')

  // The rare word is in rows 7, 407, 807, 1207, 1607: those with i % 5 === 4 went to c.
  const expected = rows.map((r, i) => ({ ...r, i })).filter((r) => r.text.includes('Quetzal') && r.recipient_id !== c.uid)
  const found = await search(app, a, { to_uid: b.uid }, 'quetz', { count: 100 })
  t.same(found.map((m) => m.text).sort(), expected.map((r) => r.text).sort(), 'search finds exactly the direct messages with the rare word among 2000')
  t.equal((await search(app, a, { to_uid: b.uid }, 'bravo hotel', { count: 100 })).length, 100, 'a common pair of words fills a page')

  const plan = await app.db.transaction(async (trx) => {
    // Without sequential and plain index scans, only an index whose operator class serves
    // `search @@ tsquery` can avoid a (disabled) sequential scan: that is messages_search.
    await trx.raw('SET LOCAL enable_seqscan = off')
    await trx.raw('SET LOCAL enable_indexscan = off')
    const { rows: lines } = await trx.raw("EXPLAIN SELECT m.id FROM messages m WHERE m.search @@ to_tsquery('simple', ?)", ['quetz:* & filler:*'])
    return (lines as Record<string, string>[]).map((line) => line['QUERY PLAN']).join('\n')
  })
  t.match(plan, /messages_search/, 'the planner can answer a word-prefix query with the GIN index messages_search')
})

t.test('read markers and unread counts', async (t) => {
  const app = await build(t)
  const [a, b, owner, member] = await Promise.all(Array.from({ length: 4 }, () => signUp(app)))
  await befriend(app, a, b)
  const fromB: number[] = []
  for (let i = 0; i < 5; i++) fromB.push(await send(app, b, { to_uid: a.uid }, `from b ${i}`))
  const fromA = [await send(app, a, { to_uid: b.uid }, 'from a 0'), await send(app, a, { to_uid: b.uid }, 'from a 1')]
  const unreadOf = async (who: TestSession, key: Partial<Dialog>) =>
    (await dialogs(app, who)).dialogs.find((d) => (key.to_uid !== undefined ? d.to_uid === key.to_uid : d.room_id === key.room_id))?.unread

  t.equal(await unreadOf(a, { to_uid: b.uid }), 5, 'a: 5 unread from b; own messages never count')
  t.equal(await unreadOf(b, { to_uid: a.uid }), 2, 'b: 2 unread from a; own messages never count')
  t.same(await ok(app, 'mark_read', { to_uid: b.uid, msg_id: fromB[2] }, a), { unread: 2 }, 'mark_read through the third: 2 remain')
  t.equal(await unreadOf(a, { to_uid: b.uid }), 2, 'get_dialogs agrees')
  t.same(await ok(app, 'mark_read', { to_uid: b.uid, msg_id: fromB[0] }, a), { unread: 2 }, 'marking an older message read does not move the marker back')
  t.equal(await unreadOf(a, { to_uid: b.uid }), 2, 'get_dialogs still 2')
  await send(app, a, { to_uid: b.uid }, 'from a 2')
  t.equal(await unreadOf(a, { to_uid: b.uid }), 2, 'sending does not add to my own unread count')
  await send(app, b, { to_uid: a.uid }, 'from b 5')
  t.equal(await unreadOf(a, { to_uid: b.uid }), 3, 'a new message from the other side does')
  await ok(app, 'delete_msg', { msg_id: fromB[4] }, b)
  t.equal(await unreadOf(a, { to_uid: b.uid }), 2, 'a deleted unread message no longer counts')
  t.same(await ok(app, 'mark_read', { to_uid: a.uid, msg_id: fromA[1] }, b), { unread: 1 }, "b marks a's second read: a's third remains")

  const room = await createRoom(app, owner, [member, a])
  const roomMsgs: number[] = []
  for (let i = 0; i < 3; i++) roomMsgs.push(await send(app, member, { room_id: room }, `room ${i}`))
  await send(app, owner, { room_id: room }, 'owner speaks')
  await send(app, owner, { room_id: room }, 'owner again')
  t.equal(await unreadOf(owner, { room_id: room }), 3, "room: the owner has the member's 3 unread, not their own 2")
  t.equal(await unreadOf(member, { room_id: room }), 2, "room: the member has the owner's 2 unread")
  t.equal(await unreadOf(a, { room_id: room }), 5, 'room: a third member has all 5 unread')
  t.equal(await unreadOf(a, { to_uid: b.uid }), 2, 'and the direct chat keeps its own count')
  t.same(await ok(app, 'mark_read', { room_id: room, msg_id: roomMsgs[1] }, a), { unread: 3 }, 'room mark_read answers the remaining count')
  t.same(await ok(app, 'mark_read', { room_id: room, msg_id: roomMsgs[2] }, owner), { unread: 0 }, "the owner's last unread is the member's third")
  const outsider = await signUp(app)
  t.equal((await call(app, 'mark_read', { room_id: room, msg_id: roomMsgs[2] }, outsider.token)).status, 403, 'mark_read in a room I am not in: 403')
})

t.test('get_dialogs: direct chats and rooms, newest activity first, paged', async (t) => {
  const app = await build(t)
  const [me, p1, p2, p3, host] = await Promise.all(Array.from({ length: 5 }, () => signUp(app)))
  for (const peer of [p1, p2, p3]) await befriend(app, me, peer)
  const mine = await createRoom(app, me, [], 'my room')
  const theirs = await createRoom(app, host, [me], 'their room')
  t.same(await dialogs(app, p3), { dialogs: [], total: 0 }, 'a contact never written to is no dialog')

  // All within one second: the order must follow the activity, not ids.
  await eventually(() => Date.now() % 1000 <= 100, { what: 'the start of a second', timeoutMs: 1000, everyMs: 10 })
  await send(app, me, { to_uid: p2.uid }, 'to p2')
  await send(app, host, { room_id: theirs }, 'in their room')
  await send(app, p1, { to_uid: me.uid }, 'from p1')
  await send(app, me, { room_id: mine }, 'in my room')

  const all = await dialogs(app, me)
  t.equal(all.total, 4, 'four conversations: two direct, two rooms')
  t.same(
    all.dialogs.map((d) => ({ to_uid: d.to_uid, room_id: d.room_id, title: d.title, last: d.last_message?.text })),
    [
      { to_uid: undefined, room_id: mine, title: 'my room', last: 'in my room' },
      { to_uid: p1.uid, room_id: undefined, title: p1.login, last: 'from p1' },
      { to_uid: undefined, room_id: theirs, title: 'their room', last: 'in their room' },
      { to_uid: p2.uid, room_id: undefined, title: p2.login, last: 'to p2' },
    ],
    'newest activity first (within one second too), each with its title and last message',
  )
  t.ok(all.dialogs.every((d, i) => i === 0 || d.last_activity <= all.dialogs[i - 1].last_activity), 'last_activity never grows down the list')

  const page1 = await dialogs(app, me, { offset: 0, count: 3 })
  const page2 = await dialogs(app, me, { offset: 3, count: 3 })
  t.same([page1.total, page2.total], [4, 4], 'every page tells the total')
  t.same([page1.dialogs.length, page2.dialogs.length], [3, 1], 'pages of 3: 3, then 1')
  t.same([...page1.dialogs, ...page2.dialogs], all.dialogs, 'the pages together are the whole list, in order')
  t.same(await dialogs(app, me, { offset: 4 }), { dialogs: [], total: 4 }, 'past the end: no dialogs, the same total')

  const ofP2 = await dialogs(app, p2)
  t.match(ofP2, { total: 1, dialogs: [{ to_uid: me.uid, title: me.login, unread: 1, last_message: { text: 'to p2', sender_uid: me.uid } }] }, 'the recipient has the dialog too, with the message unread')

  // A message in a later second moves the oldest conversation to the top.
  await eventually(() => Math.floor(Date.now() / 1000) > all.dialogs[0].last_activity, { what: 'a later second', timeoutMs: 2000, everyMs: 20 })
  await send(app, p2, { to_uid: me.uid }, 'p2 again')
  t.same((await dialogs(app, me, { count: 1 })).dialogs.map((d) => d.to_uid), [p2.uid], 'new activity moves a conversation to the top')
})

t.test('kinds: a sticker is stored and returned as one; an unknown kind is 400', async (t) => {
  const app = await build(t)
  const [a, b, owner] = await Promise.all([signUp(app), signUp(app), signUp(app)])
  await befriend(app, a, b)
  const room = await createRoom(app, owner, [a])
  const [fromB, fromOwner] = await Promise.all([drain(app, b), drain(app, owner)])
  const sticker = await send(app, a, { to_uid: b.uid }, ':thumbs_up:', { kind: 'sticker' })
  const text = await send(app, a, { to_uid: b.uid }, 'plain')
  const roomSticker = await send(app, a, { room_id: room }, ':wave:', { kind: 'sticker' })

  t.match((await history(app, b, { to_uid: a.uid })).messages, [{ msg_id: sticker, kind: 'sticker', text: ':thumbs_up:' }, { msg_id: text, kind: 'text' }], 'history: kind sticker, and text by default')
  t.match((await collect(app, b, fromB)).msgs, [{ msg_id: sticker, kind: 'sticker', text: ':thumbs_up:' }, { msg_id: text, kind: 'text' }], 'update_data: kind sticker')
  t.match((await history(app, owner, { room_id: room })).messages, [{ msg_id: roomSticker, kind: 'sticker' }], 'room history: kind sticker')
  t.match((await collect(app, owner, fromOwner)).msgs, [{ msg_id: roomSticker, kind: 'sticker', room_id: room }], 'room update_data: kind sticker')

  const unknown = await call(app, 'send_msg', { to_uid: b.uid, msg: 'x', kind: 'hologram' }, a.token)
  t.same({ status: unknown.status, error: unknown.body.error }, { status: 400, error: 'bad_request' }, 'an unknown kind is 400')
  t.equal((await history(app, b, { to_uid: a.uid })).messages.length, 2, 'and nothing was stored')
})

t.test('wiki dialect: edit_msg, delete_msg and get_history; refusals are bare strings', async (t) => {
  const app = await build(t)
  const [a, b, owner, outsider] = await Promise.all(Array.from({ length: 4 }, () => signUp(app)))
  await befriend(app, a, b)
  const msgId = await send(app, a, { to_uid: b.uid }, 'wiki draft')

  const edited = await wiki(app, 'edit_msg', { msg_id: msgId, msg: 'wiki final' }, a)
  t.match({ status: edited.status, body: edited.body }, { status: 200, body: { msg_id: msgId, edited_at: Number } }, 'edit_msg in the wiki dialect')
  const refusedEdit = await wiki(app, 'edit_msg', { msg_id: msgId, msg: 'hijack' }, b)
  const modernEdit = await call(app, 'edit_msg', { msg_id: msgId, msg: 'hijack' }, b.token)
  t.same({ status: refusedEdit.status, body: refusedEdit.body }, { status: 403, body: modernEdit.body.message }, "editing another's message: 403, the message as a bare string")

  const shown = await wiki(app, 'get_history', { to_uid: a.uid }, b)
  t.match({ status: shown.status, body: shown.body }, { status: 200, body: { messages: [{ msg_id: msgId, text: 'wiki final', edited_at: Number }], has_more: false } }, 'get_history in the wiki dialect')

  const refusedDelete = await wiki(app, 'delete_msg', { msg_id: msgId }, b)
  t.same({ status: refusedDelete.status, type: typeof refusedDelete.body }, { status: 403, type: 'string' }, "deleting another's direct message: 403, a bare string")
  const deleted = await wiki(app, 'delete_msg', { msg_id: msgId }, a)
  t.same({ status: deleted.status, body: deleted.body }, { status: 200, body: {} }, 'delete_msg in the wiki dialect')
  t.same((await wiki(app, 'get_history', { to_uid: a.uid }, b)).body, { messages: [], has_more: false }, 'the deleted message is gone from wiki history')
  const again = await wiki(app, 'delete_msg', { msg_id: msgId }, a)
  t.same({ status: again.status, type: typeof again.body }, { status: 404, type: 'string' }, 'deleting it again: 404, a bare string')

  const room = await createRoom(app, owner, [])
  const notMember = await wiki(app, 'get_history', { room_id: room }, outsider)
  t.same({ status: notMember.status, type: typeof notMember.body }, { status: 403, type: 'string' }, 'get_history of a room I am not in: 403, a bare string')
  const badCount = await wiki(app, 'get_history', { to_uid: a.uid, count: 0 }, b)
  t.same({ status: badCount.status, type: typeof badCount.body }, { status: 400, type: 'string' }, 'a malformed get_history: 400, a bare string')
})
