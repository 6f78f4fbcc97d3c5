// Presence, derived from polling. A user is online while a poll of theirs is held and
// for PRESENCE_GRACE_SECONDS after the last one ended; friends get a `presence` event
// when that changes. The grace period is the debounce: a client that reconnects within
// it never appears offline.
//
// Each process records its pollers as seen: once when a poll starts (at most once per
// PRESENCE_SWEEP_SECONDS per user), and at every sweep for the polls it holds and those
// that ended since. The sweep, run by every process, turns offline the online users not
// seen within the grace period. Changes are made in groups: the users seen while the
// previous group was being written are recorded together, and those of them who come
// online flip in one transaction that locks them and all their friends (id order) once,
// re-checks each state under the lock and appends every presence event in one statement.
// So of several processes only one announces a change, friends' logs get the events in
// the order the changes committed, and a reconnect storm of a popular user's friends
// takes that user's lock once per group, not once per friend.
import { createBatcher } from '../batcher.js'
import { isDatabaseUnavailable } from '../database.js'
import { friendsOfEach } from '../data/contacts.js'
import { friendsPresence, lastSeenMs, presenceOfEach, recordSeen, setOnline, silentOnlineUsers } from '../data/presence.js'
import type { ServiceDeps } from './deps.js'

/** Users recorded as seen together, at most (a group's transaction locks them and their friends). */
const SEEN_PER_GROUP = 250

export function createPresence({ db, config, eventLog, clock }: ServiceDeps) {
  const sweepMs = config.presenceSweepSeconds * 1000
  const graceMs = config.presenceGraceSeconds * 1000
  /** When this process last recorded each user as seen. */
  const recordedAt = new Map<number, number>()
  /** Users whose poll ended since the last sweep, and when. */
  const endedAt = new Map<number, number>()

  /** Flips these users' presence where it still needs flipping, and tells their friends. */
  async function change(userIds: number[], online: boolean): Promise<void> {
    if (userIds.length === 0) return
    await db.transaction(async (trx) => {
      const friendsOf = new Map<number, number[]>(userIds.map((userId) => [userId, []]))
      for (const pair of await friendsOfEach(trx, userIds)) friendsOf.get(pair.user_id)!.push(pair.friend_id)
      await eventLog.lockUsers(trx, [...new Set([...userIds, ...[...friendsOf.values()].flat()])])
      const states = await presenceOfEach(trx, userIds)
      const flipped = userIds.filter((userId) => {
        const state = states.get(userId)
        if (!state || state.online === online) return false
        // Re-checked under the lock: seen within the grace period means online, else offline.
        // (A sweep may record a poll that ended longer ago than that: no flip then.)
        const seenRecently = state.lastSeenMs !== null && state.lastSeenMs >= clock.now() - graceMs
        return online === seenRecently
      })
      await setOnline(trx, flipped, online)
      await eventLog.appendEach(
        trx,
        flipped.map((userId) => {
          const lastSeenMs = states.get(userId)!.lastSeenMs
          const last_seen = lastSeenMs === null ? null : Math.floor(lastSeenMs / 1000)
          return { userIds: friendsOf.get(userId)!, event: { type: 'presence', actorId: userId, payload: { online, last_seen } } }
        }),
      )
    })
  }

  /** A queue of groups that record users as seen and turn online those who were not. */
  const seenGroups = () =>
    createBatcher<[userId: number, atMs: number], void>(
      async (seen) => {
        await change(await recordSeen(db, new Map(seen)), true)
        return seen.map(() => undefined)
      },
      { maxBatch: SEEN_PER_GROUP, maxInFlight: 1, failsEveryItem: isDatabaseUnavailable },
    )
  // Two queues, so that a user active now (whose first poll waits for the record) never
  // queues behind a sweep's record of every poll held or ended here: for 20,000 polls that
  // is 80 groups, which held a reconnect storm's first polls for a second. Groups of both
  // may run at once; they lock in id order, as those of several processes do.
  const activeNow = seenGroups()
  const swept = seenGroups()

  const record = (seen: Map<number, number>) => Promise.all([...seen].map((item) => swept.submit(item)))

  // The two halves of the live-poll rule (hasLivePoll), for those who check many users at once.
  const pollHeldHere = (userId: number) => eventLog.polls.holdsPollOf(userId)
  const livePollSince = () => clock.now() - 2 * sweepMs

  return {
    /** For /metrics: the groups that recorded users as seen, and the users they carried. */
    stats: () => ({ batches: activeNow.stats.batches + swept.stats.batches, items: activeNow.stats.items + swept.stats.items }),

    /** The user is active now (a poll starts, a call is placed): seen, and online if they were not. */
    async seen(userId: number): Promise<void> {
      const now = clock.now()
      const last = recordedAt.get(userId)
      if (last !== undefined && now - last < sweepMs) return
      recordedAt.set(userId, now)
      await activeNow.submit([userId, now])
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
      const silent = await silentOnlineUsers(db, now - graceMs)
      // Their next poll must record them again at once, to turn them online.
      for (const userId of silent) recordedAt.delete(userId)
      for (let i = 0; i < silent.length; i += SEEN_PER_GROUP) await change(silent.slice(i, i + SEEN_PER_GROUP), false)
    },

    friends: (userId: number) => friendsPresence(db, userId),

    /**
     * Whether the user has a live poll: held in this process (pollHeldHere), or recorded by
     * any process within two sweeps (seen at or after livePollSince(): a held poll is
     * recorded at every sweep of its process).
     */
    async hasLivePoll(userId: number): Promise<boolean> {
      if (pollHeldHere(userId)) return true
      const seen = await lastSeenMs(db, userId)
      return seen !== null && seen >= livePollSince()
    },

    pollHeldHere,
    livePollSince,
  }
}

export type Presence = ReturnType<typeof createPresence>
