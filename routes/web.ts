// The web client, served by the server itself: GET / is the page (POST / stays the wiki
// dialect), /app.js and /app.css what it loads, /sw.js its service worker (at the root, so
// its scope is the whole site). Compressed as the browser accepts (br, gzip), revalidated
// by ETag. The page may only load and call this origin (Content-Security-Policy).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { WEB_PATHS, webAssets } from '../src/web-assets.js'

const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "worker-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ')

function encodingFor(request: FastifyRequest): 'br' | 'gzip' | 'identity' {
  const accepted = String(request.headers['accept-encoding'] ?? '')
  if (/\bbr\b/.test(accepted)) return 'br'
  if (/\bgzip\b/.test(accepted)) return 'gzip'
  return 'identity'
}

export async function webClient(app: FastifyInstance) {
  const serve = async (request: FastifyRequest, reply: FastifyReply) => {
    const asset = (await webAssets()).get(request.routeOptions.url!)!
    reply
      .header('content-type', asset.contentType)
      .header('etag', asset.etag)
      .header('cache-control', 'no-cache')
      .header('vary', 'Accept-Encoding')
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', CONTENT_SECURITY_POLICY)
    if (request.routeOptions.url === '/sw.js') reply.header('service-worker-allowed', '/')
    if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send()
    const encoding = encodingFor(request)
    if (encoding !== 'identity') reply.header('content-encoding', encoding)
    return reply.send(asset[encoding])
  }
  for (const url of WEB_PATHS) app.get(url, { schema: { hide: true } }, serve)
}
