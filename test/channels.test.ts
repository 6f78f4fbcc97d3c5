// Channels (create_room with `channel: true`): only the owner and moderators post; a
// member's send is 403 `read_only_channel`; members read, react (unless
// `member_reactions: false`) and leave; a public channel is found by search_rooms and
// joined like any public room; both dialects.
import t from 'tap'
import { build, call, collect, drain, ok, signUp, wiki } from './helper.js'



t.test('a public channel: found and joined; the owner and moderators post, members read, react and leave', async (t) => {
  const app = await build(t)
  const [owner, moderator, reader] = await Promise.all([signUp(app), signUp(app), signUp(app)])
  const name = `News${Math.random().toString(36).slice(2, 8)}`
  const created = await ok(app, 'create_room', { name, type: 'public', channel: true }, owner)
  t.match(created.room, { name, type: 'public', channel: true, member_reactions: true, role: 'owner' }, 'a channel, reactions on by default')
  const roomId = created.room.room_id as number

  const found = await ok(app, 'search_rooms', { prefix: name }, reader)
  t.match(found.rooms, [{ room_id: roomId, channel: true }], 'search_rooms finds it, marked as a channel')
  await ok(app, 'join_room', { room_id: roomId }, reader)
  await ok(app, 'join_room', { room_id: roomId }, moderator)
  await ok(app, 'set_role', { room_id: roomId, uid: moderator.uid, role: 'moderator' }, owner)
  const cursor = await drain(app, reader)

  const post = await ok(app, 'send_msg', { room_id: roomId, msg: 'v2 is out' }, owner)
  t.equal((await call(app, 'send_msg', { room_id: roomId, msg: 'and the docs' }, moderator.token)).status, 200, 'a moderator posts')
  const refused = await call(app, 'send_msg', { room_id: roomId, msg: 'me too' }, reader.token)
  t.equal(refused.status, 403, "a member's send is 403")
  t.match(refused.body, { error: 'read_only_channel', message: /Only the owner and moderators post/ }, 'with its own code')
  t.strictSame((await collect(app, reader, cursor)).msgs.map((m) => m.text), ['v2 is out', 'and the docs'], 'the member reads what was posted')

  t.equal((await call(app, 'react', { msg_id: post.msg_id, emoji: '🎉' }, reader.token)).status, 200, 'and reacts')
  await ok(app, 'leave_room', { room_id: roomId }, reader)
  t.equal((await call(app, 'get_history', { room_id: roomId }, reader.token)).status, 403, 'and leaves')
})

t.test('member_reactions: false: members may not react, moderators may; it applies to channels only', async (t) => {
  const app = await build(t)
  const [owner, reader] = await Promise.all([signUp(app), signUp(app)])
  const created = await ok(app, 'create_room', { name: 'Quiet', type: 'private', channel: true, member_reactions: false }, owner)
  const roomId = created.room.room_id as number
  t.equal(created.room.member_reactions, false)
  await ok(app, 'invite_to_room', { room_id: roomId, uid: reader.uid }, owner)
  const { msg_id } = await ok(app, 'send_msg', { room_id: roomId, msg: 'read only' }, owner)
  const refused = await call(app, 'react', { msg_id, emoji: '👍' }, reader.token)
  t.equal(refused.status, 403)
  t.match(refused.body, { error: 'read_only_channel' }, "a member's reaction is refused with the channel's code")
  t.equal((await call(app, 'react', { msg_id, emoji: '👍' }, owner.token)).status, 200, 'the owner may react')

  const notChannel = await call(app, 'create_room', { name: 'Plain', type: 'public', member_reactions: false }, owner.token)
  t.equal(notChannel.status, 400, 'member_reactions without channel: 400')
  const plain = await ok(app, 'create_room', { name: 'Plain', type: 'public' }, owner)
  t.match(plain.room, { channel: false, member_reactions: true }, 'a plain room says so')
})

t.test('wiki dialect: a member posting to a channel gets the error as a bare string', async (t) => {
  const app = await build(t)
  const [owner, reader] = await Promise.all([signUp(app), signUp(app)])
  const roomId = (await ok(app, 'create_room', { name: 'Wiki news', type: 'public', channel: true }, owner)).room.room_id as number
  await ok(app, 'join_room', { room_id: roomId }, reader)
  const refused = await wiki(app, 'send_msg', { room_id: roomId, msg: 'hi' }, reader)
  t.equal(refused.status, 403)
  t.match(refused.body, /Only the owner and moderators post/)
  t.equal((await wiki(app, 'send_msg', { room_id: roomId, msg: 'hi all' }, owner)).status, 200, 'the owner posts through POST /')
})
