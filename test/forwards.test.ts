// Forwarding (forward_msg): a message the user sees goes into a conversation where they may
// post, as a copy that names who first sent it and when (a forward of a forward names the
// first); its file goes by reference and becomes downloadable by the new conversation;
// what the user cannot see is the 404 of a missing message, and where they may not post
// they get send_msg's answer; both dialects.
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import type { App } from '../src/app.js'
import { befriend, build, call, collect, drain, ok, signUp, type TestSession, wiki } from './helper.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>


async function appWithFiles(t: Test) {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'messenger-forwards-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  return build(t, { dataDir })
}

const download = async (app: App, session: TestSession, fileId: number) =>
  (await app.inject({ method: 'GET', url: `/files/${fileId}`, headers: { authorization: `Bearer ${session.token}` } })).statusCode

t.test('a forwarded copy names the first sender and time; its file becomes downloadable by the new conversation', async (t) => {
  const app = await appWithFiles(t)
  const [alice, bob, carol, dave] = await Promise.all([signUp(app), signUp(app), signUp(app), signUp(app)])
  await befriend(app, alice, bob)
  await befriend(app, bob, carol)
  await befriend(app, carol, dave)
  const upload = await app.inject({ method: 'POST', url: '/upload_file?name=plan.txt', headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'text/plain' }, payload: 'the plan' })
  const fileId = upload.json().file_id as number
  const original = await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'see the plan', file_id: fileId }, alice)
  const sentAt = (await ok(app, 'get_history', { to_uid: bob.uid }, alice)).messages[0].time as number
  t.equal(await download(app, carol, fileId), 404, 'carol may not download it yet')
  const cursor = await drain(app, carol)

  const copy = await ok(app, 'forward_msg', { msg_id: original.msg_id, to_uid: carol.uid }, bob)
  t.not(copy.msg_id, original.msg_id, 'a new message')
  const delivered = (await collect(app, carol, cursor)).msgs
  t.match(delivered, [{ msg_id: copy.msg_id, sender_uid: bob.uid, text: 'see the plan', kind: 'file', file: { file_id: fileId }, forwarded_from: { uid: alice.uid, login: alice.login, time: sentAt } }], 'carol gets the copy from bob, naming alice and when she sent it')
  t.equal(await download(app, carol, fileId), 200, 'and may download the file')

  const again = await ok(app, 'forward_msg', { msg_id: copy.msg_id, to_uid: dave.uid }, carol)
  const inDave = (await ok(app, 'get_history', { to_uid: carol.uid }, dave)).messages.find((m: Json) => m.msg_id === again.msg_id)
  t.strictSame(inDave.forwarded_from, { uid: alice.uid, login: alice.login, time: sentAt }, 'a forward of a forward names the first sender')
  t.equal(inDave.reply_to, null)
  t.equal((await ok(app, 'get_history', { to_uid: bob.uid }, alice)).messages[0].forwarded_from, null, 'the original is no forward')
})

t.test("what the user cannot see is a 404; where they may not post, send_msg's answer; retries with client_msg_id store one copy", async (t) => {
  const app = await build(t)
  const [alice, bob, stranger] = await Promise.all([signUp(app), signUp(app), signUp(app)])
  await befriend(app, alice, bob)
  const original = await ok(app, 'send_msg', { to_uid: bob.uid, msg: 'private' }, alice)
  const missing = await call(app, 'forward_msg', { msg_id: original.msg_id + 1_000_000, to_uid: alice.uid }, stranger.token)
  const notTheirs = await call(app, 'forward_msg', { msg_id: original.msg_id, to_uid: alice.uid }, stranger.token)
  t.strictSame({ status: notTheirs.status, body: notTheirs.body }, { status: missing.status, body: missing.body }, "someone else's message: the 404 of a missing one")
  t.equal(missing.status, 404)
  const toStranger = await call(app, 'forward_msg', { msg_id: original.msg_id, to_uid: stranger.uid }, bob.token)
  t.equal(toStranger.status, 403, 'to a non-friend: 403')
  t.match(toStranger.body, { error: 'not_friends' })
  const owner = await signUp(app)
  const channel = (await ok(app, 'create_room', { name: 'Fwd', type: 'public', channel: true }, owner)).room.room_id as number
  await ok(app, 'join_room', { room_id: channel }, bob)
  const intoChannel = await call(app, 'forward_msg', { msg_id: original.msg_id, room_id: channel }, bob.token)
  t.match(intoChannel.body, { error: 'read_only_channel' }, 'into a channel a member may not post to: its 403')

  const first = await ok(app, 'forward_msg', { msg_id: original.msg_id, to_uid: alice.uid, client_msg_id: 'fw-1' }, bob)
  const retry = await ok(app, 'forward_msg', { msg_id: original.msg_id, to_uid: alice.uid, client_msg_id: 'fw-1' }, bob)
  t.equal(retry.msg_id, first.msg_id, 'a retry with the same client_msg_id: the same copy')
  t.equal((await call(app, 'forward_msg', { msg_id: original.msg_id, to_uid: alice.uid, room_id: channel }, bob.token)).status, 400, 'both targets: 400')
  const viaWiki = await wiki(app, 'forward_msg', { msg_id: original.msg_id, to_uid: alice.uid }, bob)
  t.equal(viaWiki.status, 200, 'through POST / too')
})
