// Cross-origin calls (@fastify/cors): a web app served from another origin may call the
// API when CORS_ORIGINS lists that origin (or is `*`). The server's own pages are same-origin
// and need no entry; any other origin gets no Access-Control-Allow-Origin, so its browser
// refuses the answer. Sessions are bearer tokens, never cookies: no credentials mode.
// Registered before the rate limits, so that a 429 carries the headers and its Retry-After
// can be read by the page.
import fp from 'fastify-plugin'
import cors from '@fastify/cors'

/** Reply headers a page may read besides the CORS-safelisted ones. */
export const EXPOSED_HEADERS = ['Retry-After', 'Content-Range', 'Content-Disposition', 'Content-Length', 'Accept-Ranges', 'ETag']

export default fp(
  async (app) => {
    const origins = app.config.corsOrigins
    const anyOrigin = origins.includes('*')
    const allowed = new Set(origins)
    await app.register(cors, {
      origin: anyOrigin ? '*' : (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
      methods: ['GET', 'HEAD', 'POST'],
      allowedHeaders: ['Authorization', 'Content-Type', 'Range'],
      exposedHeaders: EXPOSED_HEADERS,
      // Browsers cache a preflight this long (Chromium caps it at 2 hours).
      maxAge: 7200,
    })
  },
  { name: 'cors', dependencies: ['config'] },
)
