// Profiles and the user directory (routes/profiles.ts, routes/users.ts): what this file proves.
// - whoami answers the caller's own profile, e-mail address included; update_profile sets the
//   display name and description, leaves omitted fields alone, clears them with "", and
//   enforces the caps (name 64 characters, description 500) with 400 and no change.
// - GET /get_user and list_users show other users only {uid, username, name, description}.
// - list_users pages by `next`/`after` over every user exactly once; `query` is a
//   case-insensitive prefix of the login or display name, with `%` and `_` literal; count is
//   capped at 100.
// - Privacy: no reply another user can get about someone (profiles, directory, contacts,
//   events, messages, presence, keys, rooms) carries their e-mail address, a password hash
//   or the word "password"; only the owner's whoami shows the address.
// - whoami and update_profile work the same in the wiki dialect.
import t, { type Test } from 'tap'
import type { App } from '../src/app.js'
import { befriend, build, call, signUp, uniqueLogin, wiki, type TestSession } from './helper.js'

const PASSWORD = 'secret1' // signUp's default

/** Registers with an e-mail address (no verification required by default) and logs in. */
async function signUpWithEmail(app: App, email: string, login = uniqueLogin()): Promise<TestSession> {
  const registered = await call(app, 'registration', { login, password: PASSWORD, email })
  if (registered.status !== 200) throw new Error(`registration failed: ${JSON.stringify(registered.body)}`)
  const authorized = await call(app, 'authorization', { login, password: PASSWORD })
  if (authorized.status !== 200) throw new Error(`authorization failed: ${JSON.stringify(authorized.body)}`)
  const { uid, session_key, token } = authorized.body.session
  return { uid, session_key, token, login }
}

/** Registers without logging in (one argon2 hash instead of two); returns the uid. */
async function register(app: App, login: string): Promise<number> {
  const registered = await call(app, 'registration', { login, password: PASSWORD })
  if (registered.status !== 200) throw new Error(`registration of ${login} failed: ${JSON.stringify(registered.body)}`)
  return registered.body.uid
}

async function getUser(app: App, id: number | string, token?: string) {
  const response = await app.inject({
    method: 'GET',
    url: `/get_user?id=${id}`,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  })
  return { status: response.statusCode, body: response.json(), raw: response.body }
}

async function listUsers(app: App, token: string, body: Record<string, unknown> = {}) {
  const reply = await call(app, 'list_users', body, token)
  if (reply.status !== 200) throw new Error(`list_users ${JSON.stringify(body)} failed: ${reply.status} ${JSON.stringify(reply.body)}`)
  return reply.body as { users: Array<{ uid: number; username: string; name: string; description: string }>; next: number | null }
}

/** The logins a query finds (all pages). */
async function findLogins(app: App, token: string, query: string): Promise<string[]> {
  const logins: string[] = []
  let after: number | undefined
  for (let page = 0; page < 100; page++) {
    const reply = await listUsers(app, token, { query, count: 100, ...(after === undefined ? {} : { after }) })
    logins.push(...reply.users.map((u) => u.username))
    if (reply.next === null) return logins.sort()
    after = reply.next
  }
  throw new Error('list_users never reached its last page')
}

function isBadRequest(t: Test, reply: { status: number; body: unknown }, what: string) {
  t.equal(reply.status, 400, `${what}: 400`)
  t.match(reply.body, { error: 'bad_request', message: String }, `${what}: bad_request body`)
}

