// Rooms (PROTOCOL part B), through HTTP on a real PostgreSQL: creating, listing and
// searching rooms; who may do what (a table of actions × roles); joining, leaving,
// kicking, banning and unbanning; the events each change sends to whom; room messages
// fanned out to the other members exactly once; a ban that takes effect at once, even on
// a long-poll already held; and the same commands through the wiki dialect.
import t, { type Test } from 'tap'
import type { App } from '../src/app.js'
import { ManualClock } from '../src/clock.js'
import { collect, drain, eventually, sleep, build, call, poll, signUp, wiki, type TestSession } from './helper.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>
type Reply = Awaited<ReturnType<typeof call>>




async function ok(command: string, promise: Promise<Reply>): Promise<Json> {
  const reply = await promise
  if (reply.status !== 200) throw new Error(`${command} failed: ${reply.status} ${JSON.stringify(reply.body)}`)
  return reply.body as Json
}

async function createRoom(app: App, owner: TestSession, type: 'public' | 'private' = 'public', name = `room${Math.random().toString(36).slice(2, 8)}`) {
  const body = await ok('create_room', call(app, 'create_room', { name, type }, owner.token))
  return body.room.room_id as number
}

const join = (app: App, s: TestSession, roomId: number) => ok('join_room', call(app, 'join_room', { room_id: roomId }, s.token))
const ban = (app: App, by: TestSession, roomId: number, uid: number) => ok('ban_member', call(app, 'ban_member', { room_id: roomId, uid }, by.token))
const setRole = (app: App, by: TestSession, roomId: number, uid: number, role: 'moderator' | 'member') =>
  ok('set_role', call(app, 'set_role', { room_id: roomId, uid, role }, by.token))

const CODES: Record<number, string> = { 400: 'bad_request', 403: 'forbidden', 404: 'not_found', 409: 'invalid_state' }

/** Status and error code of a reply, for one-assertion comparisons. */
function outcome(reply: Reply) {
  return { status: reply.status, error: reply.status === 200 ? undefined : (reply.body as Json).error }
}
function expected(status: number) {
  return { status, error: status === 200 ? undefined : CODES[status] }
}

// ---------------------------------------------------------------------------------------
// create_room, my_rooms, search_rooms

t.test('create_room answers the room view with role owner and one member; my_rooms lists it', async (t) => {
  const app = await build(t)
  const owner = await signUp(app)
  const other = await signUp(app)

  const pub = await call(app, 'create_room', { name: 'Lobby', description: 'Say hi', type: 'public' }, owner.token)
  t.equal(pub.status, 200)
  t.type(pub.body.room.room_id, 'number', 'room_id is a JSON number')
  t.strictSame(pub.body.room, { room_id: pub.body.room.room_id, name: 'Lobby', description: 'Say hi', type: 'public', channel: false, member_reactions: true, owner_uid: owner.uid, members: 1, role: 'owner' })

  const priv = await call(app, 'create_room', { name: 'Secret', type: 'private' }, owner.token)
  t.equal(priv.status, 200)
  t.strictSame(priv.body.room, { room_id: priv.body.room.room_id, name: 'Secret', description: '', type: 'private', channel: false, member_reactions: true, owner_uid: owner.uid, members: 1, role: 'owner' })
  t.not(priv.body.room.room_id, pub.body.room.room_id)

  const mine = await call(app, 'my_rooms', {}, owner.token)
  t.equal(mine.status, 200)
  t.strictSame(
    mine.body.rooms.map((r: Json) => [r.room_id, r.name, r.type, r.role, r.members]),
    [
      [pub.body.room.room_id, 'Lobby', 'public', 'owner', 1],
      [priv.body.room.room_id, 'Secret', 'private', 'owner', 1],
    ],
  )
  t.strictSame((await call(app, 'my_rooms', {}, other.token)).body.rooms, [], 'someone else belongs to no room')

  const joined = await call(app, 'join_room', { room_id: pub.body.room.room_id }, other.token)
  t.equal(joined.status, 200)
  t.match(joined.body.room, { room_id: pub.body.room.room_id, role: 'member', members: 2 })
  t.strictSame(
    (await call(app, 'my_rooms', {}, other.token)).body.rooms.map((r: Json) => [r.room_id, r.role, r.members]),
    [[pub.body.room.room_id, 'member', 2]],
  )

  const bad = await call(app, 'create_room', { name: '', type: 'public' }, owner.token)
  t.equal(bad.status, 400, 'an empty name is refused')
  const badType = await call(app, 'create_room', { name: 'x', type: 'secret' }, owner.token)
  t.equal(badType.status, 400, 'an unknown type is refused')
})

