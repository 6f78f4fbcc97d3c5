// Presence, derived from polling. A user is online while a poll of theirs is held and
// for PRESENCE_GRACE_SECONDS after the last one ended; friends get a `presence` event
// when that changes. The grace period is the debounce: a client that reconnects within
// it never appears offline.
//
// Each process records its pollers as seen: once when a poll starts (at most once per
// PRESENCE_SWEEP_SECONDS per user), and at every sweep for the polls it holds and those
// that ended since. The sweep, run by every process, turns offline the online users not
// seen within the grace period. Every change happens in one transaction that locks the
// user and the friends (id order) and re-checks the state, so of several processes only
// one announces it, and friends' logs get the events in the order the changes committed.
import { friendIds } from '../data/contacts.js'
import { friendsPresence, lastSeenMs, presenceOf, recordSeen, setOnline, silentOnlineUsers } from '../data/presence.js'
import type { ServiceDeps } from './deps.js'

export function createPresence({ db, config, eventLog, clock }: ServiceDeps) {
  const sweepMs = config.presenceSweepSeconds * 1000
  const graceMs = config.presenceGraceSeconds * 1000
  /** When this process last recorded each user as seen. */
  const recordedAt = new Map<number, number>()
  /** Users whose poll ended since the last sweep, and when. */
  const endedAt = new Map<number, number>()

  /** Flips the user's presence if it still needs flipping, and tells the friends. */
  async function change(userId: number, online: boolean): Promise<void> {
    await db.transaction(async (trx) => {
      const friends = await friendIds(trx, userId)
      await eventLog.lockUsers(trx, [userId, ...friends])
      const state = await presenceOf(trx, userId)
      if (!state || state.online === online) return
      // Re-checked under the lock: seen within the grace period means online, else offline.
      // (A sweep may record a poll that ended longer ago than that: no flip then.)
      const seenRecently = state.lastSeenMs !== null && state.lastSeenMs >= clock.now() - graceMs
      if (online !== seenRecently) return
      await setOnline(trx, userId, online)
      const lastSeen = state.lastSeenMs === null ? null : Math.floor(state.lastSeenMs / 1000)
      await eventLog.append(trx, friends, { type: 'presence', actorId: userId, payload: { online, last_seen: lastSeen } })
    })
  }

  async function record(seen: Map<number, number>): Promise<void> {
    for (const userId of await recordSeen(db, seen)) await change(userId, true)
  }

  return {
    /** The user is active now (a poll starts, a call is placed): seen, and online if they were not. */
    async seen(userId: number): Promise<void> {
      const now = clock.now()
      const last = recordedAt.get(userId)
      if (last !== undefined && now - last < sweepMs) return
      recordedAt.set(userId, now)
      await record(new Map([[userId, now]]))
    },

    pollEnded(userId: number): void {
      endedAt.set(userId, clock.now())
    },

    /** Records held and recently ended polls as seen, then turns silent users offline. */
    async sweep(): Promise<void> {
      const now = clock.now()
      const seen = new Map(endedAt)
      endedAt.clear()
      for (const userId of eventLog.polls.heldUserIds()) seen.set(userId, now)
      for (const userId of seen.keys()) recordedAt.set(userId, now)
      for (const [userId, at] of recordedAt) if (now - at >= sweepMs && !seen.has(userId)) recordedAt.delete(userId)
      await record(seen)
      for (const userId of await silentOnlineUsers(db, now - graceMs)) {
        // Their next poll must record them again at once, to turn them online.
        recordedAt.delete(userId)
        await change(userId, false)
      }
    },

    friends: (userId: number) => friendsPresence(db, userId),

    /**
     * Whether the user has a live poll: held in this process, or recorded by any process
     * within two sweeps (a held poll is recorded at every sweep of its process).
     */
    async hasLivePoll(userId: number): Promise<boolean> {
      if (eventLog.polls.holdsPollOf(userId)) return true
      const seen = await lastSeenMs(db, userId)
      return seen !== null && seen >= clock.now() - 2 * sweepMs
    },
  }
}

export type Presence = ReturnType<typeof createPresence>
