// Errors with a stable code and an HTTP status. Services throw these; the error handler
// (src/plugins/errors.ts) renders them in the caller's dialect.
import createError from '@fastify/error'

export const BadRequest = createError('bad_request', '%s', 400)
export const Unauthorized = createError('unauthorized', '%s', 401)
export const Forbidden = createError('forbidden', '%s', 403)
export const NotFriends = createError('not_friends', '%s', 403)
export const NotFound = createError('not_found', '%s', 404)
/** A member of a channel tried what only its owner and moderators may do (post; react, where reactions are off). */
export const ReadOnlyChannel = createError('read_only_channel', '%s', 403)
export const LoginTaken = createError('login_taken', 'Login already exists', 409)
export const AlreadyContact = createError('already_contact', 'Already your contact', 409)
export const InvalidState = createError('invalid_state', '%s', 409)
export const EmailTaken = createError('email_taken', 'E-mail address already in use', 409)
export const EmailUnverified = createError('email_unverified', 'Verify your e-mail address first (see verify and resend_code)', 403)
export const InvalidCode = createError('invalid_code', '%s', 400)
export const CodeExpired = createError('code_expired', 'The code has expired; request a new one with resend_code', 400)
export const TooManyAttempts = createError('too_many_attempts', 'Too many wrong codes; request a new one with resend_code', 400)
export const FileUnavailable = createError('file_unavailable', '%s', 410)
export const RangeNotSatisfiable = createError('range_not_satisfiable', '%s', 416)
export const PayloadTooLarge = createError('payload_too_large', '%s', 413)
export const Busy = createError('busy', '%s', 409)
export const RateLimited = createError('rate_limited', '%s', 429)
export const Unavailable = createError('unavailable', '%s', 503)

/** Every code a client may see, for the OpenAPI document and the error handler. */
export const ERROR_CODES = [
  'bad_request',
  'unauthorized',
  'forbidden',
  'not_friends',
  'not_found',
  'read_only_channel',
  'login_taken',
  'already_contact',
  'invalid_state',
  'email_taken',
  'email_unverified',
  'invalid_code',
  'code_expired',
  'too_many_attempts',
  'payload_too_large',
  'file_unavailable',
  'range_not_satisfiable',
  'busy',
  'unsupported_media_type',
  'rate_limited',
  'internal_error',
  'unavailable',
] as const
export type ErrorCode = (typeof ERROR_CODES)[number]

/** A 429 that tells the client when to come back (sent as Retry-After, in seconds). */
export function rateLimited(message: string, retryAfterSeconds: number): Error {
  return Object.assign(new RateLimited(message), { retryAfter: Math.max(1, Math.ceil(retryAfterSeconds)) })
}