t.test('search_rooms: public rooms by case-insensitive name prefix, ordered by name, paged; private ones never', async (t) => {
  const app = await build(t)
  const owner = await signUp(app)
  const searcher = await signUp(app)
  // Created out of order; the search orders them by name regardless of case.
  for (const name of ['chessD', 'CHESSc', 'Chessa', 'ChessE', 'chessB']) await createRoom(app, owner, 'public', name)
  await createRoom(app, owner, 'private', 'ChessPrivate')
  await createRoom(app, owner, 'private', 'chessb-private')
  await createRoom(app, owner, 'public', 'Checkers')
  await createRoom(app, owner, 'public', 'xchess')

  const pages: string[][] = []
  for (let offset = 0; offset <= 6; offset += 2) {
    const page = await call(app, 'search_rooms', { prefix: 'cHeSs', offset, count: 2 }, searcher.token)
    t.equal(page.status, 200)
    t.ok(page.body.rooms.length <= 2, `page at ${offset} holds at most count rooms`)
    t.ok(page.body.rooms.every((r: Json) => r.type === 'public'), `page at ${offset}: public rooms only`)
    pages.push(page.body.rooms.map((r: Json) => r.name))
  }
  t.strictSame(pages, [['Chessa', 'chessB'], ['CHESSc', 'chessD'], ['ChessE'], []], 'five public matches, two a page, by name')

  const all = await call(app, 'search_rooms', { prefix: 'CHESS' }, searcher.token)
  t.strictSame(all.body.rooms.map((r: Json) => r.name), ['Chessa', 'chessB', 'CHESSc', 'chessD', 'ChessE'], 'default count holds them all')
  t.match(all.body.rooms[0], { type: 'public', owner_uid: owner.uid, members: 1 })
  t.notOk('role' in all.body.rooms[0], 'search results carry no role of the searcher')

  t.strictSame((await call(app, 'search_rooms', { prefix: 'chessp' }, searcher.token)).body.rooms, [], 'a private room is never found')
  t.strictSame((await call(app, 'search_rooms', { prefix: 'chessb-' }, searcher.token)).body.rooms, [], 'nor a private one by its full name')
  t.strictSame((await call(app, 'search_rooms', { prefix: 'hess' }, searcher.token)).body.rooms, [], 'a prefix, not a substring')
  await createRoom(app, owner, 'public', 'Привет')
  t.strictSame((await call(app, 'search_rooms', { prefix: 'пРИв' }, searcher.token)).body.rooms.map((r: Json) => r.name), ['Привет'], 'case-insensitive beyond ASCII too')
  const empty = await call(app, 'search_rooms', { prefix: '' }, searcher.token)
  t.strictSame(empty.body.rooms.map((r: Json) => r.name).sort(), ['CHESSc', 'Checkers', 'Chessa', 'ChessE', 'chessB', 'chessD', 'xchess', 'Привет'].sort(), 'an empty prefix lists every public room')
})

t.test('search_rooms: % and _ (and \\) in the prefix are literal characters', async (t) => {
  const app = await build(t)
  const owner = await signUp(app)
  for (const name of ['100%pure', '100xpure', '1000', 'a_b', 'axb', '%top', 'back\\slash', 'backslash']) await createRoom(app, owner, 'public', name)
  const names = async (prefix: string) => (await call(app, 'search_rooms', { prefix }, owner.token)).body.rooms.map((r: Json) => r.name)
  t.strictSame(await names('100%'), ['100%pure'], '% matches only a percent sign')
  t.strictSame(await names('a_'), ['a_b'], '_ matches only an underscore')
  t.strictSame(await names('%'), ['%top'], 'a lone % is not a wildcard')
  t.strictSame(await names('_'), [], 'a lone _ is not a wildcard')
  t.strictSame(await names('back\\'), ['back\\slash'], 'a backslash is literal too')
})

// ---------------------------------------------------------------------------------------
// Permissions

type Actor = 'owner' | 'moderator' | 'member' | 'banned' | 'outsider'
const ACTORS: Actor[] = ['owner', 'moderator', 'member', 'banned', 'outsider']

interface Cast {
  owner: TestSession
  moderator: TestSession
  moderator2: TestSession
  member: TestSession
  target: TestSession
  banned: TestSession
  banned2: TestSession
  invitee: TestSession
  outsider: TestSession
}

/**
 * A fresh public room: owner; moderator and moderator2 (moderators); member and target
 * (members); banned (joined, then banned); banned2 (banned without ever joining);
 * invitee and outsider not in it.
 */
async function scene(app: App, cast: Cast): Promise<number> {
  const roomId = await createRoom(app, cast.owner)
  for (const s of [cast.moderator, cast.moderator2, cast.member, cast.target, cast.banned]) await join(app, s, roomId)
  await setRole(app, cast.owner, roomId, cast.moderator.uid, 'moderator')
  await setRole(app, cast.owner, roomId, cast.moderator2.uid, 'moderator')
  await ban(app, cast.owner, roomId, cast.banned.uid)
  await ban(app, cast.owner, roomId, cast.banned2.uid)
  return roomId
}

interface Row {
  action: string
  run(app: App, cast: Cast, roomId: number, actor: TestSession): Promise<Reply>
  /** Expected status per actor; an actor left out is not applicable (e.g. the owner acting on itself). */
  expect: Partial<Record<Actor, number>>
}

const MODERATORS = { owner: 200, moderator: 200, member: 403, banned: 403, outsider: 403 }
const OWNER_ONLY = { owner: 200, moderator: 403, member: 403, banned: 403, outsider: 403 }
const MEMBERS = { owner: 200, moderator: 200, member: 200, banned: 403, outsider: 403 }

