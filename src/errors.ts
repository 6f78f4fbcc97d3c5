// Errors with a stable code and an HTTP status. Services throw these; the error handler
// (src/plugins/errors.ts) renders them in the caller's dialect.
import createError from '@fastify/error'

export const BadRequest = createError('bad_request', '%s', 400)
export const Unauthorized = createError('unauthorized', '%s', 401)
export const Forbidden = createError('forbidden', '%s', 403)
export const NotFriends = createError('not_friends', '%s', 403)
export const NotFound = createError('not_found', '%s', 404)
export const LoginTaken = createError('login_taken', 'Login already exists', 409)
export const AlreadyContact = createError('already_contact', 'Already your contact', 409)
export const InvalidState = createError('invalid_state', '%s', 409)
export const RateLimited = createError('rate_limited', '%s', 429)
export const Unavailable = createError('unavailable', '%s', 503)

/** Every code a client may see, for the OpenAPI document and the error handler. */
export const ERROR_CODES = [
  'bad_request',
  'unauthorized',
  'forbidden',
  'not_friends',
  'not_found',
  'login_taken',
  'already_contact',
  'invalid_state',
  'payload_too_large',
  'unsupported_media_type',
  'rate_limited',
  'internal_error',
  'unavailable',
] as const
export type ErrorCode = (typeof ERROR_CODES)[number]
