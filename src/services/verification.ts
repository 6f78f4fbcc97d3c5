// E-mail verification with one-time codes: 6 digits, mailed, kept only as an HMAC.
// A code expires after EMAIL_CODE_TTL_SECONDS, is used once, and dies after
// EMAIL_CODE_MAX_ATTEMPTS wrong tries. Sending is limited per user: one mail per
// EMAIL_RESEND_INTERVAL_SECONDS and EMAIL_MAX_SENDS_PER_HOUR per hour (429 with
// Retry-After beyond). Unknown accounts get the same answers as known ones, so the
// commands can't be used to probe which logins or addresses exist.
import { createHmac, randomInt, timingSafeEqual } from 'node:crypto'
import { countFailedAttempt, deleteEmailCode, findEmailCode, saveEmailCode } from '../data/email-codes.js'
import { findUserByEmail, findUserByLogin, markEmailVerified, type UserRow } from '../data/users.js'
import { CodeExpired, InvalidCode, TooManyAttempts, Unavailable, rateLimited } from '../errors.js'
import type { ServiceDeps } from './deps.js'

const HOUR_MS = 3600_000

/** Who the code is for: by login or by e-mail address. */
export type AccountRef = { login: string; email?: undefined } | { email: string; login?: undefined }

export function createVerification({ db, config, clock, mailer, log, eventLog }: ServiceDeps) {
  const hashCode = (userId: number, code: string) => createHmac('sha256', config.jwtSecret).update(`${userId}:${code}`).digest('hex')

  function findAccount(ref: AccountRef): Promise<UserRow | undefined> {
    return ref.login !== undefined ? findUserByLogin(db, ref.login) : findUserByEmail(db, ref.email)
  }

  /** Stores a new code (within the send limits) and mails it. */
  async function sendCode(user: { id: number; email: string }): Promise<void> {
    const now = clock.now()
    const code = String(randomInt(0, 1_000_000)).padStart(6, '0')
    await db.transaction(async (trx) => {
      const previous = await findEmailCode(trx, user.id, 'update')
      let sendsInWindow = 1
      let windowStartedAt = new Date(now)
      if (previous) {
        const waitMs = previous.sent_at.getTime() + config.emailResendIntervalSeconds * 1000 - now
        if (waitMs > 0) throw rateLimited(`A code was sent moments ago; try again in ${Math.ceil(waitMs / 1000)} s`, waitMs / 1000)
        const windowEnd = previous.window_started_at.getTime() + HOUR_MS
        if (windowEnd > now) {
          if (previous.sends_in_window >= config.emailMaxSendsPerHour) {
            throw rateLimited(`Too many codes sent; try again in ${Math.ceil((windowEnd - now) / 1000)} s`, (windowEnd - now) / 1000)
          }
          sendsInWindow = previous.sends_in_window + 1
          windowStartedAt = previous.window_started_at
        }
      }
      await saveEmailCode(trx, user.id, {
        hash: hashCode(user.id, code),
        expiresAt: new Date(now + config.emailCodeTtlSeconds * 1000),
        sentAt: new Date(now),
        sendsInWindow,
        windowStartedAt,
      })
      const minutes = Math.round(config.emailCodeTtlSeconds / 60)
      try {
        await mailer.send({
          to: user.email,
          subject: `Your verification code: ${code}`,
          text: `Your verification code is ${code}\n\nIt expires in ${minutes} minutes. If you did not register, ignore this mail.\n`,
        })
      } catch (error) {
        log.error({ err: error, uid: user.id }, 'could not send the verification mail')
        throw new Unavailable('Could not send the e-mail; try again later with resend_code')
      }
    })
  }

  return {
    sendCode,

    /** Registration's first mail: a failure is logged, and the user can ask again with resend_code. */
    async sendFirstCode(user: { id: number; email: string }): Promise<void> {
      await sendCode(user).catch(() => {})
    },

    async resend(ref: AccountRef): Promise<void> {
      const user = await findAccount(ref)
      if (!user || !user.email || user.email_verified) return
      await sendCode({ id: user.id, email: user.email })
    },

    async verify(ref: AccountRef, code: string): Promise<number> {
      const user = await findAccount(ref)
      const outcome = await db.transaction(async (trx) => {
        const pending = user ? await findEmailCode(trx, user.id, 'update') : undefined
        if (!user || !pending) return new InvalidCode('No pending code for this account; request one with resend_code')
        if (pending.attempts >= config.emailCodeMaxAttempts) return new TooManyAttempts()
        if (pending.expires_at.getTime() <= clock.now()) return new CodeExpired()
        const expected = Buffer.from(pending.code_hash, 'hex')
        if (!timingSafeEqual(expected, Buffer.from(hashCode(user.id, code), 'hex'))) {
          // Counted in this transaction, which commits: the error is thrown after it.
          await countFailedAttempt(trx, user.id)
          const left = config.emailCodeMaxAttempts - pending.attempts - 1
          return new InvalidCode(left > 0 ? `Wrong code; ${left} tries left` : 'Wrong code; no tries left, request a new one with resend_code')
        }
        await markEmailVerified(trx, user.id)
        await eventLog.profilesChanged(trx, [user.id])
        await deleteEmailCode(trx, user.id)
        return user.id
      })
      if (outcome instanceof Error) throw outcome
      return outcome
    },
  }
}

export type Verification = ReturnType<typeof createVerification>