const MATRIX: Row[] = [
  { action: 'rename_room', expect: MODERATORS, run: (app, _c, room, a) => call(app, 'rename_room', { room_id: room, name: 'renamed' }, a.token) },
  { action: 'describe_room', expect: MODERATORS, run: (app, _c, room, a) => call(app, 'describe_room', { room_id: room, description: 'new' }, a.token) },
  { action: 'invite_to_room (an outsider)', expect: MODERATORS, run: (app, c, room, a) => call(app, 'invite_to_room', { room_id: room, uid: c.invitee.uid }, a.token) },
  { action: 'set_role (member → moderator)', expect: OWNER_ONLY, run: (app, c, room, a) => call(app, 'set_role', { room_id: room, uid: c.target.uid, role: 'moderator' }, a.token) },
  { action: 'set_role (moderator → member)', expect: OWNER_ONLY, run: (app, c, room, a) => call(app, 'set_role', { room_id: room, uid: c.moderator2.uid, role: 'member' }, a.token) },
  { action: 'ban_member (a member)', expect: MODERATORS, run: (app, c, room, a) => call(app, 'ban_member', { room_id: room, uid: c.target.uid }, a.token) },
  { action: 'ban_member (another moderator)', expect: OWNER_ONLY, run: (app, c, room, a) => call(app, 'ban_member', { room_id: room, uid: c.moderator2.uid }, a.token) },
  { action: 'ban_member (the owner)', expect: { moderator: 403, member: 403, banned: 403, outsider: 403 }, run: (app, c, room, a) => call(app, 'ban_member', { room_id: room, uid: c.owner.uid }, a.token) },
  { action: 'unban_member', expect: MODERATORS, run: (app, c, room, a) => call(app, 'unban_member', { room_id: room, uid: c.banned2.uid }, a.token) },
  { action: 'kick_member (a member)', expect: MODERATORS, run: (app, c, room, a) => call(app, 'kick_member', { room_id: room, uid: c.target.uid }, a.token) },
  { action: 'kick_member (another moderator)', expect: OWNER_ONLY, run: (app, c, room, a) => call(app, 'kick_member', { room_id: room, uid: c.moderator2.uid }, a.token) },
  { action: 'kick_member (the owner)', expect: { moderator: 403, member: 403, banned: 403, outsider: 403 }, run: (app, c, room, a) => call(app, 'kick_member', { room_id: room, uid: c.owner.uid }, a.token) },
  { action: 'delete_room', expect: OWNER_ONLY, run: (app, _c, room, a) => call(app, 'delete_room', { room_id: room }, a.token) },
  { action: 'room_members', expect: MEMBERS, run: (app, _c, room, a) => call(app, 'room_members', { room_id: room }, a.token) },
  { action: 'member_info', expect: MEMBERS, run: (app, c, room, a) => call(app, 'member_info', { room_id: room, uid: c.target.uid }, a.token) },
  { action: 'send_msg (to the room)', expect: MEMBERS, run: (app, _c, room, a) => call(app, 'send_msg', { room_id: room, msg: 'hello room' }, a.token) },
  { action: 'get_history (of the room)', expect: MEMBERS, run: (app, _c, room, a) => call(app, 'get_history', { room_id: room }, a.token) },
  { action: 'clear_history (of the room)', expect: OWNER_ONLY, run: (app, _c, room, a) => call(app, 'clear_history', { room_id: room }, a.token) },
  { action: 'join_room (public)', expect: { owner: 200, moderator: 200, member: 200, banned: 403, outsider: 200 }, run: (app, _c, room, a) => call(app, 'join_room', { room_id: room }, a.token) },
  { action: 'leave_room', expect: { owner: 409, moderator: 200, member: 200, banned: 403, outsider: 403 }, run: (app, _c, room, a) => call(app, 'leave_room', { room_id: room }, a.token) },
]

t.test('permission matrix: each action × each role, one fresh room per cell', async (t) => {
  const app = await build(t, { rateLimitPerMinute: 1_000_000 })
  const [owner, moderator, moderator2, member, target, banned, banned2, invitee, outsider] = await Promise.all(Array.from({ length: 9 }, () => signUp(app)))
  const cast: Cast = { owner, moderator, moderator2, member, target, banned, banned2, invitee, outsider }

  for (const row of MATRIX) {
    await t.test(row.action, async (t) => {
      for (const actor of ACTORS) {
        const want = row.expect[actor]
        if (want === undefined) continue
        const roomId = await scene(app, cast)
        const reply = await row.run(app, cast, roomId, cast[actor])
        t.strictSame(outcome(reply), expected(want), `${row.action} by the ${actor}: ${want}`)
      }
    })
  }
})

