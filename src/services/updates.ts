// update_data: the long-poll over a user's event log (PROTOCOL A.6).
//
// Guarantees: with a cursor, the reply holds the entries after it, in log order, at most
// POLL_BATCH_LIMIT of them; polling with each reply's cursor sees every entry exactly once
// (see src/data/events.ts for why positions never go back). Without a cursor the server
// keeps the position per user and moves it only once a reply was written out in full.
// A poll subscribes to wake-ups before it reads, so a commit between read and wait is
// never missed; the wait is capped (POLL_MAX_SECONDS) and ends early on shutdown, on
// logout (401), when the same session polls again, or when the client goes away.
// A poll that may wait, whose cursor is where this process last saw the log end, waits
// without reading first (src/log-tails.ts). The session is checked again once the poll is subscribed (a logout
// racing the subscription finds the waiter, or is seen by this check) and before any
// entries are handed out (a logout whose NOTIFY was lost while LISTEN reconnected).
import { advanceAckedPosition, getAckedPosition } from '../data/poll-positions.js'
import { readLog, type LogEntry } from '../data/events.js'
import { LogTails } from '../log-tails.js'
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
  /** Aborted when the client goes away. */
  signal: AbortSignal
}

export function createUpdates({ db, config, hub, sessions }: ServiceDeps, presence: Presence) {
  // Position updates written after a reply went out but not yet committed, per user: the
  // desktop client polls again at once on the same connection, and that poll must see them.
  const pendingAcks = new Map<number, Promise<void>>()
  const tails = new LogTails(hub)
  /** Log reads made, and reads a poll did without (it waited first): for /metrics. */
  const logReads = { made: 0, skipped: 0 }

  async function assertSessionLive(request: PollRequest): Promise<void> {
    if ((await sessions.userOf(request.sessionId)) !== request.userId) throw new Unauthorized('Session logged out')
  }

  /** Reads the log after `from`, and remembers where it ended when the read reached the end. */
  async function readToEnd(userId: number, from: number): Promise<LogEntry[]> {
    logReads.made++
    const token = tails.readStarting(userId)
    const entries = await readLog(db, userId, from, config.pollBatchLimit)
    if (entries.length < config.pollBatchLimit) tails.readEnded(userId, token, entries.length > 0 ? entries[entries.length - 1].pos : from)
    return entries
  }

  async function serverKeptPosition(userId: number): Promise<number> {
    await pendingAcks.get(userId)
    return getAckedPosition(db, userId)
  }

  function render(entries: LogEntry[]) {
    const msg_array = []
    const events_array = []
    for (const entry of entries) {
      if (entry.type === 'message') {
        // A message deleted since: its entry still moves the cursor, but is not shown.
        if (entry.message_id === null || entry.deleted) continue
        msg_array.push({
          msg_id: entry.message_id,
          sender_uid: entry.actor_id,
          sender_login: entry.actor_login,
          time: entry.message_time ?? Math.floor(entry.pos / 1e6),
          text: entry.text ?? '',
          kind: entry.kind ?? 'text',
          ...(entry.room_id !== null ? { room_id: entry.room_id } : {}),
          ...(entry.edited_at !== null ? { edited_at: entry.edited_at } : {}),
          ...(entry.ciphertext !== null ? { ciphertext: entry.ciphertext } : {}),
          ...(entry.file !== null ? { file: entry.file } : {}),
        })
      } else {
        events_array.push({
          ...entry.payload,
          eid: entry.id,
          type: entry.type,
          ruid: entry.actor_id,
          text: entry.actor_login,
          time: Math.floor(entry.pos / 1e6),
        })
      }
    }
    return { msg_array, events_array }
  }

  return {
    logReads: logReads as Readonly<typeof logReads>,

    async poll(request: PollRequest) {
      const holdMs = 1000 * Math.min(request.timeoutSeconds ?? config.pollDefaultSeconds, config.pollMaxSeconds)
      const deadline = Date.now() + holdMs
      const waiter = await hub.subscribe(request.userId, request.sessionId)
      const onGone = () => waiter.wake('gone')
      request.signal.addEventListener('abort', onGone)
      if (request.signal.aborted) onGone()
      try {
        await assertSessionLive(request)
        await presence.seen(request.userId)
        let from = request.cursor ?? (await serverKeptPosition(request.userId))
        if (request.lastTime) {
          // Never past now: a client clock in the future must not skip what is still to come.
          const floorUs = Math.min(Math.floor(request.lastTime), Math.floor(Date.now() / 1000)) * 1e6 - 1
          from = Math.max(from, floorUs)
        }
        let entries: LogEntry[] = []
        // A poll that may wait, with nothing after its cursor as far as this process knows
        // (src/log-tails.ts), waits first. One that may not (timeout 0) always reads: it may
        // come right after a commit whose wake-up is still on its way.
        let mayHaveEntries = holdMs === 0 || !tails.nothingAfter(request.userId, from)
        if (!mayHaveEntries) logReads.skipped++
        for (;;) {
          if (mayHaveEntries) entries = await readToEnd(request.userId, from)
          mayHaveEntries = true
          const remaining = deadline - Date.now()
          if (entries.length > 0 || remaining <= 0) break
          const reason = await waiter.wait(remaining)
          if (reason === 'revoked') throw new Unauthorized('Session logged out')
          if (reason !== 'event') break
        }
        if (entries.length > 0) await assertSessionLive(request)
        const cursor = entries.length > 0 ? entries[entries.length - 1].pos : from
        return { server_time: Math.floor(Date.now() / 1000), cursor, ...render(entries) }
      } finally {
        request.signal.removeEventListener('abort', onGone)
        waiter.close()
        presence.pollEnded(request.userId)
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
