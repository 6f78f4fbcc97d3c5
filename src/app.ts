// The application: one function builds it from a validated configuration. The launcher
// (src/server.ts) and the tests both call it; only the launcher knows ports, signals
// and the embedded database.
import Fastify, { type FastifyServerOptions } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Config } from './config.js'
import configPlugin from './plugins/config.js'
import errors, { sendError } from './plugins/errors.js'
import { BadRequest } from './errors.js'
import { containsUnstorableText, describeValidationErrors, serializerCompiler, validatorCompiler } from './validation.js'
import database from './plugins/database.js'
import eventLog from './plugins/event-log.js'
import auth from './plugins/auth.js'
import cors from './plugins/cors.js'
import rateLimit from './plugins/rate-limit.js'
import openapi from './plugins/openapi.js'
import metrics from './plugins/metrics.js'
import mailer from './plugins/mailer.js'
import fileStore from './plugins/file-store.js'
import services from './plugins/services.js'
import { systemClock, type Clock } from './clock.js'
import { RequestLog } from './request-log.js'
import routes from '../routes/index.js'

// Never log credentials, wherever they appear.
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.body.password',
  'req.body.old_password',
  'req.body.new_password',
  'req.body.code',
  'req.body.session.token',
]

export interface AppOptions {
  /** The time the product's rules read; tests pass a ManualClock. */
  clock?: Clock
  fastify?: FastifyServerOptions
}

export async function buildApp(config: Config, options: AppOptions = {}) {
  const app = Fastify({
    logger: { level: config.logLevel, redact: REDACTED_PATHS },
    logController: new RequestLog(),
    bodyLimit: config.bodyLimitBytes,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    // Long-polls are held up to POLL_MAX_SECONDS; leave the request timer well above it.
    requestTimeout: (config.pollMaxSeconds + 30) * 1000,
    // A malformed URL (bad escape, over-long parameter) gets the product's error shape too.
    schemaErrorFormatter: (errors, dataVar) => new Error(describeValidationErrors(errors, dataVar)),
    frameworkErrors: (error, request, reply) => {
      sendError(request, reply, { status: error.statusCode ?? 400, code: 'bad_request', message: error.message })
    },
    ...options.fastify,
  }).withTypeProvider<TypeBoxTypeProvider>()

  app.decorateRequest('logAs', 'normal')
  app.setValidatorCompiler(validatorCompiler)
  app.setSerializerCompiler(serializerCompiler)
  // JSON only: a text/plain body would otherwise be parsed as a string and fail later
  // with a vaguer message than 415.
  app.removeContentTypeParser('text/plain')
  // Fastify's own JSON parser (prototype-poisoning safe), plus one rule no schema can
  // state: text PostgreSQL cannot store (NUL, unpaired surrogates) is a 400, not a 500.
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    parseJson(request, body as string, (error: Error | null, value?: unknown) => {
      if (error) return done(error)
      if (containsUnstorableText(value)) return done(new BadRequest('Text may not contain NUL characters or unpaired surrogates'))
      done(null, value)
    })
  })
  // While closing, answer with `Connection: close`: a keep-alive socket of a request that
  // was in flight at SIGTERM would otherwise stay open and hold close() until the grace ends.
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })
  app.addHook('onSend', async (_request, reply, payload) => {
    if (closing) reply.header('connection', 'close')
    return payload
  })
  await app.register(configPlugin, { config, clock: options.clock ?? systemClock })
  await app.register(errors)
  await app.register(cors)
  await app.register(rateLimit)
  await app.register(database)
  await app.register(eventLog)
  await app.register(auth)
  await app.register(mailer)
  await app.register(fileStore)
  await app.register(services)
  await app.register(openapi)
  await app.register(metrics)
  await app.register(routes)
  return app
}

export type App = Awaited<ReturnType<typeof buildApp>>