t.test('refusals that depend on the target or the room', async (t) => {
  const app = await build(t, { rateLimitPerMinute: 1_000_000 })
  const [owner, moderator, moderator2, member, target, banned, banned2, invitee, outsider] = await Promise.all(Array.from({ length: 9 }, () => signUp(app)))
  const cast: Cast = { owner, moderator, moderator2, member, target, banned, banned2, invitee, outsider }
  const roomId = await scene(app, cast)
  const unknownRoom = roomId + 1000
  const cases: Array<[string, () => Promise<Reply>, number]> = [
    ['member_info of a user not in the room', () => call(app, 'member_info', { room_id: roomId, uid: outsider.uid }, member.token), 404],
    ['kick_member of a user not in the room', () => call(app, 'kick_member', { room_id: roomId, uid: outsider.uid }, owner.token), 404],
    ['kick_member of a banned user', () => call(app, 'kick_member', { room_id: roomId, uid: banned.uid }, owner.token), 404],
    ['set_role of a user not in the room', () => call(app, 'set_role', { room_id: roomId, uid: outsider.uid, role: 'moderator' }, owner.token), 404],
    ['unban_member of a member who is not banned', () => call(app, 'unban_member', { room_id: roomId, uid: member.uid }, owner.token), 409],
    ['invite_to_room of a banned user', () => call(app, 'invite_to_room', { room_id: roomId, uid: banned.uid }, moderator.token), 403],
    ['invite_to_room of an unknown user', () => call(app, 'invite_to_room', { room_id: roomId, uid: 987654 }, owner.token), 404],
    ['ban_member of oneself', () => call(app, 'ban_member', { room_id: roomId, uid: owner.uid }, owner.token), 400],
    ['join_room of an unknown room', () => call(app, 'join_room', { room_id: unknownRoom }, outsider.token), 404],
    ['rename_room of an unknown room', () => call(app, 'rename_room', { room_id: unknownRoom, name: 'x' }, owner.token), 404],
    ['describe_room of an unknown room', () => call(app, 'describe_room', { room_id: unknownRoom, description: 'x' }, owner.token), 404],
    ['delete_room of an unknown room', () => call(app, 'delete_room', { room_id: unknownRoom }, owner.token), 404],
    ['leave_room of an unknown room', () => call(app, 'leave_room', { room_id: unknownRoom }, owner.token), 404],
    ['kick_member in an unknown room', () => call(app, 'kick_member', { room_id: unknownRoom, uid: member.uid }, owner.token), 404],
    ['send_msg to an unknown room', () => call(app, 'send_msg', { room_id: unknownRoom, msg: 'x' }, owner.token), 404],
  ]
  for (const [label, run, status] of cases) t.strictSame(outcome(await run()), expected(status), `${label}: ${status}`)
})

// ---------------------------------------------------------------------------------------
// join, leave, kick, ban, unban

t.test('join_room and leave_room: public ok and idempotent, private 403, banned 403 until unbanned, unknown 404; owner cannot leave', async (t) => {
  const app = await build(t)
  const owner = await signUp(app)
  const alice = await signUp(app)
  const bob = await signUp(app)
  const pub = await createRoom(app, owner, 'public')
  const priv = await createRoom(app, owner, 'private')

  const first = await call(app, 'join_room', { room_id: pub }, alice.token)
  t.equal(first.status, 200)
  t.match(first.body.room, { room_id: pub, role: 'member', members: 2, type: 'public' })
  const aliceCursor = await drain(app, alice)
  const ownerCursor = await drain(app, owner)
  const again = await call(app, 'join_room', { room_id: pub }, alice.token)
  t.equal(again.status, 200, 'joining again is fine')
  t.match(again.body.room, { room_id: pub, role: 'member', members: 2 }, 'and changes nothing')
  t.strictSame((await collect(app, owner, ownerCursor)).events, [], 'a repeated join tells nobody')
  t.strictSame((await collect(app, alice, aliceCursor)).events, [], 'not even the joiner')
  const ownerJoins = await call(app, 'join_room', { room_id: pub }, owner.token)
  t.equal(ownerJoins.status, 200)
  t.equal(ownerJoins.body.room.role, 'owner', 'the owner "joining" stays the owner')

  const privJoin = await call(app, 'join_room', { room_id: priv }, alice.token)
  t.strictSame(outcome(privJoin), expected(403), 'a private room cannot be joined')
  t.strictSame((await call(app, 'my_rooms', {}, alice.token)).body.rooms.map((r: Json) => r.room_id), [pub])
  t.strictSame(outcome(await call(app, 'join_room', { room_id: pub + priv + 100 }, alice.token)), expected(404), 'unknown room: 404')

  // leave
  t.strictSame(outcome(await call(app, 'leave_room', { room_id: pub }, alice.token)), expected(200), 'a member may leave')
  t.strictSame((await call(app, 'my_rooms', {}, alice.token)).body.rooms, [], 'and the room is no longer hers')
  t.equal((await call(app, 'my_rooms', {}, owner.token)).body.rooms.find((r: Json) => r.room_id === pub).members, 1, 'one member left')
  t.strictSame(outcome(await call(app, 'leave_room', { room_id: pub }, alice.token)), expected(403), 'leaving a room one is not in: 403')
  const ownerLeaves = await call(app, 'leave_room', { room_id: pub }, owner.token)
  t.strictSame(outcome(ownerLeaves), expected(409), 'the owner cannot leave: 409 invalid_state')
  t.equal((await call(app, 'member_info', { room_id: pub, uid: owner.uid }, owner.token)).body.member.role, 'owner', 'and is still the owner')

  // ban, unban
  await join(app, alice, pub)
  t.equal((await call(app, 'ban_member', { room_id: pub, uid: alice.uid }, owner.token)).status, 200)
  t.strictSame(outcome(await call(app, 'join_room', { room_id: pub }, alice.token)), expected(403), 'a banned user cannot rejoin')
  t.strictSame((await call(app, 'my_rooms', {}, alice.token)).body.rooms, [], 'a banned user does not see the room as hers')
  const members = (await call(app, 'room_members', { room_id: pub }, owner.token)).body.members as Json[]
  t.equal(members.find((m) => m.uid === alice.uid)?.role, 'banned', 'the members list shows the ban')
  t.equal((await call(app, 'my_rooms', {}, owner.token)).body.rooms[0].members, 1, 'banned users are not counted as members')
  t.equal((await call(app, 'ban_member', { room_id: pub, uid: alice.uid }, owner.token)).status, 200, 'banning again is harmless')
  t.equal((await call(app, 'unban_member', { room_id: pub, uid: alice.uid }, owner.token)).status, 200)
  const rejoin = await call(app, 'join_room', { room_id: pub }, alice.token)
  t.equal(rejoin.status, 200, 'after the unban she may join again')
  t.equal(rejoin.body.room.role, 'member', 'as a plain member')

  // ban in advance, then unban, then invite to a private room
  t.equal((await call(app, 'ban_member', { room_id: priv, uid: bob.uid }, owner.token)).status, 200, 'a user may be banned before ever joining')
  t.strictSame(outcome(await call(app, 'invite_to_room', { room_id: priv, uid: bob.uid }, owner.token)), expected(403), 'a banned user cannot be invited')
  t.equal((await call(app, 'unban_member', { room_id: priv, uid: bob.uid }, owner.token)).status, 200)
  t.equal((await call(app, 'invite_to_room', { room_id: priv, uid: bob.uid }, owner.token)).status, 200, 'after the unban the invitation works')
  t.strictSame((await call(app, 'my_rooms', {}, bob.token)).body.rooms.map((r: Json) => [r.room_id, r.role]), [[priv, 'member']])
})

