// The web client's files, as the server serves them:
// - GET / is the page (its script, stylesheet and a Content-Security-Policy that keeps it
//   to this origin); POST / is still the wiki dialect;
// - /app.js (the bundled client and SDK), /sw.js (the service worker, scope /) and /app.css,
//   compressed with brotli or gzip as accepted, plain otherwise, revalidated by ETag (304);
// - what a page costs: the compressed JS and CSS, reported.
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import t from 'tap'
import { build, signUp, wiki } from './helper.js'

t.test('GET / serves the page; POST / stays the wiki dialect', async (t) => {
  const app = await build(t)
  const page = await app.inject({ method: 'GET', url: '/' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.body, /<script type="module" src="\/app\.js">/)
  t.match(page.body, /<link rel="stylesheet" href="\/app\.css">/)
  t.match(page.headers['content-security-policy'], /default-src 'self'/)
  t.match(page.headers['content-security-policy'], /connect-src 'self'/)
  t.equal(page.headers['x-content-type-options'], 'nosniff')
  const alice = await signUp(app)
  const whoami = await wiki(app, 'whoami', {}, alice)
  t.equal(whoami.status, 200, 'POST / answers the wiki dialect as before')
})

t.test('the script, stylesheet and service worker: compressed as accepted, revalidated by ETag', async (t) => {
  const app = await build(t)
  const sizes: Record<string, number> = {}
  for (const [url, type] of [['/app.js', /javascript/], ['/sw.js', /javascript/], ['/app.css', /css/]] as const) {
    const plain = await app.inject({ method: 'GET', url })
    t.equal(plain.statusCode, 200, `${url}: 200`)
    t.match(plain.headers['content-type'], type)
    t.equal(plain.headers['content-encoding'], undefined, `${url}: plain without Accept-Encoding`)
    const br = await app.inject({ method: 'GET', url, headers: { 'accept-encoding': 'gzip, deflate, br' } })
    t.equal(br.headers['content-encoding'], 'br')
    t.equal(brotliDecompressSync(br.rawPayload).toString(), plain.body, `${url}: brotli decodes to the same file`)
    const gzip = await app.inject({ method: 'GET', url, headers: { 'accept-encoding': 'gzip' } })
    t.equal(gzip.headers['content-encoding'], 'gzip')
    t.equal(gunzipSync(gzip.rawPayload).toString(), plain.body, `${url}: gzip decodes to the same file`)
    t.match(String(br.headers.vary), /Accept-Encoding/)
    const again = await app.inject({ method: 'GET', url, headers: { 'if-none-match': String(plain.headers.etag) } })
    t.equal(again.statusCode, 304, `${url}: 304 for the ETag it has`)
    sizes[url] = br.rawPayload.length
  }
  const sw = await app.inject({ method: 'GET', url: '/sw.js' })
  t.equal(sw.headers['service-worker-allowed'], '/')
  t.match(sw.body, /showNotification/, 'the service worker shows notifications')
  const js = await app.inject({ method: 'GET', url: '/app.js' })
  t.match(js.body, /update_data/, 'the bundle carries the SDK (its long-poll)')
  t.comment(`compressed (brotli): app.js ${sizes['/app.js']} B, app.css ${sizes['/app.css']} B, sw.js ${sizes['/sw.js']} B`)
})
