// Web Push: a user who is not polling hears of a direct message, a mention in a room, or
// a call that found them away, on each browser or device they subscribed
// (push_subscribe, with the key of get_push_key).
//
// Whose browsers: a subscription belongs to the session that registered it, and is pushed
// only while that session lives (neither revoked nor expired); revoking a session (logout,
// logout_session, logout_all, change_password) deletes its subscriptions, so a browser
// signed out, shared or not, hears no more of its last user.
//
// Who gets a push: a recipient with no live poll, by the rule of presence.hasLivePoll,
// which holds across processes: no poll held in this process, and not recorded as seen
// by any process within two presence sweeps (every process records the polls it holds at
// each sweep, in users.last_seen_at). A user whose client just left still counts as live
// for up to that long, so the gap between one poll and the next never pushes.
//
// Off the request: the sender calls notify() once its send committed, and is answered at
// once. The recipients with a poll held here are left out in memory; the others are
// looked up in batches (the notices that arrive while one look-up runs go in the next,
// one statement each), and their subscriptions' pushes are queued for delivery
// (src/push-delivery.ts: bounded, retried, gone subscriptions removed). A push that fails
// or is dropped never fails or slows a send. Nobody is pushed about a user either of
// them blocked.
import { ECDH } from 'node:crypto'
import type { Static } from 'typebox'
import { createBatcher } from '../batcher.js'
import { isDatabaseUnavailable } from '../database.js'
import {
  countSubscriptions,
  deleteSubscription,
  forgetSubscription,
  forgetSubscriptionsOfEndedSessions,
  lockSubscriptionsOf,
  subscriptionsOfAbsent,
  upsertSubscription,
  type PushTarget,
} from '../data/push-subscriptions.js'
import { BadRequest, InvalidState } from '../errors.js'
import { createPushDelivery, type Push as OutgoingPush } from '../push-delivery.js'
import { PUSH_TEXT_MAX_CHARS, type PushPayload, type PushSubscribeBody } from '../schemas/push.js'
import type { ServiceDeps } from './deps.js'
import type { Presence } from './presence.js'

/** Notices looked up together, at most (one statement). */
const NOTICES_PER_LOOKUP = 100

/** What happened, for whom it is news: a push to each of their subscriptions unless they poll. */
export interface PushNotice {
  type: 'message' | 'mention' | 'call'
  fromUid: number
  roomId?: number
  roomName?: string
  msgId?: number
  callId?: number
  /** The message's text, for the subscriptions that opted in. */
  text?: string
}

/** At most PUSH_TEXT_MAX_CHARS characters (code points), the last one `…` when cut. */
function shortened(text: string): string {
  const chars = [...text]
  return chars.length <= PUSH_TEXT_MAX_CHARS ? text : chars.slice(0, PUSH_TEXT_MAX_CHARS - 1).join('') + '…'
}

/** The payload for one subscription: the message's text only where it opted in. */
function payloadFor(notice: PushNotice, target: PushTarget): Static<typeof PushPayload> {
  return {
    type: notice.type,
    from_uid: notice.fromUid,
    from_login: target.from_login,
    ...(notice.roomId !== undefined && { room_id: notice.roomId }),
    ...(notice.roomName !== undefined && { room_name: notice.roomName }),
    ...(notice.msgId !== undefined && { msg_id: notice.msgId }),
    ...(notice.callId !== undefined && { call_id: notice.callId }),
    ...(target.include_text && notice.text && { text: shortened(notice.text) }),
  }
}

/**
 * A call is time-sensitive (RFC 8030 urgency `high`), a message is a chat message
 * (`normal`). The topic keeps one push per conversation (or caller) waiting at the push
 * service for a device that is away: the latest replaces the one before.
 */
function pushFor(notice: PushNotice, target: PushTarget): OutgoingPush {
  const topic = notice.type === 'call' ? `call-${notice.fromUid}` : notice.roomId !== undefined ? `room-${notice.roomId}` : `dm-${notice.fromUid}`
  return {
    subscription: { id: target.id, endpoint: target.endpoint, p256dh: target.p256dh, auth: target.auth },
    payload: JSON.stringify(payloadFor(notice, target)),
    topic,
    urgency: notice.type === 'call' ? 'high' : 'normal',
  }
}

/** A browser's key: an uncompressed point of P-256 (else 400: no push could ever be encrypted for it). */
function checkBrowserKey(p256dh: string): void {
  const point = Buffer.from(p256dh, 'base64url')
  try {
    if (point[0] !== 0x04) throw new Error('not uncompressed')
    ECDH.convertKey(point, 'prime256v1') // throws unless a point of the curve
  } catch {
    throw new BadRequest('keys.p256dh is not an uncompressed P-256 public key')
  }
}

