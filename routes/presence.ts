// Presence: online while polling (and PRESENCE_GRACE_SECONDS after), as friends see it.
import { defineCommand } from './command.js'
import { GetPresenceBody, GetPresenceReply } from '../src/schemas/presence.js'

export const getPresence = defineCommand({
  name: 'get_presence',
  summary: 'Presence of my friends',
  description: 'Changes also arrive as `presence` events (`online`, `last_seen`) through update_data.',
  tags: ['presence'],
  authenticated: true,
  body: GetPresenceBody,
  reply: GetPresenceReply,
  run: async ({ app, session }) => ({ presence: await app.services.presence.friends(session.userId) }),
})