t.test('whoami returns my own profile, e-mail address included', async (t) => {
  const app = await build(t)
  const plain = await signUp(app)
  const mine = await call(app, 'whoami', {}, plain.token)
  t.equal(mine.status, 200)
  t.same(
    mine.body,
    { user: { uid: plain.uid, username: plain.login, name: '', description: '', email: null, email_verified: false } },
    'an account without e-mail: empty profile, email null, not verified',
  )

  const email = `Someone.${uniqueLogin('m')}@Example.com`
  const withEmail = await signUpWithEmail(app, email)
  const theirs = await call(app, 'whoami', {}, withEmail.token)
  t.equal(theirs.status, 200)
  t.same(
    theirs.body,
    { user: { uid: withEmail.uid, username: withEmail.login, name: '', description: '', email, email_verified: false } },
    'an account with e-mail: the address as registered, not yet verified',
  )

  t.equal((await call(app, 'whoami', {})).status, 401, 'whoami needs a session')
})

t.test('update_profile sets name and description, leaves omitted fields alone, "" clears', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const base = { uid: alice.uid, username: alice.login, email: null, email_verified: false }

  const named = await call(app, 'update_profile', { name: 'Alice Liddell' }, alice.token)
  t.equal(named.status, 200)
  t.same(named.body, { user: { ...base, name: 'Alice Liddell', description: '' } }, 'the reply is the updated own profile')

  const described = await call(app, 'update_profile', { description: 'Down the rabbit hole' }, alice.token)
  t.same(described.body.user, { ...base, name: 'Alice Liddell', description: 'Down the rabbit hole' }, 'the name is kept when omitted')

  const both = await call(app, 'update_profile', { name: 'Alice L.', description: 'Through the looking-glass' }, alice.token)
  t.same(both.body.user, { ...base, name: 'Alice L.', description: 'Through the looking-glass' }, 'both at once')

  const nothing = await call(app, 'update_profile', {}, alice.token)
  t.equal(nothing.status, 200, 'an empty update is fine')
  t.same(nothing.body.user, both.body.user, 'and changes nothing')

  const clearedName = await call(app, 'update_profile', { name: '' }, alice.token)
  t.same(clearedName.body.user, { ...base, name: '', description: 'Through the looking-glass' }, '"" clears the name, the description stays')
  const clearedDescription = await call(app, 'update_profile', { description: '' }, alice.token)
  t.same(clearedDescription.body.user, { ...base, name: '', description: '' }, '"" clears the description')

  await call(app, 'update_profile', { name: 'Ünïcødé ✓', description: 'line one\nline two' }, alice.token)
  t.same(
    (await call(app, 'whoami', {}, alice.token)).body.user,
    { ...base, name: 'Ünïcødé ✓', description: 'line one\nline two' },
    'whoami reads back what was stored, non-ASCII and newlines intact',
  )

  // Only the caller's own profile changes.
  const bob = await signUp(app)
  t.same((await call(app, 'whoami', {}, bob.token)).body.user.name, '', "another user's profile is untouched")
  t.equal((await call(app, 'update_profile', { name: 'x' })).status, 401, 'update_profile needs a session')
})

