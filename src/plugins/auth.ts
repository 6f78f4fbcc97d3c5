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
    authenticate(request: FastifyRequest): Promise<void>
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
      sign: { algorithm: 'HS256', expiresIn: app.config.sessionTtlSeconds },
      // Verified tokens are remembered (a cache hit costs a third of a verification: the
      // library keys it by a hash of the token); revocation is checked apart, on every
      // request, and an entry never outlives the token's exp.
      verify: { algorithms: ['HS256'], cache: VERIFIED_TOKENS_CACHED },
    })
    app.decorateRequest('session', null)
    const sessions = new SessionCache(app.db, app.hub)
    app.decorate('sessionCache', sessions)

    app.decorate('authenticate', async (request: FastifyRequest) => {
      const bodySession = (request.body as { session?: SessionRef } | undefined)?.session
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
      if (bodySession && (bodySession.uid !== claims.uid || bodySession.session_key !== claims.sid)) {
        throw new Unauthorized('The session does not match its token')
      }
      const userId = await sessions.userOf(claims.sid)
      if (userId !== claims.uid) throw new Unauthorized('Session logged out or expired')
      request.session = { userId, sessionId: claims.sid }
    })
  },
  { name: 'auth', dependencies: ['config', 'database', 'event-hub'] },
)
