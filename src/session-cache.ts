// Live sessions, remembered per process so that an authenticated request usually costs
// no query (src/notified-cache.ts). A session leaves the cache when it is revoked here or
// when any process's revocation NOTIFY arrives, so a revoked session is never remembered
// as live. Lookups that miss together (a reconnect storm's first requests) share one
// query (src/batcher.ts).
import type { Knex } from 'knex'
import { createBatcher } from './batcher.js'
import type { Clock } from './clock.js'
import { isDatabaseUnavailable } from './database.js'
import { findLiveSessions } from './data/sessions.js'
import type { WakeUpListener } from './event-log/wake-ups.js'
import { NotifiedCache } from './notified-cache.js'

/** Bounds memory: beyond this many sessions the cache starts over. */
const MAX_ENTRIES = 200_000
/** Sessions looked up in one query, at most. */
const LOOKUPS_PER_QUERY = 500

interface LiveSession {
  userId: number
  expiresAtMs: number
}

export class SessionCache {
  private readonly live: NotifiedCache<LiveSession>
  private readonly lookups = createBatcher<number, LiveSession | undefined>(
    async (sessionIds) => {
      const rows = await findLiveSessions(this.db, sessionIds, this.clock.now())
      const found = new Map(rows.map((row) => [row.id, { userId: row.user_id, expiresAtMs: row.expires_at.getTime() }]))
      return sessionIds.map((sessionId) => found.get(sessionId))
    },
    { maxBatch: LOOKUPS_PER_QUERY, maxInFlight: 2, failsEveryItem: isDatabaseUnavailable },
  )

  constructor(
    private readonly db: Knex,
    listener: WakeUpListener,
    private readonly clock: Clock,
  ) {
    this.live = new NotifiedCache(listener, (wakeUp) => (wakeUp.kind === 'revoked' ? wakeUp.sessionIds : undefined), MAX_ENTRIES)
  }

  /** The session's user while it is live (not revoked, not expired), else undefined. */
  async userOf(sessionId: number): Promise<number | undefined> {
    const session = await this.live.get(sessionId, () => this.lookups.submit(sessionId), (cached) => cached.expiresAtMs > this.clock.now())
    return session && session.expiresAtMs > this.clock.now() ? session.userId : undefined
  }
}