t.test('update_profile caps: name 64 characters, description 500', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)

  const name64 = 'n'.repeat(64)
  const ok = await call(app, 'update_profile', { name: name64 }, alice.token)
  t.equal(ok.status, 200, 'a 64-character name is accepted')
  t.equal(ok.body.user.name, name64)

  isBadRequest(t, await call(app, 'update_profile', { name: 'n'.repeat(65) }, alice.token), 'a 65-character name')
  t.equal((await call(app, 'whoami', {}, alice.token)).body.user.name, name64, 'the refused name changed nothing')

  // Characters, not UTF-16 units or bytes: 64 Cyrillic letters (128 bytes) fit.
  const cyrillic = 'ж'.repeat(64)
  t.equal((await call(app, 'update_profile', { name: cyrillic }, alice.token)).status, 200, '64 two-byte characters are accepted')
  isBadRequest(t, await call(app, 'update_profile', { name: 'ж'.repeat(65) }, alice.token), '65 two-byte characters')
  // Astral characters are two UTF-16 units each; still one character.
  const emoji = '😀'.repeat(64)
  const okEmoji = await call(app, 'update_profile', { name: emoji }, alice.token)
  t.equal(okEmoji.status, 200, '64 emoji (128 UTF-16 units) are accepted')
  t.equal(okEmoji.body.user.name, emoji, 'and stored intact')
  isBadRequest(t, await call(app, 'update_profile', { name: '😀'.repeat(65) }, alice.token), '65 emoji')
  t.equal((await call(app, 'update_profile', { name: cyrillic }, alice.token)).status, 200)

  const description500 = 'd'.repeat(500)
  const okDescription = await call(app, 'update_profile', { description: description500 }, alice.token)
  t.equal(okDescription.status, 200, 'a 500-character description is accepted')
  t.equal(okDescription.body.user.description, description500)

  isBadRequest(t, await call(app, 'update_profile', { description: 'd'.repeat(501) }, alice.token), 'a 501-character description')
  isBadRequest(t, await call(app, 'update_profile', { name: 'fine', description: 'd'.repeat(501) }, alice.token), 'a fine name with a 501-character description')
  t.same(
    (await call(app, 'whoami', {}, alice.token)).body.user,
    { uid: alice.uid, username: alice.login, name: cyrillic, description: description500, email: null, email_verified: false },
    'a refused update changes no field at all',
  )

  isBadRequest(t, await call(app, 'update_profile', { name: 42 }, alice.token), 'a name that is not a string')
})

t.test('GET /get_user shows the public profile only: uid, username, name, description', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const email = `bob.${uniqueLogin('m')}@example.org`
  const bob = await signUpWithEmail(app, email)
  await call(app, 'update_profile', { name: 'Bob Builder', description: 'Can we fix it?' }, bob.token)

  const seen = await getUser(app, bob.uid, alice.token)
  t.equal(seen.status, 200)
  t.same(seen.body, { user: { uid: bob.uid, username: bob.login, name: 'Bob Builder', description: 'Can we fix it?' } }, 'exactly the four public fields')
  t.notOk(seen.raw.toLowerCase().includes(email.toLowerCase()), 'the e-mail address is not in the reply')
  t.notOk('email' in seen.body.user, 'no email field')
  t.notOk('email_verified' in seen.body.user, 'no email_verified field')

  const self = await getUser(app, bob.uid, bob.token)
  t.same(Object.keys(self.body.user).sort(), ['description', 'name', 'uid', 'username'], 'looking oneself up is the public profile too')

  t.equal((await getUser(app, bob.uid)).status, 401, 'needs a session')
  const missing = await getUser(app, bob.uid + 1000, alice.token)
  t.equal(missing.status, 404, 'an unknown id is 404')
  t.equal(missing.body.error, 'not_found')
  t.equal((await getUser(app, 'abc', alice.token)).status, 400, 'a non-numeric id is 400')
  t.equal((await getUser(app, 0, alice.token)).status, 400, 'id 0 is 400')
})

