// Profiles and the user directory. Other users only ever see the public profile; the
// e-mail address appears in `whoami` alone.
import { commandsOf } from './command.js'
import { ListUsersBody, ListUsersReply, NoFields, OwnProfileReply, UpdateProfileBody } from '../src/schemas/accounts.js'

const command = commandsOf('profiles')

export const whoami = command({
  name: 'whoami',
  summary: 'My own profile',
  body: NoFields,
  reply: OwnProfileReply,
  run: async ({ app, session }) => ({ user: await app.services.profiles.own(session.userId) }),
})

export const updateProfile = command({
  name: 'update_profile',
  summary: 'Change my display name or description',
  description: 'Fields left out stay as they are; an empty string clears one.',
  body: UpdateProfileBody,
  reply: OwnProfileReply,
  run: async ({ app, session }, body) => ({ user: await app.services.profiles.update(session.userId, body) }),
})

export const listUsers = command({
  name: 'list_users',
  summary: 'The user directory',
  description: 'Pages of public profiles by user id, optionally only those whose login or display name starts with `query`.',
  body: ListUsersBody,
  reply: ListUsersReply,
  run: ({ app }, body) => app.services.profiles.directory({ prefix: body.query, after: body.after, count: body.count ?? 50 }),
})
