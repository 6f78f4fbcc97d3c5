// Accounts and sessions: registration, login (by login or e-mail), logout of one or all
// sessions, token renewal, password change, the contact list.
import argon2 from 'argon2'
import type { Knex } from 'knex'
import { insertUser, findUserByLogin, findUserByEmail, findUserById, setPasswordHash, type UserRow } from '../data/users.js'
import { extendSession, insertSession, revokeSession, listLiveSessions, revokeUserSession, revokeUserSessions } from '../data/sessions.js'
import { listContacts } from '../data/contacts.js'
import { forgetSubscriptionsOfSessions } from '../data/push-subscriptions.js'
import { clearLoginFailures, loginRetryAfter, recordLoginFailure } from '../data/login-failures.js'
import { BadRequest, EmailTaken, EmailUnverified, LoginTaken, NotFound, Unauthorized, rateLimited } from '../errors.js'
import type { ServiceDeps } from './deps.js'
import type { Verification, AccountRef } from './verification.js'

// OWASP's minimum for argon2id: 19 MiB, 2 passes, 1 lane.
const HASH_OPTIONS = { type: argon2.argon2id, memoryCost: 19 * 1024, timeCost: 2, parallelism: 1 } as const
const WRONG_CREDENTIALS = 'Wrong login or password'

/** A session as `authorization` and `renew_token` answer it (the wiki's `contact_uid` included). */
export function sessionReply(session: { uid: number; sessionId: number; token: string }) {
  return { uid: session.uid, contact_uid: session.uid, session_key: session.sessionId, token: session.token }
}

export interface Registration {
  login: string
  password: string
  email?: string
}

export function createAccounts({ db, config, eventLog, clock, signToken }: ServiceDeps, verification: Verification) {
  const expiry = () => clock.now() + config.sessionTtlSeconds * 1000
  // Unknown logins are checked against this hash too, so both failures take as long.
  let dummyHash: Promise<string> | undefined

  /**
   * Checks a password against the account (or a dummy hash, so an unknown account takes as
   * long), under the per-login failure limit: 429 while it is exceeded, `wrong` (401) on a
   * mismatch, which counts a failure; a match clears the count.
   */
  async function checkPassword(user: UserRow | undefined, loginKey: string, password: string, wrong: string): Promise<UserRow> {
    const retryAfter = await loginRetryAfter(db, loginKey, config.loginMaxFailures, config.loginFailureWindowSeconds)
    if (retryAfter > 0) throw rateLimited(`Too many failed logins; try again in ${retryAfter} s`, retryAfter)
    dummyHash ??= argon2.hash('not a password', HASH_OPTIONS)
    const valid = await argon2.verify(user?.password_hash ?? (await dummyHash), password)
    if (!user || !valid) {
      await recordLoginFailure(db, loginKey, config.loginFailureWindowSeconds)
      throw new Unauthorized(wrong)
    }
    await clearLoginFailures(db, loginKey)
    return user
  }

  /**
   * The one way sessions end: `revoke` marks them and returns their ids; in the same
   * transaction their push subscriptions go, so a browser signed out is pushed no more.
   */
  const revokeSessions = (revoke: (trx: Knex.Transaction) => Promise<number[]>) =>
    eventLog.revokeSessions(async (trx) => {
      const sessionIds = await revoke(trx)
      await forgetSubscriptionsOfSessions(trx, sessionIds)
      return sessionIds
    })

  async function openSession(userId: number) {
    const expiresAt = expiry()
    const sessionId = await insertSession(db, userId, expiresAt)
    const cursor = await eventLog.head(userId)
    return { uid: userId, sessionId, token: signToken({ uid: userId, sid: sessionId }, expiresAt), cursor }
  }

  return {
    async register({ login, password, email }: Registration): Promise<{ uid: number; verificationRequired: boolean }> {
      if (config.requireEmailVerification && !email) throw new BadRequest('An e-mail address is required (REQUIRE_EMAIL_VERIFICATION)')
      const hash = await argon2.hash(password, HASH_OPTIONS)
      let uid: number
      try {
        uid = await insertUser(db, { login, passwordHash: hash, email })
      } catch (error) {
        const { code, constraint } = error as { code?: string; constraint?: string }
        if (code === '23505') throw constraint === 'users_email_lower_key' ? new EmailTaken() : new LoginTaken()
        throw error
      }
      if (config.requireEmailVerification && email) await verification.sendFirstCode({ id: uid, email })
      return { uid, verificationRequired: config.requireEmailVerification }
    },

    /**
     * Opens a session. Wrong login, unknown e-mail and wrong password are one and the same
     * 401; an account waiting for its e-mail code gets 403 only once the password matched.
     */
    async authorize(ref: AccountRef, password: string) {
      const user = ref.login !== undefined ? await findUserByLogin(db, ref.login) : await findUserByEmail(db, ref.email)
      // One failure counter per account, however it is named; per identifier when unknown.
      const loginKey = user ? user.login.toLowerCase() : (ref.login ?? `email:${ref.email}`).toLowerCase()
      const account = await checkPassword(user, loginKey, password, WRONG_CREDENTIALS)
      if (config.requireEmailVerification && account.email && !account.email_verified) throw new EmailUnverified()
      return openSession(account.id)
    },

    /** A new token for the same session, which lives SESSION_TTL_SECONDS from now. */
    async renew(userId: number, sessionId: number) {
      const expiresAt = expiry()
      if (!(await extendSession(db, sessionId, clock.now(), expiresAt))) throw new Unauthorized('Session logged out or expired')
      return { uid: userId, sessionId, token: signToken({ uid: userId, sid: sessionId }, expiresAt) }
    },

    async logout(sessionId: number): Promise<void> {
      await revokeSessions(async (trx) => {
        await revokeSession(trx, sessionId)
        return [sessionId]
      })
    },

    /** Ends one of the user's sessions. */
    async logoutSession(userId: number, sessionId: number): Promise<void> {
      const revoked = await revokeSessions(async (trx) => ((await revokeUserSession(trx, userId, sessionId, clock.now())) ? [sessionId] : []))
      if (revoked.length === 0) throw new NotFound('No such live session')
    },

    /** Ends all the user's sessions, or all but `keepSessionId`; returns how many ended. */
    async logoutAll(userId: number, keepSessionId?: number): Promise<number> {
      return (await revokeSessions((trx) => revokeUserSessions(trx, userId, clock.now(), keepSessionId))).length
    },

    sessions(userId: number) {
      return listLiveSessions(db, userId, clock.now())
    },

    /**
     * Changes the password; every other session of the user ends. Wrong current passwords
     * count as failed logins, so a stolen token cannot be used to guess the password.
     */
    async changePassword(userId: number, sessionId: number, oldPassword: string, newPassword: string): Promise<void> {
      const user = await findUserById(db, userId)
      if (!user) throw new Unauthorized('Session logged out or expired')
      await checkPassword(user, user.login.toLowerCase(), oldPassword, 'The current password is wrong')
      const hash = await argon2.hash(newPassword, HASH_OPTIONS)
      await revokeSessions(async (trx) => {
        await setPasswordHash(trx, userId, hash)
        return revokeUserSessions(trx, userId, clock.now(), sessionId)
      })
    },

    contacts(userId: number) {
      return listContacts(db, userId)
    },
  }
}

export type Accounts = ReturnType<typeof createAccounts>