/**
 * An endpoint is a URL with a host, and a port (if any) from 1 to 65535: the schema's
 * pattern lets through strings that are none (`https://[`, `http://x:99999/`,
 * `https://a%zz`), which no push could ever be sent to.
 */
function checkEndpoint(endpoint: string): void {
  const url = URL.canParse(endpoint) ? new URL(endpoint) : undefined
  if (!url || url.hostname === '' || url.port === '0') throw new BadRequest('endpoint is not a URL with a host (and a port from 1 to 65535)')
}

const unpadded = (base64url: string) => base64url.replace(/=+$/, '')

export function createPush({ db, config, clock, log }: ServiceDeps, presence: Presence) {
  const delivery = createPushDelivery({ config, clock, log, gone: async ({ id, endpoint }) => void (await forgetSubscription(db, id, endpoint)) })
  /** Notices waiting for their look-up (bounded by PUSH_QUEUE_LIMIT too), and those dropped beyond it. */
  let looking = 0
  let droppedNotices = 0
  let closed = false

  const lookups = createBatcher<{ notice: PushNotice; userIds: number[] }, PushTarget[]>(
    async (items) => {
      const notices = items.map(({ notice, userIds }) => ({ userIds, fromUid: notice.fromUid }))
      const targets = await subscriptionsOfAbsent(db, notices, presence.livePollSince(), clock.now())
      const byNotice: PushTarget[][] = items.map(() => [])
      for (const target of targets) byNotice[target.notice].push(target)
      return byNotice
    },
    { maxBatch: NOTICES_PER_LOOKUP, maxInFlight: 1, failsEveryItem: isDatabaseUnavailable },
  )

  return {
    publicKey: () => config.vapidPublicKey,

    /**
     * Stores (or updates) the subscription, for the session that registers it (it moves
     * there from any other); at most MAX_PUSH_SUBSCRIPTIONS_PER_USER (409 beyond), those of
     * sessions that ended not counted (they are forgotten here).
     */
    async subscribe(userId: number, sessionId: number, subscription: Static<typeof PushSubscribeBody>): Promise<void> {
      checkEndpoint(subscription.endpoint)
      checkBrowserKey(subscription.keys.p256dh)
      await db.transaction(async (trx) => {
        await lockSubscriptionsOf(trx, userId)
        await forgetSubscriptionsOfEndedSessions(trx, userId, clock.now())
        const mine = await countSubscriptions(trx, userId, subscription.endpoint)
        if (!mine.has && mine.count >= config.maxPushSubscriptionsPerUser) {
          throw new InvalidState(`At most ${config.maxPushSubscriptionsPerUser} push subscriptions; unsubscribe one first`)
        }
        await upsertSubscription(trx, userId, {
          sessionId,
          endpoint: subscription.endpoint,
          p256dh: unpadded(subscription.keys.p256dh),
          auth: unpadded(subscription.keys.auth),
          includeText: subscription.include_text ?? false,
        })
      })
    },

    /** Forgets the user's subscription of this endpoint; one they do not have is forgotten already. */
    unsubscribe: (userId: number, endpoint: string) => deleteSubscription(db, userId, endpoint),

    /**
     * After a commit: `notice` is news for `userIds`. Answers at once; those without a live
     * poll get their pushes later (or never, when the queue is full or the database away).
     */
    notify(userIds: number[], notice: PushNotice): void {
      const away = userIds.filter((userId) => !presence.pollHeldHere(userId))
      if (away.length === 0 || closed) return
      if (looking >= config.pushQueueLimit) {
        droppedNotices++
        return
      }
      looking++
      lookups
        .submit({ notice, userIds: away })
        .then((targets) => targets.forEach((target) => delivery.send(pushFor(notice, target))))
        .catch((error) => log.warn({ err: error }, 'push: subscriptions could not be looked up; no push for this notice'))
        .finally(() => looking--)
    },

    /**
     * For /metrics and tests: pushes sent, failed, gone (subscription removed), dropped
     * (queue full); those waiting to be tried again, and all work not yet done; the notices
     * whose recipients' subscriptions were looked up, and the statements that did it.
     */
    stats: () => ({
      ...delivery.stats,
      lookedUp: lookups.stats.items,
      lookupStatements: lookups.stats.batches,
      dropped: delivery.stats.dropped + droppedNotices,
      retrying: delivery.retrying(),
      pending: looking + delivery.pending(),
    }),

    close(): void {
      closed = true
      delivery.close()
    },
  }
}

export type PushService = ReturnType<typeof createPush>
