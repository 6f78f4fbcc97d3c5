// Live sessions, remembered per process so that an authenticated request usually costs
// no query. A session leaves the cache when it is revoked here or when any process's
// revocation NOTIFY arrives (src/event-log/wake-ups.ts), and the whole cache is dropped
// when the LISTEN connection is lost or (re)made; while it is down, every check goes to
// the database. A lookup that raced a revocation or a reconnect is not cached (the
// generation moved), so a revoked session is never remembered as live. Lookups that miss
// together (a reconnect storm's first requests) share one query (src/batcher.ts).
import type { Knex } from 'knex'
import { createBatcher } from './batcher.js'
import type { Clock } from './clock.js'
import { isDatabaseUnavailable } from './database.js'
import { findLiveSessions } from './data/sessions.js'
import type { WakeUpListener } from './event-log/wake-ups.js'

/** Bounds memory: beyond this many sessions the cache starts over. */
const MAX_ENTRIES = 200_000
/** Sessions looked up in one query, at most. */
const LOOKUPS_PER_QUERY = 500

type LiveSession = { user_id: number; expires_at: Date } | undefined

export class SessionCache {
  private readonly live = new Map<number, { userId: number; expiresAtMs: number }>()
  private generation = 0
  private readonly lookups = createBatcher<number, LiveSession>(
    async (sessionIds) => {
      const found = new Map((await findLiveSessions(this.db, sessionIds, this.clock.now())).map((row) => [row.id, row]))
      return sessionIds.map((sessionId) => found.get(sessionId))
    },
    { maxBatch: LOOKUPS_PER_QUERY, maxInFlight: 2, failsEveryItem: isDatabaseUnavailable },
  )

  constructor(
    private readonly db: Knex,
    private readonly listener: WakeUpListener,
    private readonly clock: Clock,
  ) {
    listener.subscribe((wakeUp) => {
      if (wakeUp.kind === 'revoked') {
        this.generation++
        for (const sessionId of wakeUp.sessionIds) this.live.delete(sessionId)
      } else if (wakeUp.kind === 'missed') {
        this.generation++
        this.live.clear()
      }
    })
  }

  /** The session's user while it is live (not revoked, not expired), else undefined. */
  async userOf(sessionId: number): Promise<number | undefined> {
    const cached = this.live.get(sessionId)
    if (cached && cached.expiresAtMs > this.clock.now()) return cached.userId
    // Cache only what was read entirely while revocations were being heard.
    const listening = this.listener.listening
    if (!listening) this.listener.listen().catch(() => {})
    const generation = this.generation
    const session = await this.lookups.submit(sessionId)
    if (!session) return undefined
    if (listening && this.listener.listening && generation === this.generation) {
      if (this.live.size >= MAX_ENTRIES) this.live.clear()
      this.live.set(sessionId, { userId: session.user_id, expiresAtMs: session.expires_at.getTime() })
    }
    return session.user_id
  }
}