t.test('kick_member: the kicked member is out, and may rejoin a public room (not a private one)', async (t) => {
  const app = await build(t)
  const owner = await signUp(app)
  const moderator = await signUp(app)
  const carol = await signUp(app)
  const pub = await createRoom(app, owner, 'public')
  const priv = await createRoom(app, owner, 'private')
  await join(app, moderator, pub)
  await setRole(app, owner, pub, moderator.uid, 'moderator')
  await join(app, carol, pub)

  t.equal((await call(app, 'kick_member', { room_id: pub, uid: carol.uid }, moderator.token)).status, 200, 'a moderator kicks a member')
  t.strictSame((await call(app, 'my_rooms', {}, carol.token)).body.rooms, [], 'she is out')
  t.strictSame(outcome(await call(app, 'send_msg', { room_id: pub, msg: 'still here?' }, carol.token)), expected(403), 'and cannot send')
  t.strictSame(outcome(await call(app, 'get_history', { room_id: pub }, carol.token)), expected(403), 'nor read')
  const rejoin = await call(app, 'join_room', { room_id: pub }, carol.token)
  t.equal(rejoin.status, 200, 'a kick is not a ban: she may rejoin a public room')
  t.equal(rejoin.body.room.role, 'member')

  await call(app, 'invite_to_room', { room_id: priv, uid: carol.uid }, owner.token)
  t.equal((await call(app, 'kick_member', { room_id: priv, uid: carol.uid }, owner.token)).status, 200)
  t.strictSame(outcome(await call(app, 'join_room', { room_id: priv }, carol.token)), expected(403), 'but not a private one')
})

// ---------------------------------------------------------------------------------------
// Events

