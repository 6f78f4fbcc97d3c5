// The database: a knex pool, decorated as `app.db`, destroyed on close; and its health
// (src/database-health.ts) as `app.dbHealth`, which logs an outage once. (The event log
// has a small pool of its own: src/plugins/event-log.ts.)
import fp from 'fastify-plugin'
import type { Knex } from 'knex'
import { createKnex } from '../database.js'
import { createDatabaseHealth, type DatabaseHealth } from '../database-health.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Knex
    dbHealth: DatabaseHealth
  }
}

const PROBE_TIMEOUT_MS = 2000

export default fp(
  async (app) => {
    const { databaseUrl, databaseSchema } = app.config
    if (!databaseUrl) throw new Error('databaseUrl is required: the launcher resolves it (embedded database or DATABASE_URL)')
    const db = createKnex({ url: databaseUrl, schema: databaseSchema, logger: app.log })
    const health = createDatabaseHealth({ probe: () => db.raw('SELECT 1').timeout(PROBE_TIMEOUT_MS, { cancel: true }), log: app.log })
    app.decorate('db', db)
    app.decorate('dbHealth', health)
    app.addHook('onClose', async () => {
      health.close()
      await db.destroy()
    })
  },
  { name: 'database', dependencies: ['config'] },
)
