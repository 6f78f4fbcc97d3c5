// Web Push (src/services/push.ts): a browser subscribes with the server's VAPID key and
// gets a push for each direct message, mention or call that finds its user without a live
// poll, while the session that subscribed it lives. Subscribing is idempotent (the same
// endpoint again updates it); unsubscribing an endpoint that is not yours, or no longer
// exists, answers the same `{}`.
import { commandsOf } from './command.js'
import { Empty } from '../src/schemas/common.js'
import { NoFields } from '../src/schemas/accounts.js'
import { GetPushKeyReply, PUSH_TEXT_MAX_CHARS, PushSubscribeBody, PushSubscribeReply, PushUnsubscribeBody } from '../src/schemas/push.js'

const command = commandsOf('push')

export const getPushKey = command({
  name: 'get_push_key',
  summary: "The server's VAPID public key",
  description: 'The `applicationServerKey` for `pushManager.subscribe()`; the same on every process of the server, and kept across restarts.',
  body: NoFields,
  reply: GetPushKeyReply,
  run: async ({ app }) => ({ public_key: app.services.push.publicKey() }),
})

export const pushSubscribe = command({
  name: 'push_subscribe',
  summary: 'Take pushes in this browser while not polling',
  description:
    'Send `PushSubscription.toJSON()`: `endpoint` and `keys`. A direct message, a mention in a room, or a call to you while ' +
    'you have no live poll then comes as a push, encrypted for this browser: JSON `{type: "message" | "mention" | "call", ' +
    `from_uid, from_login, room_id?, room_name?, msg_id?, call_id?, text?}\`, with \`text\` (at most ${PUSH_TEXT_MAX_CHARS} characters) only if ` +
    '`include_text` is true. The subscription belongs to the session that makes it: pushed only while that session lives, ' +
    'deleted when it is revoked (logout, logout_session, logout_all, change_password). Subscribing the same endpoint again ' +
    'updates it and moves it to the calling session (another user\'s endpoint moves to you). At most ' +
    'MAX_PUSH_SUBSCRIPTIONS_PER_USER (10) per user, those of sessions that ended not counted: 409 `invalid_state` beyond. ' +
    '400 when the endpoint is not a URL with a host (port, if any, 1 to 65535) or a key is not what a browser gives.',
  body: PushSubscribeBody,
  reply: PushSubscribeReply,
  errors: [409],
  run: async ({ app, session }, body) => {
    await app.services.push.subscribe(session.userId, session.sessionId, body)
    return { subscribed: true as const }
  },
})

export const pushUnsubscribe = command({
  name: 'push_unsubscribe',
  summary: 'No more pushes to this browser',
  description: 'Idempotent: an endpoint you have not subscribed (or no longer) answers `{}` too.',
  body: PushUnsubscribeBody,
  reply: Empty,
  run: async ({ app, session }, body) => {
    await app.services.push.unsubscribe(session.userId, body.endpoint)
    return {}
  },
})
