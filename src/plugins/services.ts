// The services (the product's rules), built once from the infrastructure plugins. The
// background jobs (presence sweep, upload clean-up, call timeouts) run from ready to close.
import fp from 'fastify-plugin'
import { createAccounts } from '../services/accounts.js'
import { createBlocks } from '../services/blocks.js'
import { createContacts } from '../services/contacts.js'
import { createKeys } from '../services/keys.js'
import { CLEANUP_INTERVAL_MS, createFiles } from '../services/files.js'
import { createCalls } from '../services/calls.js'
import { createMessages } from '../services/messages.js'
import { createPresence } from '../services/presence.js'
import { createPush } from '../services/push.js'
import { createProfiles } from '../services/profiles.js'
import { createRooms } from '../services/rooms.js'
import { createUpdates } from '../services/updates.js'
import { createVerification } from '../services/verification.js'
import { startPeriodic, type PeriodicJob } from '../periodic.js'
import type { ServiceDeps } from '../services/deps.js'
import type { FileStore } from '../storage/file-store.js'

function createServices(deps: ServiceDeps, fileStore: FileStore) {
  const rooms = createRooms(deps)
  const verification = createVerification(deps)
  const presence = createPresence(deps)
  const push = createPush(deps, presence)
  return {
    accounts: createAccounts(deps, verification),
    verification,
    profiles: createProfiles(deps),
    contacts: createContacts(deps),
    blocks: createBlocks(deps),
    rooms,
    messages: createMessages(deps, rooms, push),
    presence,
    push,
    keys: createKeys(deps),
    files: createFiles(deps, fileStore),
    calls: createCalls(deps, presence, push),
    updates: createUpdates(deps, presence),
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    services: ReturnType<typeof createServices>
  }
}

export default fp(
  async (app) => {
    const { clock } = app
    const services = createServices({
      db: app.db,
      config: app.config,
      eventLog: app.eventLog,
      sessions: app.sessionCache,
      clock,
      mailer: app.mailer,
      log: app.log,
      // iat and exp on the app's clock (the library would take iat from the system's).
      signToken: (claims, expiresAtMs) => app.jwt.sign({ ...claims, iat: Math.floor(clock.now() / 1000), exp: Math.floor(expiresAtMs / 1000) }),
    }, app.fileStore)
    app.decorate('services', services)
    const jobs: PeriodicJob[] = [
      { name: 'presence sweep', everyMs: app.config.presenceSweepSeconds * 1000, run: () => services.presence.sweep() },
      { name: 'call sweep', everyMs: app.config.callSweepMs, run: () => services.calls.sweep() },
      { name: 'upload clean-up', everyMs: CLEANUP_INTERVAL_MS, run: () => services.files.cleanUp() },
    ]
    // A job failing because the database is away is part of the outage, logged once.
    const onFailure = (job: PeriodicJob, error: unknown) => {
      if (!app.dbHealth.noteFailure(error)) app.log.warn({ err: error }, `${job.name} failed`)
    }
    const stops: (() => void)[] = []
    app.addHook('onReady', async () => {
      stops.push(...jobs.map((job) => startPeriodic(clock, job, onFailure)))
    })
    app.addHook('onClose', async () => {
      stops.forEach((stop) => stop())
      services.push.close()
    })
  },
  { name: 'services', dependencies: ['database', 'event-log', 'auth', 'mailer', 'file-store'] },
)
