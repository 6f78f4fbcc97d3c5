import { Type } from 'typebox'
import { Fields, Id, UnixSeconds } from './common.js'

/** Key limits; the number of keys per user is MAX_PUBLIC_KEYS. */
export const KEY_MAX_CHARS = 8192

const KeyId = Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.:-]+$', description: 'Your name for the key (e.g. a device id).' })

export const PublishKeyBody = Fields(
  {
    key_id: KeyId,
    key: Type.String({ minLength: 1, maxLength: KEY_MAX_CHARS, description: `The public key, opaque to the server (e.g. base64), at most ${KEY_MAX_CHARS} characters.` }),
    algorithm: Type.Optional(Type.String({ maxLength: 64, description: 'Free text for clients, e.g. `x25519`.' })),
  },
  { examples: [{ key_id: 'laptop', key: 'hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=', algorithm: 'x25519' }] },
)
export const DeleteKeyBody = Fields({ key_id: KeyId }, { examples: [{ key_id: 'laptop' }] })
export const GetKeysBody = Fields({ uid: Id('Yourself or a friend.') }, { examples: [{ uid: 2 }] })
export const PublicKey = Type.Object(
  {
    key_id: Type.String(),
    algorithm: Type.String(),
    key: Type.String(),
    time: UnixSeconds('When it was published or last changed.'),
  },
  { $id: 'PublicKey', description: 'A public key, opaque to the server.' },
)
export const GetKeysReply = Type.Object(
  { keys: Type.Array(PublicKey, { description: 'By key_id.' }) },
  { examples: [{ keys: [{ key_id: 'phone', algorithm: 'x25519', key: 'Hf7n5Xv0pZ1tq0m9G0R3cJ8kqv6fY2Lr0b5tWm1nS2A=', time: 1796283290 }] }] },
)