t.test('list_users pages with count and next/after over every user exactly once', async (t) => {
  const app = await build(t)
  const viewer = await signUp(app)
  const uids = [viewer.uid]
  for (let i = 0; i < 7; i++) uids.push(await register(app, uniqueLogin('page')))
  uids.sort((a, b) => a - b)
  t.equal(uids.length, 8)

  // Pages of 3: 3 + 3 + 2.
  const seen: number[] = []
  const sizes: number[] = []
  let after: number | undefined
  for (let page = 0; page < 10; page++) {
    const reply = await listUsers(app, viewer.token, { count: 3, ...(after === undefined ? {} : { after }) })
    sizes.push(reply.users.length)
    for (const user of reply.users) {
      t.same(Object.keys(user).sort(), ['description', 'name', 'uid', 'username'], `user ${user.uid}: the public fields only`)
      seen.push(user.uid)
    }
    if (reply.next === null) break
    t.equal(reply.next, reply.users[reply.users.length - 1].uid, 'next is the last uid of the page')
    after = reply.next
  }
  t.same(sizes, [3, 3, 2], 'pages of 3, 3 and 2')
  t.same(seen, uids, 'every user exactly once, in uid order')

  // A page that ends exactly at the last user says so: no empty page to fetch.
  const exact = await listUsers(app, viewer.token, { count: 8 })
  t.equal(exact.users.length, 8)
  t.equal(exact.next, null, 'count equal to the number of users: next is null')
  const twoPages = await listUsers(app, viewer.token, { count: 4 })
  t.equal(twoPages.next, uids[3])
  const last = await listUsers(app, viewer.token, { count: 4, after: twoPages.next })
  t.same(last.users.map((u) => u.uid), uids.slice(4), 'the second page of 4')
  t.equal(last.next, null, 'and it is the last')

  const fromMiddle = await listUsers(app, viewer.token, { after: uids[5] })
  t.same(fromMiddle.users.map((u) => u.uid), uids.slice(6), '`after` any uid starts right after it')
  const beyond = await listUsers(app, viewer.token, { after: uids[7] })
  t.same(beyond, { users: [], next: null }, 'after the last user: an empty last page')

  const all = await listUsers(app, viewer.token)
  t.same(all.users.map((u) => u.uid), uids, 'the default count (50) holds them all')
  t.equal(all.next, null)

  t.equal((await call(app, 'list_users', { count: 100 }, viewer.token)).status, 200, 'count 100 is allowed')
  isBadRequest(t, await call(app, 'list_users', { count: 101 }, viewer.token), 'count 101')
  isBadRequest(t, await call(app, 'list_users', { count: 0 }, viewer.token), 'count 0')
  isBadRequest(t, await call(app, 'list_users', { after: -1 }, viewer.token), 'after -1')
  isBadRequest(t, await call(app, 'list_users', { query: '' }, viewer.token), 'an empty query')
  t.equal((await call(app, 'list_users', {})).status, 401, 'list_users needs a session')
})

t.test('list_users query: login or display-name prefix, any case', async (t) => {
  const app = await build(t)
  const viewer = await signUp(app)
  const tag = uniqueLogin('q').replace(/_/g, '')
  const zed = await signUp(app, `Zed${tag}`)
  const marvin = await signUp(app, `m${tag}`)
  await call(app, 'update_profile', { name: `Marvin ${tag}` }, marvin.token)
  const other = await signUp(app, `x${tag}`)
  await call(app, 'update_profile', { name: `Paranoid Marvin ${tag}` }, other.token)

  t.same(await findLogins(app, viewer.token, `Zed${tag}`), [zed.login], 'the exact login')
  t.same(await findLogins(app, viewer.token, `zED${tag.slice(0, 3).toUpperCase()}`), [zed.login], 'a login prefix in another case')
  t.same(await findLogins(app, viewer.token, 'ZED'), [zed.login], 'a short login prefix, upper case')
  t.same(await findLogins(app, viewer.token, `marvin ${tag}`), [marvin.login], 'a display-name prefix in another case')
  t.same(await findLogins(app, viewer.token, 'MARV'), [marvin.login], 'a short display-name prefix')
  t.same(await findLogins(app, viewer.token, 'paranoid'), [other.login], 'the other display name')
  t.same(await findLogins(app, viewer.token, 'anoid'), [], 'the middle of a display name is not a prefix')
  t.same(await findLogins(app, viewer.token, tag), [], 'the middle of a login is not a prefix')
  t.same(await findLogins(app, viewer.token, 'nobody-like-this'), [], 'no match: an empty list')

  // The login matches too, independently of the display name.
  const byLogin = await findLogins(app, viewer.token, `m${tag}`)
  t.same(byLogin, [marvin.login], "a login prefix of a user who has a display name")

  // A query pages like the whole directory.
  const many: string[] = []
  for (let i = 0; i < 5; i++) {
    many.push(`pg${tag}${i}`)
    await register(app, `pg${tag}${i}`)
  }
  const pages: string[][] = []
  let after: number | undefined
  for (let page = 0; page < 10; page++) {
    const reply = await listUsers(app, viewer.token, { query: `PG${tag}`, count: 2, ...(after === undefined ? {} : { after }) })
    pages.push(reply.users.map((u) => u.username))
    if (reply.next === null) break
    after = reply.next
  }
  t.same(pages, [many.slice(0, 2), many.slice(2, 4), many.slice(4)], 'a query pages with count and after: 2 + 2 + 1, each once')
})

