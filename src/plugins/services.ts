// The services (the product's rules), built once from the infrastructure plugins.
import fp from 'fastify-plugin'
import { createAccounts } from '../services/accounts.js'
import { createContacts } from '../services/contacts.js'
import { createMessages } from '../services/messages.js'
import { createUpdates } from '../services/updates.js'
import { createRooms } from '../services/rooms.js'
import { eventChannel } from '../data/events.js'
import type { ServiceDeps } from '../services/deps.js'

function createServices(deps: ServiceDeps) {
  const rooms = createRooms(deps)
  return {
    accounts: createAccounts(deps),
    contacts: createContacts(deps),
    rooms,
    messages: createMessages(deps, rooms),
    updates: createUpdates(deps),
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    services: ReturnType<typeof createServices>
  }
}

export default fp(
  async (app) => {
    app.decorate(
      'services',
      createServices({
        db: app.db,
        config: app.config,
        channel: eventChannel(app.config.databaseSchema),
        hub: app.hub,
        signToken: (claims) => app.jwt.sign(claims),
      }),
    )
  },
  { name: 'services', dependencies: ['database', 'event-hub', 'auth'] },
)
