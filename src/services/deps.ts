import type { Knex } from 'knex'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.js'
import type { Clock } from '../clock.js'
import type { EventLog } from '../event-log/index.js'
import type { Mailer } from '../plugins/mailer.js'
import type { SessionCache } from '../session-cache.js'

/** What every service is built from. */
export interface ServiceDeps {
  db: Knex
  config: Config
  /** The only way into users' logs (src/event-log/). */
  eventLog: EventLog
  /** Live sessions (revocations through any process reach it). */
  sessions: SessionCache
  clock: Clock
  mailer: Mailer
  log: FastifyBaseLogger
  /** A session token that expires (`exp`) at `expiresAtMs` on the app's clock, with its session. */
  signToken(claims: SessionClaims, expiresAtMs: number): string
}

/** The claims of a session token. */
export interface SessionClaims {
  uid: number
  sid: number
  /** Issue time, UNIX seconds on the app's clock (set when the token is signed). */
  iat?: number
  /** Expiry, UNIX seconds (set when the token is signed). */
  exp?: number
}
