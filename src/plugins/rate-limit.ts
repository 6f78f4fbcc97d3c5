// Per-IP request rate limit (@fastify/rate-limit), generous by default (RATE_LIMIT_PER_MINUTE).
// Failed logins have their own per-login limit in the accounts service.
import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import { RateLimited } from '../errors.js'

export default fp(
  async (app) => {
    await app.register(rateLimit, {
      max: app.config.rateLimitPerMinute,
      timeWindow: 60_000,
      errorResponseBuilder: (_request, context) => new RateLimited(`Rate limit exceeded; retry in ${context.after}`),
    })
  },
  { name: 'rate-limit', dependencies: ['config', 'errors'] },
)
