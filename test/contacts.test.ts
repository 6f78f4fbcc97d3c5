// The contact state machine (PROTOCOL A.4) through the modern dialect: POST /<command>
// with a bearer token. Status as the caller sees the other side: 0 outgoing, 1 friends,
// 2 denied, 3 incoming. Every change puts an event in the other side's log; contact events
// carry `status` as the receiver now sees the contact (absent when the row is gone).
import t, { type Test } from 'tap'
import type { App } from '../src/app.js'
import { befriend, build, call, poll, signUp, uniqueLogin, type TestSession } from './helper.js'

type Json = Record<string, unknown>

/** The caller's contact list as {uid: status}. */
async function contactsOf(app: App, session: TestSession): Promise<Record<number, number>> {
  const data = await call(app, 'get_data', {}, session.token)
  if (data.status !== 200) throw new Error(`get_data: ${data.status} ${JSON.stringify(data.body)}`)
  return Object.fromEntries((data.body.contacts as { friend_uid: number; status: number }[]).map((c) => [c.friend_uid, c.status]))
}

/** Polls from `cursor` and returns the events and the new cursor. */
async function eventsAfter(app: App, session: TestSession, cursor: number) {
  const reply = await poll(app, session, cursor)
  return { events: reply.events_array, cursor: reply.cursor }
}

/** Checks the shape every event has, and that it came from `actor`. */
function checkEvent(t: Test, event: Json, type: string, actor: TestSession, status?: number) {
  t.equal(event.type, type, `event type ${type}`)
  t.type(event.eid, 'number', 'eid is a number')
  t.ok((event.eid as number) > 0)
  t.equal(event.ruid, actor.uid, 'ruid is the user who caused it')
  t.equal(event.text, actor.login, 'text is their login')
  t.type(event.time, 'number', 'time is a number')
  const now = Math.floor(Date.now() / 1000)
  t.ok((event.time as number) <= now + 1 && (event.time as number) >= now - 60, 'time is recent UNIX seconds')
  if (status === undefined) t.notOk('status' in event, `${type} carries no status`)
  else t.equal(event.status, status, `${type} carries status ${status}`)
}

t.test('request: the other side sees status 3 and gets a contact_request event; the requester sees 0', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)

  const asked = await call(app, 'add_contact_request', { login: bob.login }, alice.token)
  t.equal(asked.status, 200)
  t.same(asked.body, { contact_uid: bob.uid, login: bob.login, status: 0 })

  t.same(await contactsOf(app, alice), { [bob.uid]: 0 }, 'alice sees an outgoing request')
  t.same(await contactsOf(app, bob), { [alice.uid]: 3 }, 'bob sees an incoming request')

  const bobLog = await eventsAfter(app, bob, 0)
  t.equal(bobLog.events.length, 1, 'one event for bob')
  checkEvent(t, bobLog.events[0], 'contact_request', alice, 3)
  const aliceLog = await eventsAfter(app, alice, 0)
  t.same(aliceLog.events, [], 'the requester gets no event of her own request')

  // The login is matched regardless of case; the reply names the stored login.
  const carol = await signUp(app, uniqueLogin('Carol'))
  const mixed = await call(app, 'add_contact_request', { login: carol.login.toLowerCase() }, alice.token)
  t.equal(mixed.status, 200)
  t.equal(mixed.body.contact_uid, carol.uid)
  t.equal(mixed.body.login, carol.login)
})

t.test('accept: both see 1 and the requester gets contact_accepted', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await call(app, 'add_contact_request', { login: bob.login }, alice.token)
  const aliceCursor = (await poll(app, alice, 0)).cursor
  const bobCursor = (await poll(app, bob, 0)).cursor

  const accepted = await call(app, 'add_contact_reply', { contact_uid: alice.uid, status: 1 }, bob.token)
  t.equal(accepted.status, 200)
  t.same(accepted.body, { contact_uid: alice.uid, status: 1 })

  t.same(await contactsOf(app, alice), { [bob.uid]: 1 })
  t.same(await contactsOf(app, bob), { [alice.uid]: 1 })

  const aliceLog = await eventsAfter(app, alice, aliceCursor)
  t.equal(aliceLog.events.length, 1)
  checkEvent(t, aliceLog.events[0], 'contact_accepted', bob, 1)
  t.ok(aliceLog.cursor > aliceCursor, 'the cursor moved on')
  t.same((await eventsAfter(app, bob, bobCursor)).events, [], 'the accepter gets no event')
  t.same((await eventsAfter(app, alice, aliceLog.cursor)).events, [], 'polling with the new cursor repeats nothing')
})

