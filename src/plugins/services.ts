// The services (the product's rules), built once from the infrastructure plugins. The
// presence sweep runs from ready to close.
import fp from 'fastify-plugin'
import { createAccounts } from '../services/accounts.js'
import { createContacts } from '../services/contacts.js'
import { createKeys } from '../services/keys.js'
import { createMessages } from '../services/messages.js'
import { createPresence } from '../services/presence.js'
import { createProfiles } from '../services/profiles.js'
import { createRooms } from '../services/rooms.js'
import { createUpdates } from '../services/updates.js'
import { createVerification } from '../services/verification.js'
import { eventChannel } from '../data/events.js'
import type { Clock } from '../clock.js'
import type { ServiceDeps } from '../services/deps.js'

function createServices(deps: ServiceDeps) {
  const rooms = createRooms(deps)
  const verification = createVerification(deps)
  const presence = createPresence(deps)
  return {
    accounts: createAccounts(deps, verification),
    verification,
    profiles: createProfiles(deps),
    contacts: createContacts(deps),
    rooms,
    messages: createMessages(deps, rooms),
    presence,
    keys: createKeys(deps),
    updates: createUpdates(deps, presence),
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    services: ReturnType<typeof createServices>
  }
}

export default fp<{ clock: Clock }>(
  async (app, { clock }) => {
    const services = createServices({
      db: app.db,
      config: app.config,
      channel: eventChannel(app.config.databaseSchema),
      hub: app.hub,
      clock,
      mailer: app.mailer,
      log: app.log,
      signToken: (claims) => app.jwt.sign(claims),
    })
    app.decorate('services', services)
    let stopSweeping: (() => void) | undefined
    app.addHook('onReady', async () => {
      stopSweeping = services.presence.startSweeping()
    })
    app.addHook('onClose', async () => stopSweeping?.())
  },
  { name: 'services', dependencies: ['database', 'event-hub', 'auth', 'mailer'] },
)