t.test('events: every change reaches the members (and the user concerned) once, with room_id and the actor', async (t) => {
  const app = await build(t)
  const [owner, moderator, alice, joiner, invitee, outsider] = await Promise.all(Array.from({ length: 6 }, () => signUp(app)))
  const everyone = { owner, moderator, alice, joiner, invitee, outsider }
  const roomId = await createRoom(app, owner, 'public', 'Events')
  await join(app, moderator, roomId)
  await setRole(app, owner, roomId, moderator.uid, 'moderator')
  await join(app, alice, roomId)

  const cursors = new Map<TestSession, number>()
  for (const s of Object.values(everyone)) cursors.set(s, await drain(app, s))
  const nameOf = (s: TestSession) => Object.entries(everyone).find(([, v]) => v === s)![0]

  /** Runs `action`, then checks every user's new log entries: one `type` event for each recipient, none for the others. */
  async function step(
    t: Test,
    label: string,
    action: () => Promise<Reply>,
    type: string,
    actor: TestSession,
    fields: Json,
    recipients: TestSession[],
  ) {
    await t.test(label, async (t) => {
      const reply = await action()
      t.equal(reply.status, 200, `${label}: 200 (${JSON.stringify(reply.body)})`)
      for (const s of Object.values(everyone)) {
        const log = await collect(app, s, cursors.get(s)!)
        cursors.set(s, log.cursor)
        t.strictSame(log.msgs, [], `${nameOf(s)}: no messages`)
        if (!recipients.includes(s)) {
          t.strictSame(log.events, [], `${nameOf(s)} gets nothing`)
          continue
        }
        t.equal(log.events.length, 1, `${nameOf(s)} gets exactly one event`)
        const event = log.events[0] ?? {}
        t.match(event, { type, room_id: roomId, ruid: actor.uid, text: actor.login, ...fields }, `${nameOf(s)} gets ${type} by ${nameOf(actor)}`)
        t.type(event.eid, 'number', 'eid is a number')
        t.type(event.time, 'number', 'time is a number')
        if (type === 'member_joined' && !('invited_by' in fields)) t.notOk('invited_by' in event, 'a join of one\'s own has no invited_by')
      }
    })
  }

  await step(t, 'join → member_joined', () => call(app, 'join_room', { room_id: roomId }, joiner.token), 'member_joined', joiner, { uid: joiner.uid }, [owner, moderator, alice, joiner])
  await step(
    t,
    'invite → member_joined with invited_by',
    () => call(app, 'invite_to_room', { room_id: roomId, uid: invitee.uid }, moderator.token),
    'member_joined',
    moderator,
    { uid: invitee.uid, invited_by: moderator.uid },
    [owner, moderator, alice, joiner, invitee],
  )
  const all5 = [owner, moderator, alice, joiner, invitee]
  await step(t, 'set_role → role_changed (up)', () => call(app, 'set_role', { room_id: roomId, uid: alice.uid, role: 'moderator' }, owner.token), 'role_changed', owner, { uid: alice.uid, role: 'moderator' }, all5)
  await step(t, 'set_role → role_changed (down)', () => call(app, 'set_role', { room_id: roomId, uid: alice.uid, role: 'member' }, owner.token), 'role_changed', owner, { uid: alice.uid, role: 'member' }, all5)
  await step(t, 'rename_room → room_renamed', () => call(app, 'rename_room', { room_id: roomId, name: 'Renamed' }, moderator.token), 'room_renamed', moderator, { name: 'Renamed' }, all5)
  await step(t, 'describe_room → room_described', () => call(app, 'describe_room', { room_id: roomId, description: 'About us' }, moderator.token), 'room_described', moderator, { description: 'About us' }, all5)
  await step(t, 'leave_room → member_left (to the leaver too)', () => call(app, 'leave_room', { room_id: roomId }, joiner.token), 'member_left', joiner, { uid: joiner.uid }, all5)
  await step(t, 'kick_member → member_kicked (to the kicked user too)', () => call(app, 'kick_member', { room_id: roomId, uid: invitee.uid }, moderator.token), 'member_kicked', moderator, { uid: invitee.uid }, [owner, moderator, alice, invitee])
  await step(t, 'ban_member → member_banned (to the banned user too)', () => call(app, 'ban_member', { room_id: roomId, uid: alice.uid }, owner.token), 'member_banned', owner, { uid: alice.uid }, [owner, moderator, alice])
  await step(t, 'a change while banned does not reach the banned user', () => call(app, 'rename_room', { room_id: roomId, name: 'Quiet' }, owner.token), 'room_renamed', owner, { name: 'Quiet' }, [owner, moderator])
  await step(t, 'unban_member → member_unbanned (to the user too)', () => call(app, 'unban_member', { room_id: roomId, uid: alice.uid }, moderator.token), 'member_unbanned', moderator, { uid: alice.uid }, [owner, moderator, alice])
  await step(t, 'join again → member_joined', () => call(app, 'join_room', { room_id: roomId }, joiner.token), 'member_joined', joiner, { uid: joiner.uid }, [owner, moderator, joiner])
  await step(t, 'delete_room → room_deleted to every member', () => call(app, 'delete_room', { room_id: roomId }, owner.token), 'room_deleted', owner, { name: 'Quiet' }, [owner, moderator, joiner])

  t.strictSame((await call(app, 'my_rooms', {}, moderator.token)).body.rooms, [], 'the deleted room is gone from my_rooms')
  t.strictSame(outcome(await call(app, 'join_room', { room_id: roomId }, outsider.token)), expected(404), 'and cannot be joined')
})

// ---------------------------------------------------------------------------------------
// Room messages