t.test('deny: the requester sees 2 and gets contact_denied; the denier has no row; asking again is allowed', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await call(app, 'add_contact_request', { login: bob.login }, alice.token)
  const aliceCursor = (await poll(app, alice, 0)).cursor
  let bobCursor = (await poll(app, bob, 0)).cursor

  const denied = await call(app, 'add_contact_reply', { contact_uid: alice.uid, status: 2 }, bob.token)
  t.equal(denied.status, 200)
  t.same(denied.body, { contact_uid: alice.uid, status: 2 })

  t.same(await contactsOf(app, alice), { [bob.uid]: 2 }, 'alice sees denied')
  t.same(await contactsOf(app, bob), {}, 'bob has no row')
  const modern = await call(app, 'get_data', {}, bob.token)
  t.same(modern.body.contacts, [], 'an empty list is [] in the modern dialect')

  const aliceLog = await eventsAfter(app, alice, aliceCursor)
  t.equal(aliceLog.events.length, 1)
  checkEvent(t, aliceLog.events[0], 'contact_denied', bob, 2)

  // Asking again after a denial.
  const again = await call(app, 'add_contact_request', { login: bob.login }, alice.token)
  t.equal(again.status, 200)
  t.equal(again.body.status, 0)
  t.same(await contactsOf(app, alice), { [bob.uid]: 0 })
  t.same(await contactsOf(app, bob), { [alice.uid]: 3 })
  const bobLog = await eventsAfter(app, bob, bobCursor)
  t.equal(bobLog.events.length, 1, 'bob is told of the new request')
  checkEvent(t, bobLog.events[0], 'contact_request', alice, 3)
  bobCursor = bobLog.cursor

  // And this time it is accepted.
  const accepted = await call(app, 'add_contact_reply', { contact_uid: alice.uid, status: 1 }, bob.token)
  t.equal(accepted.status, 200)
  t.same(await contactsOf(app, alice), { [bob.uid]: 1 })
  t.same(await contactsOf(app, bob), { [alice.uid]: 1 })
})

t.test('the denier may ask the one they denied: the old denial is replaced by a fresh request', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await call(app, 'add_contact_request', { login: bob.login }, alice.token)
  await call(app, 'add_contact_reply', { contact_uid: alice.uid, status: 2 }, bob.token)
  const aliceCursor = (await poll(app, alice, 0)).cursor

  const asked = await call(app, 'add_contact_request', { login: alice.login }, bob.token)
  t.equal(asked.status, 200)
  t.equal(asked.body.status, 0)
  t.same(await contactsOf(app, bob), { [alice.uid]: 0 })
  t.same(await contactsOf(app, alice), { [bob.uid]: 3 })
  const aliceLog = await eventsAfter(app, alice, aliceCursor)
  t.equal(aliceLog.events.length, 1)
  checkEvent(t, aliceLog.events[0], 'contact_request', bob, 3)
})

t.test('asking someone who asked you makes you friends at once', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await call(app, 'add_contact_request', { login: bob.login }, alice.token)
  const aliceCursor = (await poll(app, alice, 0)).cursor
  const bobCursor = (await poll(app, bob, 0)).cursor

  const mutual = await call(app, 'add_contact_request', { login: alice.login }, bob.token)
  t.equal(mutual.status, 200)
  t.same(mutual.body, { contact_uid: alice.uid, login: alice.login, status: 1 })
  t.same(await contactsOf(app, alice), { [bob.uid]: 1 })
  t.same(await contactsOf(app, bob), { [alice.uid]: 1 })

  const aliceLog = await eventsAfter(app, alice, aliceCursor)
  t.equal(aliceLog.events.length, 1)
  checkEvent(t, aliceLog.events[0], 'contact_accepted', bob, 1)
  t.same((await eventsAfter(app, bob, bobCursor)).events, [], 'no event for the one who asked second')
})

