// The event log (src/event-log/) as `app.eventLog`, and its pool for the hot path's
// statements (direct sends, log reads) as `app.hotDb`: a connection for each statement it
// runs at once, every statement with parameters on its generic plan (src/database.ts),
// which is why nothing else should use it. Held polls are answered in preClose, so that
// closing the server does not wait out their timeouts.
import fp from 'fastify-plugin'
import type { Knex } from 'knex'
import { createKnex } from '../database.js'
import { HOT_PATH_STATEMENTS_IN_FLIGHT, createEventLog, type EventLog } from '../event-log/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    eventLog: EventLog
    hotDb: Knex
  }
}

export default fp(
  async (app) => {
    const { databaseUrl, databaseSchema } = app.config
    const hotDb = createKnex({ url: databaseUrl!, schema: databaseSchema, poolMax: HOT_PATH_STATEMENTS_IN_FLIGHT, genericPlans: true, logger: app.log })
    const eventLog = createEventLog({
      db: app.db,
      hotDb,
      config: app.config,
      clock: app.clock,
      log: app.log,
      noteFailure: (error) => app.dbHealth.noteFailure(error),
    })
    app.decorate('eventLog', eventLog)
    app.decorate('hotDb', hotDb)
    app.addHook('preClose', async () => eventLog.shutdown())
    app.addHook('onClose', async () => {
      await eventLog.close()
      await hotDb.destroy()
    })
  },
  { name: 'event-log', dependencies: ['config', 'database'] },
)
