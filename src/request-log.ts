// The request log: one JSON line per request, once it is answered (Fastify's own would be
// two: incoming and completed). The hot commands, a send and a poll, are logged at debug, so
// at the default level they cost no line; a request that errored is always logged, and one
// that took over SLOW_REQUEST_MS is logged as a warning, except those long by design (a
// held poll, a file transfer). Refusals and failures are also logged by the error handler
// (src/plugins/errors.ts). Credentials are redacted by the logger (src/app.ts).
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'

/** Requests slower than this are logged as warnings. */
export const SLOW_REQUEST_MS = 1000

/** How a request is logged: `hot` at debug; `held` at debug and never as slow; `transfer` never as slow. */
export type RequestLogKind = 'normal' | 'hot' | 'held' | 'transfer'

declare module 'fastify' {
  interface FastifyRequest {
    logAs: RequestLogKind
  }
}

export class RequestLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const line = { req: request, res: reply, responseTime: reply.elapsedTime }
    if (error) return reply.log.error({ ...line, err: error }, 'request errored')
    const long = request.logAs === 'held' || request.logAs === 'transfer'
    if (!long && reply.elapsedTime > SLOW_REQUEST_MS) return reply.log.warn(line, 'slow request completed')
    if (request.logAs === 'hot' || request.logAs === 'held') return reply.log.debug(line, 'request completed')
    reply.log.info(line, 'request completed')
  }
}