t.test('room messages reach every other member exactly once with room_id; not the sender, not non-members', async (t) => {
  const app = await build(t)
  const [owner, moderator, alice, bob, outsider, leaver] = await Promise.all(Array.from({ length: 6 }, () => signUp(app)))
  const roomId = await createRoom(app, owner, 'public', 'Chat')
  const otherRoom = await createRoom(app, owner, 'public', 'Other')
  for (const s of [moderator, alice, bob, leaver]) await join(app, s, roomId)
  await setRole(app, owner, roomId, moderator.uid, 'moderator')
  await join(app, outsider, otherRoom)
  await call(app, 'leave_room', { room_id: roomId }, leaver.token)

  const cursors = new Map<TestSession, number>()
  for (const s of [owner, moderator, alice, bob, outsider, leaver]) cursors.set(s, await drain(app, s))

  const sent: Json[] = []
  for (const text of ['one', 'two', 'three']) {
    const reply = await call(app, 'send_msg', { room_id: roomId, msg: text }, alice.token)
    t.equal(reply.status, 200, `alice sends "${text}"`)
    t.type(reply.body.msg_id, 'number')
    sent.push({ msg_id: reply.body.msg_id, text })
  }
  const fromOwner = await call(app, 'send_msg', { room_id: roomId, msg: 'from the owner' }, owner.token)
  t.equal(fromOwner.status, 200)

  for (const [name, s] of [['owner', owner], ['moderator', moderator], ['bob', bob]] as const) {
    const log = await collect(app, s, cursors.get(s)!)
    const fromAlice = log.msgs.filter((m) => m.sender_uid === alice.uid)
    t.strictSame(
      fromAlice.map((m) => [m.msg_id, m.text, m.room_id, m.sender_login]),
      sent.map((m) => [m.msg_id, m.text, roomId, alice.login]),
      `${name} gets each of alice's messages once, in order, with room_id`,
    )
    t.equal(new Set(log.msgs.map((m) => m.msg_id)).size, log.msgs.length, `${name}: no message twice`)
    const ownerMsgs = log.msgs.filter((m) => m.msg_id === fromOwner.body.msg_id)
    t.equal(ownerMsgs.length, s === owner ? 0 : 1, s === owner ? 'the owner does not get its own message' : `${name} gets the owner's message once`)
    t.strictSame(log.events, [], `${name}: no events`)
  }
  const aliceLog = await collect(app, alice, cursors.get(alice)!)
  t.strictSame(aliceLog.msgs.map((m) => [m.msg_id, m.room_id]), [[fromOwner.body.msg_id, roomId]], 'the sender gets only the others\' messages, not her own')
  t.strictSame(await collect(app, outsider, cursors.get(outsider)!).then((l) => [l.msgs, l.events]), [[], []], 'a member of another room gets nothing')
  t.strictSame(await collect(app, leaver, cursors.get(leaver)!).then((l) => [l.msgs, l.events]), [[], []], 'a member who left gets nothing')

  const history = await call(app, 'get_history', { room_id: roomId }, bob.token)
  t.equal(history.status, 200)
  t.strictSame(
    history.body.messages.map((m: Json) => [m.msg_id, m.text, m.room_id, m.to_uid]),
    [...sent.map((m) => [m.msg_id, m.text, roomId, null]), [fromOwner.body.msg_id, 'from the owner', roomId, null]],
    'the room history holds them all, oldest first',
  )
})

// ---------------------------------------------------------------------------------------
// Ban on a held poll

t.test('a ban takes effect at once: a held poll gets member_banned, and nothing more of the room after it', async (t) => {
  // The app's clock moves only when told: the held polls' timeouts come when the test says.
  const clock = new ManualClock()
  const app = await build(t, {}, undefined, clock)
  const [owner, other, victim] = await Promise.all(Array.from({ length: 3 }, () => signUp(app)))
  const roomId = await createRoom(app, owner, 'public', 'Strict')
  await join(app, other, roomId)
  await join(app, victim, roomId)
  t.equal((await call(app, 'send_msg', { room_id: roomId, msg: 'hello everyone' }, victim.token)).status, 200, 'the victim could send before')
  t.equal((await call(app, 'get_history', { room_id: roomId }, victim.token)).status, 200, 'and read')

  const cursor = await drain(app, victim)
  const otherCursor = await drain(app, other)

  // A poll held while the ban happens.
  const started = Date.now()
  const held = poll(app, victim, cursor, 3)
  await eventually(() => app.eventLog.polls.size === 1, { what: 'the poll to be held' })
  t.equal((await call(app, 'ban_member', { room_id: roomId, uid: victim.uid }, owner.token)).status, 200)
  const woken = await held
  const elapsed = Date.now() - started
  t.ok(elapsed < 2500, `the held poll returned on the ban (${elapsed} ms), not at its timeout`)
  t.strictSame(woken.msg_array, [])
  t.equal(woken.events_array.length, 1, 'one event')
  t.match(woken.events_array[0], { type: 'member_banned', room_id: roomId, uid: victim.uid, ruid: owner.uid, text: owner.login })

  // The next held poll: others keep going in the room; nothing reaches the banned user.
  let quietDone = false
  const quiet = poll(app, victim, woken.cursor, 3).finally(() => (quietDone = true))
  await eventually(() => app.eventLog.polls.size === 1, { what: 'the next poll to be held' })
  for (const [who, text] of [[owner, 'after the ban 1'], [other, 'after the ban 2'], [owner, 'after the ban 3']] as const) {
    t.equal((await call(app, 'send_msg', { room_id: roomId, msg: text }, who.token)).status, 200, `"${text}" sent`)
  }
  t.equal((await call(app, 'rename_room', { room_id: roomId, name: 'Stricter' }, owner.token)).status, 200)
  t.equal((await call(app, 'describe_room', { room_id: roomId, description: 'no victims' }, owner.token)).status, 200)
  await join(app, await signUp(app), roomId)
  await sleep(50)
  t.notOk(quietDone, 'the held poll is still held after all that')
  clock.advance(2999)
  await sleep(50)
  t.notOk(quietDone, 'and 1 ms before its 3 s timeout')
  clock.advance(1)
  const after = await quiet
  t.pass('the held poll ran to its timeout')
  t.strictSame(after.msg_array, [], 'no room messages after the ban')
  t.strictSame(after.events_array, [], 'no room events after the ban')
  t.equal(after.cursor, woken.cursor, 'the cursor did not move')
  t.strictSame(await collect(app, victim, woken.cursor).then((l) => [l.msgs, l.events]), [[], []], 'nor does a later poll find any')

  // The others did get everything (so the sends really happened).
  const otherLog = await collect(app, other, otherCursor)
  t.strictSame(otherLog.msgs.map((m) => m.text), ['after the ban 1', 'after the ban 3'], 'the other member got the owner\'s messages')
  t.strictSame(otherLog.events.map((e) => e.type), ['member_banned', 'room_renamed', 'room_described', 'member_joined'])

  // Refused at once: read, search, send, list.
  t.strictSame(outcome(await call(app, 'get_history', { room_id: roomId }, victim.token)), expected(403), 'a banned user cannot read the history')
  t.strictSame(outcome(await call(app, 'search_msgs', { room_id: roomId, query: 'hello' }, victim.token)), expected(403), 'nor search it')
  t.strictSame(outcome(await call(app, 'send_msg', { room_id: roomId, msg: 'let me in' }, victim.token)), expected(403), 'nor send')
  t.strictSame(outcome(await call(app, 'room_members', { room_id: roomId }, victim.token)), expected(403), 'nor list the members')
  t.equal((await call(app, 'search_msgs', { room_id: roomId, query: 'hello' }, other.token)).body.messages.length, 1, 'while a member still finds the message')
})