t.test('asking twice: status 0 again and no second event', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await call(app, 'add_contact_request', { login: bob.login }, alice.token)
  const bobLog = await eventsAfter(app, bob, 0)
  t.equal(bobLog.events.length, 1, 'the first request is told')

  const twice = await call(app, 'add_contact_request', { login: bob.login }, alice.token)
  t.equal(twice.status, 200)
  t.same(twice.body, { contact_uid: bob.uid, login: bob.login, status: 0 })
  t.same(await contactsOf(app, alice), { [bob.uid]: 0 })
  t.same(await contactsOf(app, bob), { [alice.uid]: 3 })
  t.same((await eventsAfter(app, bob, bobLog.cursor)).events, [], 'no second contact_request')
  t.equal((await eventsAfter(app, bob, 0)).events.length, 1, 'one event in all of bob\'s log')
})

t.test('refused requests: a friend (409 already_contact), yourself (400), an unknown login (404)', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const bobCursor = (await poll(app, bob, 0)).cursor

  const friend = await call(app, 'add_contact_request', { login: bob.login }, alice.token)
  t.equal(friend.status, 409)
  t.equal(friend.body.error, 'already_contact')
  t.type(friend.body.message, 'string')
  const friendBack = await call(app, 'add_contact_request', { login: alice.login }, bob.token)
  t.equal(friendBack.status, 409, 'from the other side too')
  t.equal(friendBack.body.error, 'already_contact')
  t.same(await contactsOf(app, alice), { [bob.uid]: 1 }, 'still friends')
  t.same((await eventsAfter(app, bob, bobCursor)).events, [], 'no event from a refused request')

  const self = await call(app, 'add_contact_request', { login: alice.login }, alice.token)
  t.equal(self.status, 400)
  t.equal(self.body.error, 'bad_request')
  const selfCase = await call(app, 'add_contact_request', { login: alice.login.toUpperCase() }, alice.token)
  t.equal(selfCase.status, 400, 'yourself in another case too')

  const unknown = await call(app, 'add_contact_request', { login: uniqueLogin('ghost') }, alice.token)
  t.equal(unknown.status, 404)
  t.equal(unknown.body.error, 'not_found')
  t.same(await contactsOf(app, alice), { [bob.uid]: 1 }, 'nothing else was added')
})

t.test('add_contact_reply: without a request → 404; accepting your own outgoing request → 409 invalid_state', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  const carol = await signUp(app)

  const noRequest = await call(app, 'add_contact_reply', { contact_uid: carol.uid, status: 1 }, alice.token)
  t.equal(noRequest.status, 404)
  t.equal(noRequest.body.error, 'not_found')
  const noUser = await call(app, 'add_contact_reply', { contact_uid: 987654321, status: 1 }, alice.token)
  t.equal(noUser.status, 404, 'an unknown user: 404')
  const cancelNothing = await call(app, 'add_contact_reply', { contact_uid: carol.uid, status: 3 }, alice.token)
  t.equal(cancelNothing.status, 404, 'cancelling a request that does not exist: 404')

  await call(app, 'add_contact_request', { login: bob.login }, alice.token)
  const bobCursor = (await poll(app, bob, 0)).cursor
  for (const status of [1, 2]) {
    const own = await call(app, 'add_contact_reply', { contact_uid: bob.uid, status }, alice.token)
    t.equal(own.status, 409, `answering (${status}) your own outgoing request`)
    t.equal(own.body.error, 'invalid_state')
  }
  t.same(await contactsOf(app, alice), { [bob.uid]: 0 }, 'unchanged')
  t.same(await contactsOf(app, bob), { [alice.uid]: 3 }, 'unchanged')
  t.same((await eventsAfter(app, bob, bobCursor)).events, [], 'no event from a refused reply')

  // Cancelling an incoming request is not a thing: that is deny.
  const cancelIncoming = await call(app, 'add_contact_reply', { contact_uid: alice.uid, status: 3 }, bob.token)
  t.equal(cancelIncoming.status, 409)
  t.equal(cancelIncoming.body.error, 'invalid_state')

  // Replying twice: once accepted, there is nothing left to accept.
  t.equal((await call(app, 'add_contact_reply', { contact_uid: alice.uid, status: 1 }, bob.token)).status, 200)
  const acceptAgain = await call(app, 'add_contact_reply', { contact_uid: alice.uid, status: 1 }, bob.token)
  t.equal(acceptAgain.status, 409)
  t.equal(acceptAgain.body.error, 'invalid_state')

  const self = await call(app, 'add_contact_reply', { contact_uid: alice.uid, status: 1 }, alice.token)
  t.equal(self.status, 400, 'answering yourself: 400')
})