t.test('list_users query: % and _ are literal characters, not wildcards', async (t) => {
  const app = await build(t)
  const viewer = await signUp(app)
  const tag = uniqueLogin('w').replace(/_/g, '')

  // `_` is allowed in logins: `a_b…` must not find `axb…`.
  await register(app, `a_${tag}`)
  await register(app, `ax${tag}`)
  t.same(await findLogins(app, viewer.token, 'a_'), [`a_${tag}`], '"a_" finds the login with an underscore only')
  t.same(await findLogins(app, viewer.token, `a_${tag}`), [`a_${tag}`])
  t.same(await findLogins(app, viewer.token, '_'), [], '"_" alone matches no login that does not start with "_"')

  // `%` only in display names (not allowed in logins).
  const percent = await signUp(app)
  await call(app, 'update_profile', { name: `100% ${tag}` }, percent.token)
  const digits = await signUp(app)
  await call(app, 'update_profile', { name: `1000 ${tag}` }, digits.token)
  const noSpace = await signUp(app)
  await call(app, 'update_profile', { name: `100x${tag}` }, noSpace.token)
  t.same(await findLogins(app, viewer.token, '100%'), [percent.login], '"100%" finds only the name with a literal percent sign')
  t.same(await findLogins(app, viewer.token, '%'), [], '"%" alone matches nobody')
  t.same(await findLogins(app, viewer.token, '%00'), [], '"%00" is not "anything then 00"')
  t.same(await findLogins(app, viewer.token, '100_'), [], '"100_" is not "100 then any one character"')
  t.same((await findLogins(app, viewer.token, '100')).sort(), [percent.login, digits.login, noSpace.login].sort(), 'control: "100" finds all three')

  // The escape character itself.
  const backslash = await signUp(app)
  await call(app, 'update_profile', { name: `back\\slash ${tag}` }, backslash.token)
  t.same(await findLogins(app, viewer.token, 'back\\s'), [backslash.login], 'a backslash is literal too')
  t.same(await findLogins(app, viewer.token, 'back\\'), [backslash.login])
  t.same(await findLogins(app, viewer.token, 'back%'), [], '"back%" does not match "back\\slash"')
})

