// The database: a knex pool, decorated as `app.db`, and a small one for the hot path's
// named statements (direct sends, log reads) on their generic plans, `app.hotDb`; both
// destroyed on close. And the database's health (src/database-health.ts) as `app.dbHealth`,
// which logs an outage once.
import fp from 'fastify-plugin'
import type { Knex } from 'knex'
import { createKnex } from '../database.js'
import { createDatabaseHealth, type DatabaseHealth } from '../database-health.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Knex
    hotDb: Knex
    dbHealth: DatabaseHealth
  }
}

const PROBE_TIMEOUT_MS = 2000
/** The hot path's statements run one group send and one group read at a time (src/event-log/). */
const HOT_PATH_CONNECTIONS = 2

export default fp(
  async (app) => {
    const { databaseUrl, databaseSchema } = app.config
    if (!databaseUrl) throw new Error('databaseUrl is required: the launcher resolves it (embedded database or DATABASE_URL)')
    const db = createKnex({ url: databaseUrl, schema: databaseSchema, logger: app.log })
    const hotDb = createKnex({ url: databaseUrl, schema: databaseSchema, poolMax: HOT_PATH_CONNECTIONS, genericPlans: true, logger: app.log })
    const health = createDatabaseHealth({ probe: () => db.raw('SELECT 1').timeout(PROBE_TIMEOUT_MS, { cancel: true }), log: app.log })
    app.decorate('db', db)
    app.decorate('hotDb', hotDb)
    app.decorate('dbHealth', health)
    app.addHook('onClose', async () => {
      health.close()
      await Promise.all([db.destroy(), hotDb.destroy()])
    })
  },
  { name: 'database', dependencies: ['config'] },
)
