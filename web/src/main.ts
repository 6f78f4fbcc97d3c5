// The web client's entry: signed in (a saved session) opens the chat, else the sign-in form.
import { ApiError, createClient } from '../../sdk/src/index.js'
import { Chat } from './chat.js'
import { byId, fill, h, UNREACHABLE } from './dom.js'
import { registerServiceWorker } from './push.js'
import { forgetSession, loadSession, saveSession, type SavedSession } from './session.js'
import { showSignIn } from './sign-in.js'

const root = byId('app')
const client = createClient({ baseUrl: location.origin })

function signedOut(): void {
  forgetSession()
  client.token = undefined
  showSignIn(root, client, signedIn)
}

function signedIn(session: SavedSession): void {
  saveSession(session)
  client.token = session.token
  const chat = new Chat(root, client, session, signedOut)
  void chat.start().catch((error) => {
    chat.stop()
    // The saved session is gone (logged out elsewhere, expired): sign in again.
    if (error instanceof ApiError && error.status === 401) return signedOut()
    const why = error instanceof ApiError ? error.message : UNREACHABLE
    fill(root, h('p', { role: 'alert', class: 'empty' }, `${why} `, h('button', { type: 'button', onclick: () => signedIn(session) }, 'Retry')))
  })
}

registerServiceWorker()
const saved = loadSession()
if (saved) signedIn(saved)
else signedOut()
// The first screen is drawn and answers input: how long a page takes to be usable.
performance.mark('messenger:usable')
