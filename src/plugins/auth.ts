// Authentication: HS256 session tokens (@fastify/jwt) naming a session row. A token is
// accepted only while its session is neither revoked nor expired, checked on every request
// through the per-process session cache (src/session-cache.ts), which every process's
// logout NOTIFY updates, so a logout through any process takes effect at once everywhere.
import fp from 'fastify-plugin'
import fastifyJwt from '@fastify/jwt'
import type { FastifyRequest } from 'fastify'
import { SessionCache } from '../session-cache.js'
import { Unauthorized } from '../errors.js'
import type { SessionRef } from '../schemas/common.js'
import type { SessionClaims } from '../services/deps.js'

export interface AuthSession {
  userId: number
  sessionId: number
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Sets request.session from the bearer token, or from the `session` the body echoes (which must agree with it). */
    authenticate(request: FastifyRequest, bodySession?: SessionRef): Promise<void>
    sessionCache: SessionCache
  }
  interface FastifyRequest {
    session: AuthSession | null
  }
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: SessionClaims
    user: SessionClaims
  }
}

/** Tokens whose signature check is remembered (LRU), up to their expiry or 10 minutes. */
const VERIFIED_TOKENS_CACHED = 10_000

function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  if (!header) return undefined
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
  if (!match) throw new Unauthorized('Authorization header must be "Bearer <token>"')
  return match[1]
}

export default fp(
  async (app) => {
    await app.register(fastifyJwt, {
      secret: app.config.jwtSecret,
      // `exp` is set by the accounts service: the session's expiry, on the app's clock.
      sign: { algorithm: 'HS256' },
      // Verified tokens are remembered (a cache hit costs a third of a verification: the
      // library keys it by a hash of the token); revocation is checked apart, on every
      // request, and an entry never outlives the token's exp.
      verify: { algorithms: ['HS256'], cache: VERIFIED_TOKENS_CACHED },
    })
    app.decorateRequest('session', null)
    const sessions = new SessionCache(app.db, app.eventLog.listener, app.clock)
    app.decorate('sessionCache', sessions)

    app.decorate('authenticate', async (request: FastifyRequest, bodySession?: SessionRef) => {
      const bearer = bearerToken(request)
      if (bearer && bodySession?.token !== undefined && bodySession.token !== bearer) {
        throw new Unauthorized('The session in the body and the Authorization header disagree')
      }
      const token = bearer ?? bodySession?.token
      if (!token) throw new Unauthorized('Missing session token')
      let claims: SessionClaims
      try {
        claims = app.jwt.verify<SessionClaims>(token)
      } catch {
        throw new Unauthorized('Invalid or expired session')
      }
      if (!Number.isSafeInteger(claims.uid) || !Number.isSafeInteger(claims.sid)) throw new Unauthorized('Invalid session')
      // Expiry on the app's clock too (the library checks it against the system's).
      if (typeof claims.exp === 'number' && claims.exp * 1000 <= app.clock.now()) throw new Unauthorized('Invalid or expired session')
      if (bodySession && (bodySession.uid !== claims.uid || bodySession.session_key !== claims.sid)) {
        throw new Unauthorized('The session does not match its token')
      }
      const userId = await sessions.userOf(claims.sid)
      if (userId !== claims.uid) throw new Unauthorized('Session logged out or expired')
      request.session = { userId, sessionId: claims.sid }
    })
  },
  { name: 'auth', dependencies: ['config', 'database', 'event-log'] },
)
