import { commandsOf } from './command.js'
import { UpdateDataBody, UpdateDataReply } from '../src/schemas/updates.js'

const command = commandsOf('updates')

// update_data: the long-poll (guarantees in src/services/updates.ts).
export const updateData = command({
  name: 'update_data',
  summary: 'Long-poll for new messages and events',
  description:
    'Answers at once when anything is pending after the position, else holds the request until something arrives ' +
    'or `timeout` seconds pass (default 25, at most 60). With `cursor`: the entries after it; poll again with the ' +
    "reply's cursor to never miss or repeat one. Without `cursor`: the server keeps the position and moves it once " +
    'a reply was written out in full. At most POLL_BATCH_LIMIT (100) items per reply.',
  body: UpdateDataBody,
  reply: UpdateDataReply,
  logAs: 'held',
  run: async ({ app, session, request, reply }, body) => {
    const result = await app.services.updates.poll({
      userId: session.userId,
      sessionId: session.sessionId,
      cursor: body.cursor,
      lastTime: body.last_time ?? body.last_update,
      timeoutSeconds: body.timeout,
      // The reply's socket closing before we answered means the client went away; gone
      // already (while the request was being authenticated): hold nothing for it. A listener
      // rather than an AbortController: one poll per answered message, and they add up.
      onGone(listener) {
        if (request.raw.socket?.destroyed) {
          listener()
          return () => {}
        }
        reply.raw.once('close', listener)
        return () => reply.raw.removeListener('close', listener)
      },
      // The desktop client reads only what the protocol defined: no typing notices for it.
      typing: (request.routeOptions.config as { dialect?: string }).dialect !== 'wiki',
    })
    if (result.msg_array.length + result.events_array.length > 0) {
      // The cursor is the newest entry's position: microseconds since the epoch.
      app.metrics.deliveryLag.observe(Math.max(0, Date.now() / 1000 - result.cursor / 1e6))
    }
    if (body.cursor === undefined) {
      // Written out in full: only then does the server-kept position move.
      reply.raw.once('finish', () => {
        app.services.updates.acknowledge(session.userId, result.cursor).catch((err) => {
          if (!app.dbHealth.noteFailure(err)) reply.log.error({ err }, 'acknowledge failed')
        })
      })
    }
    return result
  },
})
