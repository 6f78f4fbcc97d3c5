// All HTTP routes: each command as POST /<command> (aliases hidden from the OpenAPI
// document), the wiki dialect on POST /, the REST look-up GET /get_user and the files.
import type { FastifyInstance } from 'fastify'
import type { Command } from './command.js'
import * as accounts from './accounts.js'
import * as sessions from './sessions.js'
import * as profiles from './profiles.js'
import * as keys from './keys.js'
import * as presence from './presence.js'
import * as contacts from './contacts.js'
import * as messages from './messages.js'
import * as rooms from './rooms.js'
import * as updates from './updates.js'
import * as calls from './calls.js'
import * as push from './push.js'
import { getUser } from './users.js'
import { fileRoutes } from './files.js'
import { wikiRoute } from './wiki.js'
import { webClient } from './web.js'

export const COMMANDS: Command[] = [accounts, sessions, contacts, messages, updates, rooms, profiles, presence, keys, calls, push].flatMap((area) => Object.values(area))

export default async function routes(app: FastifyInstance) {
  for (const command of COMMANDS) command.register(app)
  app.register(wikiRoute, { commands: COMMANDS })
  app.register(getUser)
  app.register(fileRoutes)
  app.register(webClient)
}
