// Public keys for end-to-end encryption: opaque to the server, fetched by friends, every
// change a `key_changed` event to them.
import { commandsOf } from './command.js'
import { Empty } from '../src/schemas/common.js'
import { DeleteKeyBody, GetKeysBody, GetKeysReply, PublishKeyBody } from '../src/schemas/keys.js'

const command = commandsOf('keys')

export const publishKey = command({
  name: 'publish_key',
  summary: 'Publish or replace one of my public keys',
  description: 'At most MAX_PUBLIC_KEYS (10) keys per user (409 `invalid_state` beyond). Friends get `key_changed` when it changed.',
  body: PublishKeyBody,
  reply: Empty,
  errors: [409],
  run: async ({ app, session }, body) => {
    await app.services.keys.publish(session.userId, { keyId: body.key_id, key: body.key, algorithm: body.algorithm ?? '' })
    return {}
  },
})

export const deleteKey = command({
  name: 'delete_key',
  summary: 'Withdraw one of my public keys',
  description: 'Friends get `key_changed` with `action: "deleted"`.',
  body: DeleteKeyBody,
  reply: Empty,
  errors: [404],
  run: async ({ app, session }, body) => {
    await app.services.keys.remove(session.userId, body.key_id)
    return {}
  },
})

export const getKeys = command({
  name: 'get_keys',
  summary: 'The public keys of a friend (or mine)',
  description: '403 `not_friends` for anyone else.',
  body: GetKeysBody,
  reply: GetKeysReply,
  errors: [403],
  run: async ({ app, session }, body) => ({ keys: await app.services.keys.list(session.userId, body.uid) }),
})
