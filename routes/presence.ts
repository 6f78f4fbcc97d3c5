// Presence: online while polling (and PRESENCE_GRACE_SECONDS after), as friends see it.
import { commandsOf } from './command.js'
import { GetPresenceReply } from '../src/schemas/presence.js'
import { NoFields } from '../src/schemas/accounts.js'

const command = commandsOf('presence')

export const getPresence = command({
  name: 'get_presence',
  summary: 'Presence of my friends',
  description: 'Changes also arrive as `presence` events (`online`, `last_seen`) through update_data.',
  body: NoFields,
  reply: GetPresenceReply,
  run: async ({ app, session }) => ({ presence: await app.services.presence.friends(session.userId) }),
})
