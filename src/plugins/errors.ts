// The one error handler. Services throw errors with a stable code and status
// (src/errors.ts); framework errors (validation, body size, JSON syntax, rate limit) are
// mapped to the same codes here. The body depends on the dialect: `{error, message}` for
// POST /<command>, a bare JSON string for the wiki dialect on POST /. 5xx details are
// logged with the request id and never shown.
import fp from 'fastify-plugin'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { ERROR_CODES, type ErrorCode } from '../errors.js'
import { isDatabaseUnavailable } from '../database.js'

declare module 'fastify' {
  interface FastifyReply {
    /** The stable code of the error this reply carries, in either dialect (for the metrics). */
    errorCode: ErrorCode | null
  }
  interface FastifyContextConfig {
    /** Set on the root route: errors there are rendered as bare JSON strings. */
    dialect?: 'wiki'
  }
}

const STATUS_CODES: Record<number, ErrorCode> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'invalid_state',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
  503: 'unavailable',
}

interface Rendered {
  status: number
  code: ErrorCode
  message: string
}

function classify(error: FastifyError & { retryAfter?: number }): Rendered {
  if (error.validation) return { status: 400, code: 'bad_request', message: error.message }
  // @fastify/error upper-cases codes; the wire carries them in lower case.
  const code = error.code?.toLowerCase()
  if ((ERROR_CODES as readonly string[]).includes(code)) {
    return { status: error.statusCode ?? 400, code: code as ErrorCode, message: error.message }
  }
  if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return { status: 413, code: 'payload_too_large', message: 'Request body is too large' }
  if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return { status: 415, code: 'unsupported_media_type', message: 'Send the body as Content-Type: application/json' }
  }
  if (isDatabaseUnavailable(error)) {
    return { status: 503, code: 'unavailable', message: 'The database is unavailable; try again shortly' }
  }
  const status = error.statusCode ?? 500
  if (status >= 400 && status < 500) {
    const message = error instanceof SyntaxError ? 'Malformed JSON body' : error.message
    return { status, code: STATUS_CODES[status] ?? 'bad_request', message }
  }
  return { status: 500, code: 'internal_error', message: 'Internal server error' }
}

export function sendError(request: FastifyRequest, reply: FastifyReply, rendered: Rendered) {
  reply.errorCode = rendered.code
  reply.code(rendered.status)
  if (rendered.status === 503 && !reply.hasHeader('retry-after')) reply.header('retry-after', '1')
  if (request.routeOptions.config?.dialect === 'wiki') {
    return reply.type('application/json; charset=utf-8').send(JSON.stringify(rendered.message))
  }
  return reply.send({ error: rendered.code, message: rendered.message })
}

export default fp(
  async (app) => {
    app.decorateReply('errorCode', null)
    app.setErrorHandler((error: FastifyError & { retryAfter?: number }, request, reply) => {
      const rendered = classify(error)
      // A 503 while the database is away is expected: the outage is logged once (app.dbHealth).
      if (rendered.status >= 500 && !(rendered.status === 503 && app.dbHealth?.noteFailure(error))) request.log.error({ err: error }, 'request failed')
      else request.log.info({ code: rendered.code, message: rendered.message }, 'request refused')
      if (error.retryAfter) reply.header('retry-after', String(error.retryAfter))
      return sendError(request, reply, rendered)
    })
    app.setNotFoundHandler((request, reply) =>
      sendError(request, reply, { status: 404, code: 'not_found', message: `No route ${request.method} ${request.url.split('?')[0]}` }),
    )
  },
  { name: 'errors' },
)
