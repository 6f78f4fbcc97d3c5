// The first screen: sign in, or register and sign in.
import { ApiError, type Client } from '../../sdk/src/index.js'
import { fill, h, UNREACHABLE } from './dom.js'
import type { SavedSession } from './session.js'

export function showSignIn(root: HTMLElement, client: Client, signedIn: (session: SavedSession) => void): void {
  const login = h('input', { id: 'login', name: 'login', autocomplete: 'username', required: true, maxlength: 64 })
  const password = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true })
  const status = h('p', { role: 'status', class: 'status' })

  async function enter(register: boolean) {
    if (!login.reportValidity() || !password.reportValidity()) return
    status.textContent = register ? 'Registering…' : 'Signing in…'
    try {
      if (register) {
        const registered = await client.registration({ login: login.value.trim(), password: password.value })
        if (registered.verification_required) {
          status.textContent = 'Registered. Confirm the code mailed to you, then sign in.'
          return
        }
      }
      const { session, cursor } = await client.authorization({ login: login.value.trim(), password: password.value })
      signedIn({ uid: session.uid, login: login.value.trim(), token: session.token, cursor })
    } catch (error) {
      status.textContent = error instanceof ApiError ? error.message : UNREACHABLE
    }
  }

  const form = h(
    'form',
    { class: 'sign-in', 'aria-labelledby': 'sign-in-title', onsubmit: (event: Event) => (event.preventDefault(), void enter(false)) },
    h('h1', { id: 'sign-in-title' }, 'Messenger'),
    h('label', { for: 'login' }, 'Login'),
    login,
    h('label', { for: 'password' }, 'Password'),
    password,
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Sign in'), h('button', { type: 'button', class: 'secondary', onclick: () => void enter(true) }, 'Register')),
    status,
  )
  fill(root, form)
  login.focus()
}