t.test('cancel (reply status 3) your own outgoing request: rows gone on both sides, contact_cancelled', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await call(app, 'add_contact_request', { login: bob.login }, alice.token)
  const bobCursor = (await poll(app, bob, 0)).cursor

  const cancelled = await call(app, 'add_contact_reply', { contact_uid: bob.uid, status: 3 }, alice.token)
  t.equal(cancelled.status, 200)
  t.same(cancelled.body, { contact_uid: bob.uid, status: 3 })
  t.same(await contactsOf(app, alice), {}, 'alice has no row')
  t.same(await contactsOf(app, bob), {}, 'bob has no row')

  const bobLog = await eventsAfter(app, bob, bobCursor)
  t.equal(bobLog.events.length, 1)
  checkEvent(t, bobLog.events[0], 'contact_cancelled', alice)

  // Bob can no longer answer it, and alice may ask again.
  const late = await call(app, 'add_contact_reply', { contact_uid: alice.uid, status: 1 }, bob.token)
  t.equal(late.status, 404)
  const again = await call(app, 'add_contact_request', { login: bob.login }, alice.token)
  t.equal(again.status, 200)
  t.equal(again.body.status, 0)
})

t.test('del_contact by contact_uid: both sides gone, contact_deleted for the other side', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const aliceCursor = (await poll(app, alice, 0)).cursor
  const bobCursor = (await poll(app, bob, 0)).cursor

  const removed = await call(app, 'del_contact', { contact_uid: bob.uid }, alice.token)
  t.equal(removed.status, 200)
  t.same(removed.body, {})
  t.same(await contactsOf(app, alice), {})
  t.same(await contactsOf(app, bob), {})

  const bobLog = await eventsAfter(app, bob, bobCursor)
  t.equal(bobLog.events.length, 1)
  checkEvent(t, bobLog.events[0], 'contact_deleted', alice)
  t.same((await eventsAfter(app, alice, aliceCursor)).events.filter((e) => e.type !== 'presence'), [], 'the remover gets no contact event')

  const msg = await call(app, 'send_msg', { to_uid: alice.uid, msg: 'still there?' }, bob.token)
  t.equal(msg.status, 403, 'no more messages after the removal')
  t.equal(msg.body.error, 'not_friends')

  const twice = await call(app, 'del_contact', { contact_uid: bob.uid }, alice.token)
  t.equal(twice.status, 404, 'deleting again: 404')
})

t.test('del_contact by login: both sides gone, contact_deleted for the other side', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const aliceCursor = (await poll(app, alice, 0)).cursor

  const removed = await call(app, 'del_contact', { login: alice.login.toUpperCase() }, bob.token)
  t.equal(removed.status, 200, 'the login matches regardless of case')
  t.same(removed.body, {})
  t.same(await contactsOf(app, alice), {})
  t.same(await contactsOf(app, bob), {})

  const aliceLog = await eventsAfter(app, alice, aliceCursor)
  t.equal(aliceLog.events.length, 1)
  checkEvent(t, aliceLog.events[0], 'contact_deleted', bob)
})

t.test('del_contact of a pending request removes it for both sides too', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await call(app, 'add_contact_request', { login: bob.login }, alice.token)
  const aliceCursor = (await poll(app, alice, 0)).cursor

  // Bob deletes the incoming request instead of answering it.
  const removed = await call(app, 'del_contact', { contact_uid: alice.uid }, bob.token)
  t.equal(removed.status, 200)
  t.same(await contactsOf(app, alice), {})
  t.same(await contactsOf(app, bob), {})
  const aliceLog = await eventsAfter(app, alice, aliceCursor)
  t.equal(aliceLog.events.length, 1)
  checkEvent(t, aliceLog.events[0], 'contact_deleted', bob)
})