t.test("privacy: no reply about another user carries their e-mail address, a hash or 'password'", async (t) => {
  const app = await build(t)
  const tag = uniqueLogin('p')
  const bobEmail = `Bob.Private+${tag}@Example.COM`
  const carolEmail = `carol.${tag}@mail.example.net`
  const aliceEmail = `alice.${tag}@example.org`
  const alice = await signUpWithEmail(app, aliceEmail)
  const bob = await signUpWithEmail(app, bobEmail)
  const carol = await signUpWithEmail(app, carolEmail)
  await call(app, 'update_profile', { name: 'Bob', description: 'Bob in public' }, bob.token)

  /** Every reply alice gets, by what was asked. */
  const replies: Array<[string, { status: number; body: unknown }]> = []
  async function seen(what: string, reply: { status: number; body: unknown }) {
    t.equal(reply.status, 200, `${what}: 200`)
    replies.push([what, reply])
    return reply
  }

  // The directory and the look-up.
  await seen('get_user bob', await getUser(app, bob.uid, alice.token))
  await seen('get_user carol', await getUser(app, carol.uid, alice.token))
  const directory = await seen('list_users', await call(app, 'list_users', {}, alice.token))
  t.same(
    (directory.body as { users: { uid: number }[] }).users.map((u) => u.uid),
    [alice.uid, bob.uid, carol.uid],
    'the directory lists the users with e-mail addresses',
  )
  await seen('list_users by login', await call(app, 'list_users', { query: bob.login }, alice.token))
  await seen('list_users by name', await call(app, 'list_users', { query: 'bob' }, alice.token))
  await seen('list_users (wiki)', await wiki(app, 'list_users', {}, alice))
  // An address is not a search key either: querying by it finds nobody.
  const byEmail = await seen('list_users by e-mail', await call(app, 'list_users', { query: bobEmail.slice(0, 20) }, alice.token))
  t.same((byEmail.body as { users: unknown[] }).users, [], 'searching by the e-mail address finds nobody')

  // Contacts: bob accepts alice, carol asks alice.
  await befriend(app, alice, bob)
  t.equal((await call(app, 'add_contact_request', { login: alice.login }, carol.token)).status, 200)
  await seen('add_contact_request reply', await call(app, 'add_contact_request', { login: carol.login }, alice.token))
  await seen('get_data', await call(app, 'get_data', {}, alice.token))
  await seen('get_data (wiki)', await wiki(app, 'get_data', {}, alice))

  // Bob polls (alice gets a presence event), publishes a key and writes to alice.
  t.equal((await call(app, 'update_data', { cursor: 0, timeout: 0 }, bob.token)).status, 200)
  t.equal((await call(app, 'publish_key', { key_id: 'phone', key: 'QUJDRA==', algorithm: 'x25519' }, bob.token)).status, 200)
  t.equal((await call(app, 'send_msg', { to_uid: alice.uid, msg: 'hello alice' }, bob.token)).status, 200)
  const updates = await seen('update_data', await call(app, 'update_data', { cursor: 0, timeout: 0 }, alice.token))
  const updateBody = updates.body as { events_array: { type: string; ruid: number }[]; msg_array: { sender_uid: number }[] }
  const types = updateBody.events_array.filter((e) => e.ruid === bob.uid).map((e) => e.type)
  t.ok(types.includes('contact_accepted'), 'the events about bob include contact_accepted')
  t.ok(types.includes('presence'), '... presence')
  t.ok(types.includes('key_changed'), '... key_changed')
  t.ok(updateBody.msg_array.some((m) => m.sender_uid === bob.uid), "and bob's message")
  await seen('update_data (wiki)', await wiki(app, 'update_data', { last_update: 0, timeout: 0 }, alice))
  await seen('get_presence', await call(app, 'get_presence', {}, alice.token))
  await seen('get_keys', await call(app, 'get_keys', { uid: bob.uid }, alice.token))
  await seen('get_history', await call(app, 'get_history', { to_uid: bob.uid }, alice.token))
  await seen('get_dialogs', await call(app, 'get_dialogs', {}, alice.token))

  // A room with all three.
  const room = await seen('create_room', await call(app, 'create_room', { name: `room ${tag}`, type: 'public' }, alice.token))
  const roomId = (room.body as { room: { room_id: number } }).room.room_id
  t.equal((await call(app, 'join_room', { room_id: roomId }, bob.token)).status, 200)
  t.equal((await call(app, 'join_room', { room_id: roomId }, carol.token)).status, 200)
  const members = await seen('room_members', await call(app, 'room_members', { room_id: roomId }, alice.token))
  t.equal((members.body as { members: unknown[] }).members.length, 3, 'the member list has all three')
  await seen('member_info', await call(app, 'member_info', { room_id: roomId, uid: bob.uid }, alice.token))
  await seen('my_rooms', await call(app, 'my_rooms', {}, alice.token))
  await seen('search_rooms', await call(app, 'search_rooms', { prefix: 'room' }, alice.token))
  const roomEvents = await seen('update_data after the room', await call(app, 'update_data', { cursor: (updates.body as { cursor: number }).cursor, timeout: 0 }, alice.token))
  t.ok((roomEvents.body as { events_array: { type: string }[] }).events_array.some((e) => e.type === 'member_joined'), 'alice got member_joined events')

  // Bob and carol look at alice, too.
  await seen('get_user alice (by bob)', await getUser(app, alice.uid, bob.token))
  await seen('list_users (by carol)', await call(app, 'list_users', { query: alice.login }, carol.token))

  // None of these replies is a whoami, so no address may appear, whoever asked.
  const addresses = [aliceEmail, bobEmail, carolEmail].map((e) => e.toLowerCase())
  for (const [what, reply] of replies) {
    const text = JSON.stringify(reply.body).toLowerCase()
    t.notOk(addresses.some((address) => text.includes(address)), `${what}: no e-mail address`)
    // Nor any address at all.
    t.notOk(/[a-z0-9.+_-]+@[a-z0-9-]+\.[a-z.]+/.test(text), `${what}: nothing that looks like an e-mail address`)
    t.notOk(text.includes('$argon2'), `${what}: no argon2 hash`)
    t.notOk(text.includes('password'), `${what}: no "password"`)
    t.notOk(text.includes('email'), `${what}: no email field`)
  }

  // The owner sees their own address.
  const own = await call(app, 'whoami', {}, bob.token)
  t.equal(own.body.user.email, bobEmail, "bob's whoami shows bob's address, as registered")
  const ownWiki = await wiki(app, 'whoami', {}, carol)
  t.equal(ownWiki.body.user.email, carolEmail, "carol's whoami (wiki) shows hers")
  t.notOk(JSON.stringify(own.body).includes('$argon2'), 'not even the owner gets the hash')
  t.notOk(JSON.stringify(own.body).toLowerCase().includes('password'), 'nor a password field')
})

