import type { Knex } from 'knex'
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.js'
import type { Clock } from '../clock.js'
import type { EventHub } from '../event-hub.js'
import type { Mailer } from '../plugins/mailer.js'
import type { SessionCache } from '../session-cache.js'

/** What every service is built from. */
export interface ServiceDeps {
  db: Knex
  config: Config
  /** The NOTIFY channel of this database schema's event log. */
  channel: string
  hub: EventHub
  /** Live sessions (revocations through any process reach it). */
  sessions: SessionCache
  clock: Clock
  mailer: Mailer
  log: FastifyBaseLogger
  signToken(claims: SessionClaims): string
}

/** The claims of a session token. */
export interface SessionClaims {
  uid: number
  sid: number
}
