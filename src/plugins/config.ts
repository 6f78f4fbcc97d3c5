// The validated configuration as `app.config`, and the clock the product's rules read as
// `app.clock` (tests pass a ManualClock).
import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import type { Clock } from '../clock.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    clock: Clock
  }
}

export default fp<{ config: Config; clock: Clock }>(
  async (app, { config, clock }) => {
    app.decorate('config', config)
    app.decorate('clock', clock)
  },
  { name: 'config' },
)
