// The signed-in session, kept in localStorage so a reload resumes where it was: the token,
// who I am, and the last cursor the long-poll handed out (a reload polls on from there, so
// nothing is missed; messages already on screen are recognised by msg_id).
const KEY = 'messenger.session'

export interface SavedSession {
  uid: number
  login: string
  token: string
  cursor: number
}

export function loadSession(): SavedSession | undefined {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) ?? 'null') as Partial<SavedSession> | null
    if (saved && typeof saved.token === 'string' && typeof saved.uid === 'number' && typeof saved.login === 'string') {
      return { uid: saved.uid, login: saved.login, token: saved.token, cursor: Number(saved.cursor) || 0 }
    }
  } catch {
    // A damaged entry is a signed-out browser.
  }
  return undefined
}

export function saveSession(session: SavedSession): void {
  localStorage.setItem(KEY, JSON.stringify(session))
}

export function forgetSession(): void {
  localStorage.removeItem(KEY)
}