t.test('del_contact of a non-contact → 404 not_found; naming nobody → 400', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  const bobCursor = (await poll(app, bob, 0)).cursor

  const byUid = await call(app, 'del_contact', { contact_uid: bob.uid }, alice.token)
  t.equal(byUid.status, 404)
  t.equal(byUid.body.error, 'not_found')
  const byLogin = await call(app, 'del_contact', { login: bob.login }, alice.token)
  t.equal(byLogin.status, 404)
  t.equal(byLogin.body.error, 'not_found')
  const unknown = await call(app, 'del_contact', { login: uniqueLogin('ghost') }, alice.token)
  t.equal(unknown.status, 404)
  const unknownUid = await call(app, 'del_contact', { contact_uid: 987654321 }, alice.token)
  t.equal(unknownUid.status, 404)
  t.same((await eventsAfter(app, bob, bobCursor)).events, [], 'no event from a refused delete')

  const nobody = await call(app, 'del_contact', {}, alice.token)
  t.equal(nobody.status, 400)
  t.equal(nobody.body.error, 'bad_request')
})

t.test('send_msg: to a non-friend 403 not_friends (also with a request pending), to a friend 200', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)

  const stranger = await call(app, 'send_msg', { to_uid: bob.uid, msg: 'hello?' }, alice.token)
  t.equal(stranger.status, 403)
  t.equal(stranger.body.error, 'not_friends')

  await call(app, 'add_contact_request', { login: bob.login }, alice.token)
  const pending = await call(app, 'send_msg', { to_uid: bob.uid, msg: 'hello?' }, alice.token)
  t.equal(pending.status, 403, 'an outgoing request is not enough')
  t.equal(pending.body.error, 'not_friends')
  const incoming = await call(app, 'send_msg', { to_uid: alice.uid, msg: 'hello?' }, bob.token)
  t.equal(incoming.status, 403, 'an incoming request is not enough')
  t.same((await poll(app, bob, 0)).msg_array, [], 'nothing was delivered')

  await call(app, 'add_contact_reply', { contact_uid: alice.uid, status: 1 }, bob.token)
  const friend = await call(app, 'send_msg', { to_uid: bob.uid, msg: 'hello, friend' }, alice.token)
  t.equal(friend.status, 200)
  t.type(friend.body.msg_id, 'number')
  t.type(friend.body.time, 'number')
  const bobMessages = (await poll(app, bob, 0)).msg_array
  t.equal(bobMessages.length, 1)
  t.match(bobMessages[0], { msg_id: friend.body.msg_id, sender_uid: alice.uid, sender_login: alice.login, text: 'hello, friend' })

  const back = await call(app, 'send_msg', { to_uid: alice.uid, msg: 'hi alice' }, bob.token)
  t.equal(back.status, 200, 'both directions once friends')
})

t.test('concurrent: A asks B while B asks A → both end as friends, no error (10 fresh pairs)', async (t) => {
  const app = await build(t)
  for (let round = 0; round < 10; round++) {
    const [a, b] = await Promise.all([signUp(app), signUp(app)])
    const [fromA, fromB] = await Promise.all([
      call(app, 'add_contact_request', { login: b.login }, a.token),
      call(app, 'add_contact_request', { login: a.login }, b.token),
    ])
    t.equal(fromA.status, 200, `round ${round}: A's request succeeds`)
    t.equal(fromB.status, 200, `round ${round}: B's request succeeds`)
    t.same([fromA.body.status, fromB.body.status].sort(), [0, 1], `round ${round}: one asked, the other completed it`)
    t.same(await contactsOf(app, a), { [b.uid]: 1 }, `round ${round}: A sees friends`)
    t.same(await contactsOf(app, b), { [a.uid]: 1 }, `round ${round}: B sees friends`)

    // The one who asked first got a contact_accepted; the other a contact_request.
    const [first, second] = fromA.body.status === 0 ? [a, b] : [b, a]
    // Presence events (the other side polled while friends) are beside the point here.
    const contactEvents = async (session: typeof a) => (await poll(app, session, 0)).events_array.filter((e) => e.type !== 'presence')
    const firstEvents = await contactEvents(first)
    const secondEvents = await contactEvents(second)
    t.same(firstEvents.map((e) => e.type), ['contact_accepted'], `round ${round}: the first asker is told of the acceptance`)
    t.same(secondEvents.map((e) => e.type), ['contact_request'], `round ${round}: the second asker had been told of the request`)
  }
})
