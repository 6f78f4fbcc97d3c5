// The web client in a real Chromium (Debian's chromium, driven by playwright-core), served
// by a listening server, two people in two browser contexts:
// - both register; alice asks bob to be a contact, bob accepts; alice declines carol;
// - they chat both ways; bob sees alice typing; alice sees her message read;
// - bob reacts and alice sees the count; alice replies to bob and he sees what she replied to;
// - alice sends a file and bob downloads the same bytes;
// - a room: alice creates it and invites bob, who sees it with its unread count;
// - bob reloads the page, and later the server restarts: no message is shown twice, and
//   what is sent after the restart arrives;
// - history loads further back when the log is scrolled to the top;
// - the service worker shows a notification for a push;
// - sign out returns to the sign-in form.
// A screenshot of the chat is kept in ARTIFACTS_DIR (default test-artifacts/). Without
// Chromium (CHROMIUM_PATH, default /usr/bin/chromium) these tests are skipped, saying why.
import { existsSync } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import t, { type Test } from 'tap'
import type { App } from '../src/app.js'
import { BACKOFF_MAX_MS } from '../sdk/src/index.js'
import { befriend, build, call, createTestSchema, eventually, signUp, uniqueLogin } from './helper.js'

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const ARTIFACTS = path.resolve(process.env.ARTIFACTS_DIR || 'test-artifacts')
// The machine has no route to the internet: keep Chromium from reaching for it.
const CHROMIUM_ARGS = ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

