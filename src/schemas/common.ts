// Shapes every area uses, and the envelope every command's body shares. A schema with an
// `$id` is a named shape: the OpenAPI document lists it once in `components.schemas` and
// refers to it wherever it appears.
import { Type, type Static, type TObject, type TProperties, type TSchema } from 'typebox'
import { ERROR_CODES } from '../errors.js'

/** Ids are JSON numbers: positive integers that a double holds exactly. */
export const Id = (description: string) => Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description })

export const UnixSeconds = (description: string) => Type.Integer({ minimum: 0, description })

export const Login = Type.String({
  minLength: 1,
  maxLength: 32,
  pattern: '^[\\p{L}\\p{N}_.-]+$',
  description: 'Letters, digits, `_`, `.` and `-`; unique regardless of case.',
})

export const Password = Type.String({ minLength: 6, maxLength: 256, description: '6 to 256 characters.' })

/**
 * The session object of the wiki dialect (PROTOCOL A.2): what `authorization` returned,
 * echoed back in the body instead of (or beside) the Authorization header. `uid` and
 * `session_key` must match the token's, else 401. The desktop client echoes the object
 * verbatim, with whatever else it holds: other fields are ignored.
 */
export const SessionRef = Type.Object(
  {
    uid: Id('The user the session belongs to.'),
    session_key: Id('The session id.'),
    contact_uid: Type.Optional(Id('The same as uid, as `authorization` returns it.')),
    token: Type.Optional(Type.String({ maxLength: 4096, description: 'The bearer JWT.' })),
  },
  { $id: 'SessionRef', additionalProperties: true, description: 'The session, echoed back: an alternative to the Authorization header.' },
)
export type SessionRef = Static<typeof SessionRef>

/**
 * A command's own fields. Unknown fields are refused (400 naming them) in the modern
 * dialect; `alternatives` lists fields of which exactly one must be given (a oneOf).
 */
export function Fields<P extends TProperties>(properties: P, options: { description?: string; alternatives?: (keyof P & string)[]; examples?: unknown[] } = {}) {
  const { alternatives, ...rest } = options
  return Type.Object(properties, {
    additionalProperties: false,
    ...rest,
    // Each alternative requires its field (a copy of the field's schema without its optional mark).
    ...(alternatives && { oneOf: alternatives.map((name) => ({ type: 'object', properties: { [name]: { ...properties[name] } }, required: [name] })) }),
  })
}

/**
 * The body of a command of these names: its fields plus the envelope both dialects allow
 * (PROTOCOL A.1-A.2): `request`, the command's own name, and `session`.
 */
export function CommandBody<P extends TProperties>(names: [string, ...string[]], fields: TObject<P>) {
  const { type: _type, properties: _properties, required: _required, ...options } = fields
  return Type.Object(
    {
      ...fields.properties,
      request: Type.Optional(names.length === 1 ? Type.Literal(names[0]) : Type.Enum(names, { description: 'The command: its name or its alias.' })),
      session: Type.Optional(SessionRef),
    },
    options,
  )
}

/** The same body as the wiki dialect reads it: fields it does not know are ignored, not refused. */
export function lenient<T extends TSchema>(body: T): TSchema {
  return { ...body, additionalProperties: true }
}

/**
 * A named shape as the whole of a reply: the document then refers to it (a named shape
 * nested in a reply is referred to anyway; at the root it would be written out).
 */
export function named<T extends TSchema>(schema: T) {
  return Type.Unsafe<Static<T>>({ allOf: [schema] })
}

export const ErrorBody = Type.Object(
  {
    error: Type.Enum([...ERROR_CODES], { description: 'Stable error code.' }),
    message: Type.String({ description: 'Human-readable explanation.' }),
  },
  {
    $id: 'Error',
    description: 'An error (modern dialect). The wiki dialect sends the message alone, as a JSON string.',
    examples: [{ error: 'not_friends', message: 'You can only write to accepted contacts' }],
  },
)

export const Empty = Type.Object({}, { additionalProperties: false, examples: [{}] })