t.test('whoami and update_profile in the wiki dialect', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const base = { uid: alice.uid, username: alice.login, email: null, email_verified: false }

  const me = await wiki(app, 'whoami', {}, alice)
  t.equal(me.status, 200)
  t.same(me.body, { user: { ...base, name: '', description: '' } }, 'whoami (wiki): the same reply as the modern dialect')

  const updated = await wiki(app, 'update_profile', { name: 'Wiki Alice', description: 'from the desktop client' }, alice)
  t.equal(updated.status, 200)
  t.same(updated.body, { user: { ...base, name: 'Wiki Alice', description: 'from the desktop client' } }, 'update_profile (wiki)')

  const partial = await wiki(app, 'update_profile', { description: '' }, alice)
  t.same(partial.body.user, { ...base, name: 'Wiki Alice', description: '' }, 'omitted name kept, "" clears (wiki)')

  const tooLong = await wiki(app, 'update_profile', { name: 'n'.repeat(65) }, alice)
  t.equal(tooLong.status, 400, 'a 65-character name (wiki): 400')
  t.type(tooLong.body, 'string', 'the error is a bare JSON string')
  const tooLongDescription = await wiki(app, 'update_profile', { description: 'd'.repeat(501) }, alice)
  t.equal(tooLongDescription.status, 400, 'a 501-character description (wiki): 400')
  t.type(tooLongDescription.body, 'string')

  // Both dialects see the same stored profile.
  t.same((await call(app, 'whoami', {}, alice.token)).body.user, { ...base, name: 'Wiki Alice', description: '' }, 'the modern dialect reads what the wiki dialect wrote')
  await call(app, 'update_profile', { name: 'Modern Alice' }, alice.token)
  t.equal((await wiki(app, 'whoami', {}, alice)).body.user.name, 'Modern Alice', 'and the other way round')

  const anonymous = await wiki(app, 'whoami', {})
  t.equal(anonymous.status, 401, 'whoami (wiki) without a session: 401')
  t.type(anonymous.body, 'string')
})
