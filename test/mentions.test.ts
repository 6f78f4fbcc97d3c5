// Mentions: `@login` in a room message mentions that member (any case), `@all` every member;
// the mentioned get `mentioned` on the message (update_data, history) and a count of
// unread mentions per dialog in get_dialogs; a non-member, a banned member, the sender
// and direct messages mention nobody; an e-mail address is not a mention.
import t from 'tap'
import type { App } from '../src/app.js'
import { build, call, collect, drain, ok, signUp, type TestSession } from './helper.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>


const dialogOf = async (app: App, user: TestSession, roomId: number) =>
  ((await ok(app, 'get_dialogs', {}, user)).dialogs as Json[]).find((dialog) => dialog.room_id === roomId)!

t.test('@login mentions a member: flagged for them alone, counted in their dialog until read', async (t) => {
  const app = await build(t)
  const [owner, ann, ben, outsider] = await Promise.all([signUp(app), signUp(app), signUp(app), signUp(app)])
  const roomId = (await ok(app, 'create_room', { name: 'Mentions', type: 'public' }, owner)).room.room_id as number
  for (const user of [ann, ben]) await ok(app, 'join_room', { room_id: roomId }, user)
  const cursors = { ann: await drain(app, ann), ben: await drain(app, ben) }

  const first = await ok(app, 'send_msg', { room_id: roomId, msg: `@${ann.login.toUpperCase()} can you review? cc @${outsider.login}, mail ${ben.login}@example.com` }, owner)
  const annGot = (await collect(app, ann, cursors.ann)).msgs
  t.equal(annGot[0].mentioned, true, 'ann is mentioned (any case), and update_data says so')
  const benGot = (await collect(app, ben, cursors.ben)).msgs
  t.notOk('mentioned' in benGot[0], 'ben is not: an e-mail address is no mention, and the field is left out')
  t.equal((await ok(app, 'get_history', { room_id: roomId }, ann)).messages[0].mentioned, true, "ann's history flags it")
  t.equal((await ok(app, 'get_history', { room_id: roomId }, ben)).messages[0].mentioned, false, "ben's does not")

  await ok(app, 'send_msg', { room_id: roomId, msg: `@${ann.login} and again` }, ben)
  t.equal((await dialogOf(app, ann, roomId)).mentions, 2, 'two unread mentions in her dialog')
  t.equal((await dialogOf(app, ben, roomId)).mentions, 0, 'none in his')
  await ok(app, 'mark_read', { room_id: roomId, msg_id: first.msg_id }, ann)
  t.equal((await dialogOf(app, ann, roomId)).mentions, 1, 'reading past one leaves one')

  await ok(app, 'send_msg', { room_id: roomId, msg: `talking to myself, @${owner.login}` }, owner)
  t.equal((await dialogOf(app, owner, roomId)).mentions, 0, 'the sender never mentions themselves')
  t.notOk(((await ok(app, 'get_dialogs', {}, outsider)).dialogs as Json[]).some((dialog) => dialog.room_id === roomId), 'mentioning a non-member does nothing: the room is not theirs')
  t.equal((await call(app, 'get_history', { room_id: roomId }, outsider.token)).status, 403, 'nor can they read it')
})

t.test('@all mentions every member but the sender; banned members and direct messages mention nobody', async (t) => {
  const app = await build(t)
  const [owner, ann, ben] = await Promise.all([signUp(app), signUp(app), signUp(app)])
  const roomId = (await ok(app, 'create_room', { name: 'All hands', type: 'public', channel: true }, owner)).room.room_id as number
  for (const user of [ann, ben]) await ok(app, 'join_room', { room_id: roomId }, user)
  await ok(app, 'ban_member', { room_id: roomId, uid: ben.uid }, owner)

  await ok(app, 'send_msg', { room_id: roomId, msg: 'meeting at 3, @all' }, owner)
  t.equal((await dialogOf(app, ann, roomId)).mentions, 1, 'in a channel, who may post may mention everyone')
  t.equal((await dialogOf(app, owner, roomId)).mentions, 0, 'not the sender')
  const refused = await call(app, 'send_msg', { room_id: roomId, msg: '@all me too' }, ann.token)
  t.equal(refused.status, 403, 'a channel member cannot post, so cannot mention everyone either')

  const annToOwner = await call(app, 'add_contact_request', { login: owner.login }, ann.token)
  t.equal(annToOwner.status, 200)
  await ok(app, 'add_contact_reply', { contact_uid: ann.uid, status: 1 }, owner)
  await ok(app, 'send_msg', { to_uid: owner.uid, msg: `@${owner.login} hi` }, ann)
  const direct = (await ok(app, 'get_dialogs', {}, owner)).dialogs.find((dialog: Json) => dialog.to_uid === ann.uid)
  t.equal(direct.mentions, 0, 'a direct message mentions nobody')
  t.equal(direct.last_message.mentioned, false)
})
