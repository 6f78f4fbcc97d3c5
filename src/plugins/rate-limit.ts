// Rate limits (@fastify/rate-limit): every request per client IP (RATE_LIMIT_PER_MINUTE),
// plus named limits that commands ask for after authentication: messages per user
// (SEND_RATE_PER_MINUTE) and registrations per IP (REGISTRATIONS_PER_IP_PER_HOUR). With
// REDIS_URL the counters live in Redis and hold across processes; else in memory, per
// process. A Redis outage lets requests through (skipOnError) rather than failing them;
// the app is ready only once Redis answers (or its first connect failed), so the counters
// count from the first request rather than waving it through while the socket opens.
// Failed logins have their own per-login limit, in the database (accounts service).
import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import { Redis } from 'ioredis'
import type { FastifyRequest } from 'fastify'
import { RateLimited, rateLimited } from '../errors.js'

export type NamedLimit = 'send' | 'registration'

declare module 'fastify' {
  interface FastifyInstance {
    /** Counts the request against a named limit; 429 with Retry-After beyond it. */
    checkLimit(request: FastifyRequest, limit: NamedLimit): Promise<void>
  }
}

export default fp(
  async (app) => {
    const { config } = app
    let redis: Redis | undefined
    if (config.redisUrl) {
      redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true })
      redis.on('error', (error) => app.log.warn({ err: error }, 'rate limits: Redis unavailable'))
      app.addHook('onClose', async () => {
        await redis?.quit().catch(() => redis?.disconnect())
      })
      // A failed first connect is an outage like any other: ioredis keeps reconnecting.
      await redis.connect().catch((error) => app.log.warn({ err: error }, 'rate limits: Redis unavailable at start; requests pass unlimited until it answers'))
    }
    await app.register(rateLimit, {
      max: config.rateLimitPerMinute,
      timeWindow: 60_000,
      redis,
      // One database schema, one set of counters, also when instances share a Redis.
      nameSpace: `${config.databaseSchema}:rate-limit:`,
      skipOnError: true,
      errorResponseBuilder: (_request, context) => new RateLimited(`Rate limit exceeded; retry in ${context.after}`),
    })

    const limiters = {
      send: {
        check: app.createRateLimit({ max: config.sendRatePerMinute, timeWindow: 60_000, keyGenerator: (request) => `send:${request.session?.userId}` }),
        message: `At most ${config.sendRatePerMinute} messages a minute`,
      },
      registration: {
        check: app.createRateLimit({ max: config.registrationsPerIpPerHour, timeWindow: 3600_000, keyGenerator: (request) => `registration:${request.ip}` }),
        message: `At most ${config.registrationsPerIpPerHour} registrations an hour from one address`,
      },
    }
    app.decorate('checkLimit', async (request: FastifyRequest, limit: NamedLimit) => {
      const { check, message } = limiters[limit]
      const outcome = await check(request)
      if (!outcome.isAllowed && outcome.isExceeded) throw rateLimited(`${message}; try again in ${outcome.ttlInSeconds} s`, outcome.ttlInSeconds)
    })
  },
  { name: 'rate-limit', dependencies: ['config', 'errors'] },
)