// ---------------------------------------------------------------------------------------
// Wiki dialect

t.test('wiki dialect: create_room, join_room, send_msg with room_id, get_history; refusals are bare strings', async (t) => {
  const app = await build(t)
  const [owner, member, outsider] = await Promise.all(Array.from({ length: 3 }, () => signUp(app)))

  const created = await wiki(app, 'create_room', { name: 'Desk', type: 'public' }, owner)
  t.equal(created.status, 200)
  t.match(created.body.room, { name: 'Desk', type: 'public', owner_uid: owner.uid, members: 1, role: 'owner' })
  const roomId = created.body.room.room_id
  t.type(roomId, 'number')
  const priv = await wiki(app, 'create_room', { name: 'DeskPrivate', type: 'private' }, owner)
  t.equal(priv.status, 200)

  const joined = await wiki(app, 'join_room', { room_id: roomId }, member)
  t.equal(joined.status, 200)
  t.match(joined.body.room, { room_id: roomId, role: 'member', members: 2 })

  const ownerCursor = await drain(app, owner)
  const sent = await wiki(app, 'send_msg', { room_id: roomId, msg: 'hi from the desktop' }, member)
  t.equal(sent.status, 200)
  t.type(sent.body.msg_id, 'number')
  t.type(sent.body.time, 'number')

  const history = await wiki(app, 'get_history', { room_id: roomId }, owner)
  t.equal(history.status, 200)
  t.strictSame(history.body.messages.map((m: Json) => [m.msg_id, m.text, m.room_id, m.sender_uid]), [[sent.body.msg_id, 'hi from the desktop', roomId, member.uid]])
  const log = await collect(app, owner, ownerCursor)
  t.strictSame(log.msgs.map((m) => [m.msg_id, m.room_id]), [[sent.body.msg_id, roomId]], 'the owner is told through update_data')

  const found = await wiki(app, 'search_rooms', { prefix: 'desk' }, outsider)
  t.strictSame(found.body.rooms.map((r: Json) => r.name), ['Desk'], 'search_rooms in the wiki dialect: public only')

  const refusals: Array<[string, Promise<Awaited<ReturnType<typeof wiki>>>, number]> = [
    ['join a private room', wiki(app, 'join_room', { room_id: priv.body.room.room_id }, outsider), 403],
    ['join an unknown room', wiki(app, 'join_room', { room_id: roomId + 1000 }, outsider), 404],
    ['send to a room one is not in', wiki(app, 'send_msg', { room_id: roomId, msg: 'x' }, outsider), 403],
    ['read a room one is not in', wiki(app, 'get_history', { room_id: roomId }, outsider), 403],
    ['the owner leaves', wiki(app, 'leave_room', { room_id: roomId }, owner), 409],
    ['a member renames', wiki(app, 'rename_room', { room_id: roomId, name: 'mine' }, member), 403],
  ]
  for (const [label, promise, status] of refusals) {
    const reply = await promise
    t.equal(reply.status, status, `${label}: ${status}`)
    t.type(reply.body, 'string', `${label}: the body is a bare JSON string`)
    t.ok(reply.raw.startsWith('"') && (reply.body as string).length > 0, `${label}: a non-empty message (${reply.raw})`)
  }
})