if (!existsSync(CHROMIUM)) {
  t.plan(0, `no Chromium at ${CHROMIUM}: the browser tests are skipped (apt-get install chromium, or set CHROMIUM_PATH)`)
} else {
  const { chromium } = await import('playwright-core')
  type Page = import('playwright-core').Page
  type Browser = import('playwright-core').Browser

  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())

  async function listen(app: App, port = 0): Promise<string> {
    await app.listen({ port, host: '127.0.0.1' })
    return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  }

  async function newPage(base: string): Promise<Page> {
    const context = await browser.newContext({ baseURL: base })
    await context.grantPermissions(['notifications'], { origin: base })
    const page = await context.newPage()
    page.setDefaultTimeout(10_000)
    return page
  }

  async function enter(page: Page, login: string, button: 'Register' | 'Sign in') {
    await page.goto('/')
    await page.getByLabel('Login').fill(login)
    await page.getByLabel('Password').fill('secret1')
    await page.getByRole('button', { name: button }).click()
    await page.getByRole('button', { name: 'Sign out' }).waitFor()
  }

  const conversation = (page: Page, name: string) => page.getByRole('list', { name: 'Conversations' }).getByRole('listitem', { name, exact: true })
  const message = (page: Page, sender: string, text: string) => page.getByRole('log').getByRole('article', { name: `${sender}: ${text}`, exact: true })

  async function say(page: Page, text: string) {
    await page.getByLabel('Message', { exact: true }).fill(text)
    await page.getByRole('button', { name: 'Send', exact: true }).click()
  }

  t.test('two people sign up, befriend, chat, react, reply, share a file, use a room, reload, survive a restart and sign out', async (t: Test) => {
    const database = await createTestSchema(t)
    let app = await build(t, {}, database)
    const base = await listen(app)
    const port = Number(new URL(base).port)
    const aliceLogin = uniqueLogin('alice')
    const bobLogin = uniqueLogin('bob')
    const alice = await newPage(base)
    const bob = await newPage(base)

    // The first page of a server that has not served it yet (it bundles the client then),
    // and of a warm server in a new browser context (nothing cached).
    const firstPage = async (page: Page) => {
      await page.goto('/')
      await page.getByRole('button', { name: 'Sign in' }).waitFor()
      return page.evaluate(() => {
        const [usable] = performance.getEntriesByName('messenger:usable')
        return { usable: Math.round(usable!.startTime) }
      })
    }
    const cold = await firstPage(alice)
    const warm = await firstPage(bob)
    t.comment(`first page usable after ${cold.usable} ms on a server that had not served it yet, ${warm.usable} ms on a warm server (fresh browser context)`)

    await enter(alice, aliceLogin, 'Register')
    await enter(bob, bobLogin, 'Register')

    // Contacts: a request, accepted.
    await alice.getByLabel('Add contact').fill(bobLogin)
    await alice.getByRole('button', { name: 'Add', exact: true }).click()
    const request = bob.getByRole('list', { name: 'Contact requests' }).getByRole('listitem', { name: aliceLogin })
    await request.getByRole('button', { name: 'Accept' }).click()
    await conversation(bob, aliceLogin).getByRole('button').click()
    await conversation(alice, bobLogin).getByRole('button').click()
    t.pass('the request reached bob live, and each sees the other in the conversation list')

    // Typing, then a message both ways, and a read receipt.
    await alice.getByLabel('Message', { exact: true }).pressSequentially('Hello')
    await bob.getByText(`${aliceLogin} is typing…`).waitFor()
    t.pass('bob sees alice typing')
    await say(alice, 'Hello Bob')
    await message(bob, aliceLogin, 'Hello Bob').waitFor()
    await t.resolves(bob.getByText(`${aliceLogin} is typing…`).waitFor({ state: 'hidden' }), 'the typing line goes when her message arrives')
    await message(alice, aliceLogin, 'Hello Bob').getByText('Read', { exact: true }).waitFor()
    t.pass('alice sees her message read: bob has the chat open')
    await say(bob, 'Hi Alice')
    await message(alice, bobLogin, 'Hi Alice').waitFor()

    // A reaction, and a reply.
    await message(bob, aliceLogin, 'Hello Bob').getByRole('button', { name: 'React 👍' }).click()
    await message(alice, aliceLogin, 'Hello Bob').getByRole('button', { name: 'React 👍 (1)' }).waitFor()
    t.pass('alice sees bob\'s reaction counted')
    await message(alice, bobLogin, 'Hi Alice').getByRole('button', { name: 'Reply' }).click()
    await say(alice, 'Replying now')
    await t.resolves(message(bob, aliceLogin, 'Replying now').getByText(`${bobLogin}: Hi Alice`).waitFor(), 'bob sees what alice replied to')

    // A file, uploaded by alice and downloaded by bob.
    await alice.getByLabel('Attach file').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('the notes, byte for byte') })
    const downloading = bob.waitForEvent('download')
    await message(bob, aliceLogin, 'notes.txt').getByRole('button', { name: /^Download notes\.txt/ }).click()
    const download = await downloading
    t.equal(download.suggestedFilename(), 'notes.txt')
    t.equal(await readFile((await download.path())!, 'utf8'), 'the notes, byte for byte', 'bob downloads the bytes alice sent')

    // A request declined, live.
    const carol = await signUp(app, uniqueLogin('carol'))
    t.equal((await call(app, 'add_contact_request', { login: aliceLogin }, carol.token)).status, 200)
    const carolsRequest = alice.getByRole('list', { name: 'Contact requests' }).getByRole('listitem', { name: carol.login })
    await carolsRequest.getByRole('button', { name: 'Decline' }).click()
    await carolsRequest.waitFor({ state: 'detached' })
    t.match((await call(app, 'get_data', {}, carol.token)).body.contacts, [{ friend_login: aliceLogin, status: 2 }], 'carol\'s request reached alice live, and alice declined it')

    // A room with an unread count.
    await alice.getByLabel('Room name').fill('Team')
    await alice.getByRole('button', { name: 'Create room' }).click()
    await alice.getByRole('heading', { name: 'Team' }).waitFor()
    await alice.getByLabel('Contact to invite').selectOption({ label: bobLogin })
    await alice.getByRole('button', { name: 'Invite' }).click()
    await conversation(bob, 'Team').waitFor()
    await say(alice, 'Welcome to the team')
    await conversation(bob, 'Team').getByText('1 unread').waitFor()
    t.pass('bob sees the room alice invited him to, with one unread message, live')
    // Bob is away while alice writes again; when he comes back the count comes from
    // get_dialogs and the poll replays the same message: counted once.
    const savedCursor = () => bob.evaluate(() => JSON.parse(localStorage.getItem('messenger.session')!).cursor as number)
    const cursorBefore = await savedCursor()
    await bob.goto('about:blank')
    await say(alice, 'Are you there?')
    await bob.goto('/')
    await conversation(bob, 'Team').getByText('2 unread').waitFor()
    await bob.waitForFunction((before) => JSON.parse(localStorage.getItem('messenger.session')!).cursor > before, cursorBefore)
    t.ok((await savedCursor()) > cursorBefore, "bob's page polled the message it missed (its saved cursor moved past it)")
    t.equal(await conversation(bob, 'Team').getByText(/\d+ unread/).textContent(), '2 unread', 'back on the page, bob sees 2 unread: the replayed message is not counted twice')
    await conversation(bob, 'Team').getByRole('button').click()
    await message(bob, aliceLogin, 'Are you there?').waitFor()
    await t.resolves(conversation(bob, 'Team').getByText(/\d+ unread/).waitFor({ state: 'detached' }), 'opening the room clears its count')

    await mkdir(ARTIFACTS, { recursive: true })
    await conversation(alice, bobLogin).getByRole('button').click()
    await message(alice, bobLogin, 'Hi Alice').waitFor()
    await alice.screenshot({ path: path.join(ARTIFACTS, 'chat.png') })
    t.comment(`screenshot: ${path.join(ARTIFACTS, 'chat.png')}`)

    // A reload: each message once.
    await conversation(bob, aliceLogin).getByRole('button').click()
    await message(bob, aliceLogin, 'Hello Bob').waitFor()
    await bob.reload()
    await message(bob, aliceLogin, 'Replying now').waitFor()
    await say(alice, 'After the reload')
    await message(bob, aliceLogin, 'After the reload').waitFor()
    for (const text of ['Hello Bob', 'Replying now', 'notes.txt', 'After the reload']) t.equal(await message(bob, aliceLogin, text).count(), 1, `after the reload bob sees "${text}" once`)

    // The server restarts on the same port: the page reconnects and misses nothing. Its
    // back-off may have grown while the server was away: wait for the pages to poll again.
    await app.close()
    app = await build(t, {}, database)
    await listen(app, port)
    const restarted = app
    await eventually(() => restarted.eventLog.polls.size >= 2, { what: 'both pages to poll the new server', timeoutMs: 2 * BACKOFF_MAX_MS })
    await say(alice, 'After the restart')
    await message(bob, aliceLogin, 'After the restart').waitFor()
    for (const text of ['Hello Bob', 'After the reload', 'After the restart']) t.equal(await message(bob, aliceLogin, text).count(), 1, `after the restart bob sees "${text}" once`)

    await bob.getByRole('button', { name: 'Sign out' }).click()
    await bob.getByLabel('Login').waitFor()
    t.pass('sign out returns to the sign-in form')
    await enter(bob, bobLogin, 'Sign in')
    t.pass('and bob signs in again')
  })

  t.test('history loads further back when the log is scrolled to the top', async (t: Test) => {
    const app = await build(t)
    const base = await listen(app)
    const carol = await signUp(app, uniqueLogin('carol'))
    const dave = await signUp(app, uniqueLogin('dave'))
    await befriend(app, carol, dave)
    for (let i = 1; i <= 75; i++) t.equal((await call(app, 'send_msg', { to_uid: dave.uid, msg: `line ${i}` }, carol.token)).status, 200)
    const page = await newPage(base)
    await enter(page, dave.login, 'Sign in')
    await conversation(page, carol.login).getByRole('button').click()
    await message(page, carol.login, 'line 75').waitFor()
    const shown = () => page.getByRole('log').getByRole('article').count()
    t.equal(await shown(), 30, 'the first page of history: 30 messages')
    for (const expected of [60, 75]) {
      await page.getByRole('log').evaluate((log) => (log.scrollTop = 0))
      await page.waitForFunction((count) => document.querySelectorAll('[role=log] article').length === count, expected)
      t.equal(await shown(), expected, `scrolled to the top: ${expected} messages`)
    }
    await message(page, carol.login, 'line 1').waitFor()
    t.pass('the oldest message is there')
  })

  t.test('the service worker shows a notification for a push', async (t: Test) => {
    const app = await build(t)
    const base = await listen(app)
    const erin = await signUp(app, uniqueLogin('erin'))
    const page = await newPage(base)
    await enter(page, erin.login, 'Sign in')
    await page.evaluate(() => navigator.serviceWorker.ready.then(() => undefined))
    const cdp = await page.context().newCDPSession(page)
    const registration = new Promise<string>((resolve) =>
      cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations }) => {
        const ours = registrations.find((r) => r.scopeURL === `${base}/` && !r.isDeleted)
        if (ours) resolve(ours.registrationId)
      }),
    )
    await cdp.send('ServiceWorker.enable')
    const payload = { type: 'message', from_uid: 7, from_login: 'frank', text: 'Are you there?' }
    await cdp.send('ServiceWorker.deliverPushMessage', { origin: base, registrationId: await registration, data: JSON.stringify(payload) })
    // Asked from here, not by waitForFunction: that takes the promise an async predicate
    // returns as truthy at once, and so read the list before the worker had shown anything.
    const shownNotifications = () =>
      page.evaluate(async () =>
        (await (await navigator.serviceWorker.ready).getNotifications()).map((n) => ({ title: n.title, body: n.body, tag: n.tag })),
      )
    const notifications = await eventually(async () => {
      const shown = await shownNotifications()
      return shown.length > 0 && shown
    }, { what: 'the service worker to show the notification', timeoutMs: 10_000, everyMs: 50 })
    t.same(notifications, [{ title: 'frank', body: 'Are you there?', tag: 'u7' }], 'one notification, naming the sender and opening his chat')
  })
}
