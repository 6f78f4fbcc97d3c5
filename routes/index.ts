// All HTTP routes: each command as POST /<command> (and its aliases, hidden from the
// OpenAPI document), the wiki dialect on POST /, and the REST look-up GET /get_user.
import type { FastifyInstance } from 'fastify'
import { commandNames, errorResponses, runCommand, type Command } from './command.js'
import * as accounts from './accounts.js'
import * as profiles from './profiles.js'
import * as keys from './keys.js'
import { getPresence } from './presence.js'
import { addContactReply, addContactRequest, delContact } from './contacts.js'
import { broadcast, clearHistory, deleteMsg, editMsg, getDialogs, getHistory, markRead, searchMsgs, sendMsg } from './messages.js'
import * as rooms from './rooms.js'
import { updateData } from './updates.js'
import { getUser } from './users.js'
import { fileRoutes } from './files.js'
import * as calls from './calls.js'
import { wikiRoute } from './wiki.js'

export const COMMANDS: Command[] = [
  accounts.registration,
  accounts.authorization,
  accounts.logout,
  accounts.getData,
  addContactRequest,
  addContactReply,
  delContact,
  sendMsg,
  updateData,
  editMsg,
  deleteMsg,
  clearHistory,
  getHistory,
  searchMsgs,
  markRead,
  getDialogs,
  rooms.createRoom,
  rooms.deleteRoom,
  rooms.renameRoom,
  rooms.describeRoom,
  rooms.joinRoom,
  rooms.inviteToRoom,
  rooms.leaveRoom,
  rooms.myRooms,
  rooms.searchRooms,
  rooms.roomMembers,
  rooms.memberInfo,
  rooms.setRole,
  rooms.banMember,
  rooms.unbanMember,
  rooms.kickMember,
  accounts.verify,
  accounts.resendCode,
  accounts.renewToken,
  accounts.listSessions,
  accounts.logoutSession,
  accounts.logoutAll,
  accounts.changePassword,
  profiles.whoami,
  profiles.updateProfile,
  profiles.listUsers,
  getPresence,
  keys.publishKey,
  keys.deleteKey,
  keys.getKeys,
  broadcast,
  calls.call,
  calls.acceptCall,
  calls.rejectCall,
  calls.hangUp,
  calls.callSignal,
]

export default async function routes(app: FastifyInstance) {
  for (const command of COMMANDS) {
    for (const name of commandNames(command)) {
      app.post(
        `/${name}`,
        {
          schema: {
            hide: name !== command.name,
            operationId: command.name,
            summary: command.summary,
            description: command.description,
            tags: command.tags,
            body: command.body,
            security: command.authenticated ? [{ bearer: [] }] : [],
            response: {
              200: command.reply,
              ...errorResponses([400, ...(command.authenticated ? [401] : []), ...(command.errors ?? []), 413, 429, 503]),
            },
          },
        },
        (request, reply) => runCommand(command, request, reply, request.body as Record<string, unknown>),
      )
    }
  }
  app.register(wikiRoute, { commands: COMMANDS })
  app.register(getUser)
  app.register(fileRoutes)
}
