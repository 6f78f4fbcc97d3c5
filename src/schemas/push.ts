import { Type } from 'typebox'
import { Fields, Id, Login } from './common.js'

/** Longest push endpoint, in characters (push services' URLs are a few hundred). */
export const PUSH_ENDPOINT_MAX_CHARS = 1024
/** A message's text in a push is cut to this many characters (the last one then `…`). */
export const PUSH_TEXT_MAX_CHARS = 200

// The examples: bob's browser, subscribed through the Firefox push service.
const ENDPOINT = 'https://updates.push.services.mozilla.com/wpush/v2/gAAAAABnR3mK0Xq'

const Endpoint = Type.String({
  minLength: 1,
  maxLength: PUSH_ENDPOINT_MAX_CHARS,
  pattern: '^https?://[\\x21-\\x7e]+$',
  description: `The push service's URL for this browser (PushSubscription.endpoint): https: (or http:), printable ASCII, at most ${PUSH_ENDPOINT_MAX_CHARS} characters; push_subscribe also needs it to parse as a URL with a host (port, if any, 1 to 65535).`,
})

/** Base64url of `bytes` bytes, without padding (as PushSubscription.toJSON() gives it) or with. */
const Base64Url = (bytes: number, description: string) => {
  const chars = Math.ceil((bytes * 4) / 3)
  const padding = (4 - (chars % 4)) % 4
  return Type.String({ pattern: `^[A-Za-z0-9_-]{${chars}}(={${padding}})?$`, description: `${description} Base64url of ${bytes} bytes.` })
}

export const GetPushKeyReply = Type.Object(
  {
    public_key: Type.String({
      description: "The server's VAPID public key (RFC 8292), base64url: the `applicationServerKey` of `pushManager.subscribe()`.",
    }),
  },
  { examples: [{ public_key: 'BHoYEreN0tBCQQ0U3OmaqTlfpUOwdfBUHjxmVKxQbkLVQBd13ppk-fIxVPoWcNVIr8QZA6XAKFoo9IlEg0VpWKo' }] },
)

export const PushSubscribeBody = Fields(
  {
    endpoint: Endpoint,
    keys: Type.Object(
      {
        p256dh: Base64Url(65, "The browser's P-256 public key, uncompressed."),
        auth: Base64Url(16, "The browser's auth secret."),
      },
      { additionalProperties: false, description: 'PushSubscription.toJSON().keys.' },
    ),
    include_text: Type.Optional(Type.Boolean({ description: "Put the message's text in its pushes (default false: who wrote, and where, only)." })),
  },
  {
    examples: [
      {
        endpoint: ENDPOINT,
        keys: { p256dh: 'BEY8bQyzrAb0V9T7tbhzBx1jEXb4ysGw9zu7fshdyyogZlz_t5nKKdieWw1zdXxGiVR1_0uKHXkGl2K0tVBpGr8', auth: 'AtHASni56zrTdAmj2GIZHg' },
        include_text: true,
      },
    ],
  },
)
export const PushSubscribeReply = Type.Object({ subscribed: Type.Literal(true) }, { examples: [{ subscribed: true }] })

export const PushUnsubscribeBody = Fields({ endpoint: Endpoint }, { examples: [{ endpoint: ENDPOINT }] })

/**
 * What a push carries, as JSON, encrypted for the subscription (aes128gcm): for the
 * service worker to show. Never sent over this API; the README describes it.
 */
export const PushPayload = Type.Object(
  {
    type: Type.Enum(['message', 'mention', 'call'], { description: 'A direct message, a mention in a room, or a call that found you away.' }),
    from_uid: Id('Who wrote or called.'),
    from_login: Login,
    room_id: Type.Optional(Id('The room (a mention).')),
    room_name: Type.Optional(Type.String({ description: 'The room (a mention).' })),
    msg_id: Type.Optional(Id('The message (a message or a mention).')),
    call_id: Type.Optional(Id('The call.')),
    text: Type.Optional(Type.String({ maxLength: PUSH_TEXT_MAX_CHARS, description: `The message's text, when the subscription opted in; cut to ${PUSH_TEXT_MAX_CHARS} characters.` })),
  },
  { additionalProperties: false, examples: [{ type: 'message', from_uid: 1, from_login: 'alice', msg_id: 1, text: 'hi bob' }] },
)
