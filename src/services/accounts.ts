// Accounts and sessions: registration, login, logout, the contact list.
import argon2 from 'argon2'
import { insertUser, findUserByLogin, findUserById, getLogHead } from '../data/users.js'
import { insertSession, revokeSession } from '../data/sessions.js'
import { notifySessionRevoked } from '../data/events.js'
import { listContacts } from '../data/contacts.js'
import { clearLoginFailures, loginRetryAfter, recordLoginFailure } from '../data/login-failures.js'
import { LoginTaken, NotFound, RateLimited, Unauthorized } from '../errors.js'
import type { ServiceDeps } from './deps.js'

// OWASP's minimum for argon2id: 19 MiB, 2 passes, 1 lane.
const HASH_OPTIONS = { type: argon2.argon2id, memoryCost: 19 * 1024, timeCost: 2, parallelism: 1 } as const
const WRONG_CREDENTIALS = 'Wrong login or password'

export function createAccounts({ db, config, channel, hub, signToken }: ServiceDeps) {
  // Unknown logins are checked against this hash too, so both failures take as long.
  let dummyHash: Promise<string> | undefined

  return {
    async register(login: string, password: string): Promise<number> {
      const hash = await argon2.hash(password, HASH_OPTIONS)
      try {
        return await insertUser(db, login, hash)
      } catch (error) {
        if ((error as { code?: string }).code === '23505') throw new LoginTaken()
        throw error
      }
    },

    async authorize(login: string, password: string) {
      const loginKey = login.toLowerCase()
      const retryAfter = await loginRetryAfter(db, loginKey, config.loginMaxFailures, config.loginFailureWindowSeconds)
      if (retryAfter > 0) {
        const error = new RateLimited(`Too many failed logins; try again in ${retryAfter} s`)
        Object.assign(error, { retryAfter })
        throw error
      }
      const user = await findUserByLogin(db, login)
      dummyHash ??= argon2.hash('not a password', HASH_OPTIONS)
      const valid = await argon2.verify(user?.password_hash ?? (await dummyHash), password)
      if (!user || !valid) {
        await recordLoginFailure(db, loginKey, config.loginFailureWindowSeconds)
        throw new Unauthorized(WRONG_CREDENTIALS)
      }
      await clearLoginFailures(db, loginKey)
      const sessionId = await insertSession(db, user.id, config.sessionTtlSeconds)
      const cursor = await getLogHead(db, user.id)
      return { uid: user.id, sessionId, token: signToken({ uid: user.id, sid: sessionId }), cursor }
    },

    /** Revokes the session in the database and, through NOTIFY, ends its held polls everywhere. */
    async logout(sessionId: number): Promise<void> {
      await db.transaction(async (trx) => {
        await revokeSession(trx, sessionId)
        await notifySessionRevoked(trx, channel, sessionId)
      })
      hub.revokeSession(sessionId)
    },

    contacts(userId: number) {
      return listContacts(db, userId)
    },

    async publicUser(userId: number) {
      const user = await findUserById(db, userId)
      if (!user) throw new NotFound('No such user')
      return { uid: user.id, username: user.login }
    },
  }
}

export type Accounts = ReturnType<typeof createAccounts>
