// The event log (src/event-log/) as `app.eventLog`. Held polls are answered in preClose,
// so that closing the server does not wait out their timeouts.
import fp from 'fastify-plugin'
import { createEventLog, type EventLog } from '../event-log/index.js'

declare module 'fastify' {
  interface FastifyInstance {
    eventLog: EventLog
  }
}

export default fp(
  async (app) => {
    const eventLog = createEventLog({
      db: app.db,
      hotDb: app.hotDb,
      config: app.config,
      clock: app.clock,
      log: app.log,
      noteFailure: (error) => app.dbHealth.noteFailure(error),
    })
    app.decorate('eventLog', eventLog)
    app.addHook('preClose', async () => eventLog.shutdown())
    app.addHook('onClose', () => eventLog.close())
  },
  { name: 'event-log', dependencies: ['config', 'database'] },
)
