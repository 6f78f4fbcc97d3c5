// update_data: the long-poll over a user's event log (PROTOCOL A.6).
//
// Guarantees: with a cursor, the reply holds the entries after it, in log order, at most
// POLL_BATCH_LIMIT of them; polling with each reply's cursor sees every entry exactly once
// (see src/data/events.ts for why positions never go back). Without a cursor the server
// keeps the position per user and moves it only once a reply was written out in full.
// A poll subscribes to wake-ups before it reads, so a commit between read and wait is
// never missed; the wait is capped (POLL_MAX_SECONDS) and ends early on shutdown, on
// logout (401), when the same session polls again, or when the client goes away; a poll
// whose client went away before it started is not a sign of life (presence).
// A poll that may wait, whose cursor is where this process last saw the log end, waits
// before its first read; the polls one commit wakes read together (src/event-log/read.ts).
// The session is checked again once the poll is subscribed (a logout racing the
// subscription finds the waiter, or is seen by this check) and before any entries are
// handed out (a logout whose NOTIFY was lost while LISTEN reconnected).
import { advanceAckedPosition, getAckedPosition } from '../data/poll-positions.js'
import { render, type LogEntry, type Waiter } from '../event-log/index.js'
import { Unauthorized } from '../errors.js'
import type { ServiceDeps } from './deps.js'
import type { Presence } from './presence.js'

export interface PollRequest {
  userId: number
  sessionId: number
  /** Absent: the server-kept position is used. */
  cursor?: number
  /** Skip entries older than this UNIX second. */
  lastTime?: number
  timeoutSeconds?: number
  /** Calls `listener` when the client goes away (at once if it has); returns what stops listening. */
  onGone(listener: () => void): () => void
  /** The answer may carry typing notices (the wiki dialect's may not). */
  typing?: boolean
}

export function createUpdates({ db, config, eventLog, sessions, clock }: ServiceDeps, presence: Presence) {
  // Position updates written after a reply went out but not yet committed, per user: the
  // desktop client polls again at once on the same connection, and that poll must see them.
  const pendingAcks = new Map<number, Promise<void>>()
  /** Polls that waited without a first read: for /metrics. */
  let skippedReads = 0

  async function assertSessionLive(request: PollRequest): Promise<void> {
    if ((await sessions.userOf(request.sessionId)) !== request.userId) throw new Unauthorized('Session logged out')
  }

  /** A poll's answer: the entries, rendered, and the cursor after them. */
  const answer = (cursor: number, entries: LogEntry[]) => ({ server_time: Math.floor(clock.now() / 1000), cursor, ...render(entries) })

  async function serverKeptPosition(userId: number): Promise<number> {
    await pendingAcks.get(userId)
    return getAckedPosition(db, userId)
  }

  return {
    /** Log-read statements and the reads they carried, and reads skipped. */
    skippedReads: () => skippedReads,

    async poll(request: PollRequest) {
      const holdMs = 1000 * Math.min(request.timeoutSeconds ?? config.pollDefaultSeconds, config.pollMaxSeconds)
      const deadline = clock.now() + holdMs
      let gone = false
      let waiter: Waiter | undefined
      const stopWatching = request.onGone(() => {
        gone = true
        waiter?.wake('gone')
      })
      let started = false
      // A client gone before its poll starts (it left while it was authenticated) was never
      // there: its poll ends no other poll of the user, turns nobody online (now or at the
      // next sweep) and reads nothing. Its answer goes nowhere.
      try {
        if (gone) return answer(request.cursor ?? 0, [])
        waiter = await eventLog.subscribe(request.userId, request.sessionId, request.typing ?? false)
        await assertSessionLive(request)
        if (gone) return answer(request.cursor ?? 0, [])
        started = true
        await presence.seen(request.userId)
        let from = request.cursor ?? (await serverKeptPosition(request.userId))
        if (request.lastTime) {
          // Never past now: a client clock in the future must not skip what is still to come.
          const floorUs = Math.min(Math.floor(request.lastTime), Math.floor(clock.now() / 1000)) * 1e6 - 1
          from = Math.max(from, floorUs)
        }
        // A poll that may wait, with nothing after its cursor as far as this process knows
        // (the log tails of src/event-log/read.ts), waits before its first read; however the wait ends, it reads
        // before it answers (so a wake-up still on its way, or lost with a LISTEN connection
        // that died silently, costs latency, never an entry). A poll that may not wait
        // (timeout 0) reads at once.
        const waitFirst = holdMs > 0 && eventLog.nothingAfter(request.userId, from)
        if (waitFirst) skippedReads++
        let entries = waitFirst ? [] : await eventLog.read(request.userId, from)
        let read = !waitFirst
        for (;;) {
          const remaining = deadline - clock.now()
          if (entries.length > 0 || remaining <= 0) break
          const wake = await waiter.wait(remaining, from)
          if (wake.reason === 'revoked') throw new Unauthorized('Session logged out')
          if (wake.reason !== 'event' && wake.reason !== 'entries') break
          // Entries this process appended are taken as they are when they are exactly what
          // follows the cursor (src/event-log/index.ts); else the poll reads.
          entries = (wake.reason === 'entries' && eventLog.entriesAfter(from, wake.appended)) || (await eventLog.read(request.userId, from))
          read = true
        }
        if (!read) entries = await eventLog.read(request.userId, from)
        if (entries.length > 0) await assertSessionLive(request)
        const cursor = entries.length > 0 ? entries[entries.length - 1].pos : from
        // Typing notices ride beside the entries: never stored, they do not move the cursor.
        const typing = waiter.takeTyping()
        return { ...answer(cursor, entries), ...(typing.length > 0 ? { typing } : {}) }
      } finally {
        stopWatching()
        waiter?.close()
        if (started) presence.pollEnded(request.userId)
      }
    },

    /** Moves the server-kept position of a cursorless client (after its reply was written). */
    acknowledge(userId: number, cursor: number): Promise<void> {
      const previous = pendingAcks.get(userId) ?? Promise.resolve()
      const ack = previous.then(() => advanceAckedPosition(db, userId, cursor))
      const settled = ack.catch(() => {}).finally(() => {
        if (pendingAcks.get(userId) === settled) pendingAcks.delete(userId)
      })
      pendingAcks.set(userId, settled)
      return ack
    },
  }
}

export type Updates = ReturnType<typeof createUpdates>
