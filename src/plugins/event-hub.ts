// The event hub (src/event-hub.ts) as `app.hub`. Held polls are answered in preClose, so
// that closing the server does not wait out their timeouts.
import fp from 'fastify-plugin'
import { EventHub } from '../event-hub.js'
import { eventChannel } from '../data/events.js'

declare module 'fastify' {
  interface FastifyInstance {
    hub: EventHub
  }
}

export default fp(
  async (app) => {
    const hub = new EventHub({
      connectionString: app.config.databaseUrl!,
      channel: eventChannel(app.config.databaseSchema),
      maxWaitersPerUser: app.config.maxHeldPollsPerUser,
      log: app.log,
      noteFailure: (error) => app.dbHealth.noteFailure(error),
    })
    app.decorate('hub', hub)
    app.addHook('preClose', async () => hub.wakeAllForShutdown())
    app.addHook('onClose', () => hub.close())
  },
  { name: 'event-hub', dependencies: ['config', 'database'] },
)
