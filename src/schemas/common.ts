import { Type, type Static, type TSchema } from 'typebox'

/** Ids are JSON numbers: positive integers that a double holds exactly. */
export const Id = (description: string) =>
  Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description })

export const UnixSeconds = (description: string) => Type.Integer({ minimum: 0, description })

export const Login = Type.String({
  minLength: 1,
  maxLength: 32,
  pattern: '^[\\p{L}\\p{N}_.-]+$',
  description: 'Letters, digits, `_`, `.` and `-`; unique regardless of case.',
})

export const Password = Type.String({ minLength: 6, maxLength: 256, description: '6 to 256 characters.' })

/**
 * The session object of the wiki dialect: the desktop client echoes the whole object it
 * got from `authorization` in every request, so extra fields are allowed.
 */
export const SessionRef = Type.Object(
  {
    uid: Id('The user the session belongs to.'),
    session_key: Id('The session id.'),
    token: Type.Optional(Type.String({ maxLength: 4096, description: 'The bearer JWT.' })),
  },
  { additionalProperties: true, description: 'Alternative to the Authorization header.' },
)
export type SessionRef = Static<typeof SessionRef>

/**
 * A command's body: its own fields plus the envelope fields every command accepts:
 * `request` (must name the command when present) and `session`.
 */
export function CommandBody<P extends Record<string, TSchema>>(properties: P, description?: string) {
  return Type.Object(
    {
      ...properties,
      request: Type.Optional(Type.String({ maxLength: 64, description: 'The command name; must match the path when present.' })),
      session: Type.Optional(SessionRef),
    },
    { additionalProperties: true, ...(description ? { description } : {}) },
  )
}

export const ErrorBody = Type.Object(
  {
    error: Type.String({ description: 'Stable error code, e.g. `not_friends`.' }),
    message: Type.String({ description: 'Human-readable explanation.' }),
  },
  { description: 'Error (modern dialect). The wiki dialect sends the message alone, as a JSON string.' },
)

export const Empty = Type.Object({}, { additionalProperties: false })
