import type { Knex } from 'knex'
import type { Config } from '../config.js'
import type { EventHub } from '../event-hub.js'

/** What every service is built from. */
export interface ServiceDeps {
  db: Knex
  config: Config
  /** The NOTIFY channel of this database schema's event log. */
  channel: string
  hub: EventHub
  signToken(claims: SessionClaims): string
}

/** The claims of a session token. */
export interface SessionClaims {
  uid: number
  sid: number
}
