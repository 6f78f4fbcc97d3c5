// The services (the product's rules), built once from the infrastructure plugins. The
// background jobs (presence sweep, upload clean-up, call timeouts) run from ready to close.
import fp from 'fastify-plugin'
import { createAccounts } from '../services/accounts.js'
import { createContacts } from '../services/contacts.js'
import { createKeys } from '../services/keys.js'
import { createFiles } from '../services/files.js'
import { createCalls } from '../services/calls.js'
import { createMessages } from '../services/messages.js'
import { createPresence } from '../services/presence.js'
import { createProfiles } from '../services/profiles.js'
import { createRooms } from '../services/rooms.js'
import { createUpdates } from '../services/updates.js'
import { createVerification } from '../services/verification.js'
import { eventChannel } from '../data/events.js'
import type { Clock } from '../clock.js'
import type { ServiceDeps } from '../services/deps.js'
import type { FileStore } from '../storage/file-store.js'

function createServices(deps: ServiceDeps, fileStore: FileStore) {
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
    files: createFiles(deps, fileStore),
    calls: createCalls(deps, presence),
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
      sessions: app.sessionCache,
      clock,
      mailer: app.mailer,
      log: app.log,
      signToken: (claims) => app.jwt.sign(claims),
    }, app.fileStore)
    app.decorate('services', services)
    const stops: (() => void)[] = []
    app.addHook('onReady', async () => {
      stops.push(services.presence.startSweeping(), services.files.startCleaning(), services.calls.startSweeping())
    })
    app.addHook('onClose', async () => stops.forEach((stop) => stop()))
  },
  { name: 'services', dependencies: ['database', 'event-hub', 'auth', 'mailer', 'file-store'] },
)
