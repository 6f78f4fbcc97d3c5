// Cross-origin calls (CORS_ORIGINS):
// - a listed origin gets Access-Control-Allow-Origin on answers, errors and 429s included,
//   and may read Retry-After, Content-Range and Content-Disposition;
// - an unlisted origin gets no Access-Control-Allow-Origin (its browser refuses the answer),
//   and by default every other origin is unlisted;
// - the preflight of every command answers 204 for a listed origin, allowing POST with
//   Authorization and Content-Type;
// - `*` allows any origin; a malformed origin or `*` mixed with origins is refused at boot.
import t from 'tap'
import { configFromEnv, ConfigError } from '../src/config.js'
import { EXPOSED_HEADERS } from '../src/plugins/cors.js'
import { build, signUp, TEST_JWT_SECRET } from './helper.js'

const APP_ORIGIN = 'https://chat.example.test'
const OTHER_ORIGIN = 'https://evil.example.test'

function preflight(origin: string, url: string) {
  return {
    method: 'OPTIONS' as const,
    url,
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
  }
}

t.test('a listed origin may call the API and read the headers clients need', async (t) => {
  const app = await build(t, { corsOrigins: [APP_ORIGIN], sendRatePerMinute: 1 })
  const alice = await signUp(app)
  const whoami = await app.inject({ method: 'POST', url: '/whoami', headers: { origin: APP_ORIGIN, authorization: `Bearer ${alice.token}` }, payload: {} })
  t.equal(whoami.statusCode, 200)
  t.equal(whoami.headers['access-control-allow-origin'], APP_ORIGIN, 'the origin is allowed')
  t.match(String(whoami.headers.vary), /Origin/i, 'Vary: Origin, so caches keep answers per origin')
  const exposed = String(whoami.headers['access-control-expose-headers']).split(/,\s*/)
  for (const header of ['Retry-After', 'Content-Range', 'Content-Disposition']) t.ok(exposed.includes(header), `${header} is exposed`)
  t.same(exposed, EXPOSED_HEADERS)

  const unauthorized = await app.inject({ method: 'POST', url: '/whoami', headers: { origin: APP_ORIGIN }, payload: {} })
  t.equal(unauthorized.statusCode, 401)
  t.equal(unauthorized.headers['access-control-allow-origin'], APP_ORIGIN, 'an error answer is readable too')

  const send = () => app.inject({ method: 'POST', url: '/send_msg', headers: { origin: APP_ORIGIN, authorization: `Bearer ${alice.token}` }, payload: { to_uid: alice.uid, msg: 'x' } })
  await send()
  const limited = await send()
  t.equal(limited.statusCode, 429, 'the second send of the minute is limited (SEND_RATE_PER_MINUTE 1)')
  t.equal(limited.headers['access-control-allow-origin'], APP_ORIGIN, 'a 429 carries the CORS headers')
  t.ok(Number(limited.headers['retry-after']) >= 1, 'with a Retry-After the page can read')
})

t.test('an unlisted origin gets no Access-Control-Allow-Origin; by default no other origin is listed', async (t) => {
  const app = await build(t, { corsOrigins: [APP_ORIGIN] })
  const refused = await app.inject({ method: 'POST', url: '/authorization', headers: { origin: OTHER_ORIGIN }, payload: { login: 'nobody', password: 'secret1' } })
  t.equal(refused.headers['access-control-allow-origin'], undefined, 'no Access-Control-Allow-Origin for an unlisted origin')
  const refusedPreflight = await app.inject(preflight(OTHER_ORIGIN, '/send_msg'))
  t.equal(refusedPreflight.headers['access-control-allow-origin'], undefined, 'its preflight allows nothing')

  const byDefault = await build(t)
  t.same(byDefault.config.corsOrigins, [], 'CORS_ORIGINS is empty by default')
  const other = await byDefault.inject({ method: 'POST', url: '/whoami', headers: { origin: APP_ORIGIN }, payload: {} })
  t.equal(other.headers['access-control-allow-origin'], undefined, 'by default another origin is refused')
  const sameOrigin = await byDefault.inject({ method: 'GET', url: '/healthz' })
  t.equal(sameOrigin.statusCode, 200, 'a request without Origin (the server\'s own page, curl) is served as before')
})

t.test('every command answers its preflight for a listed origin', async (t) => {
  const app = await build(t, { corsOrigins: [APP_ORIGIN] })
  const document = app.swagger() as { paths: Record<string, Record<string, unknown>> }
  const commands = Object.keys(document.paths).filter((path) => document.paths[path]!.post)
  t.ok(commands.length > 50, `${commands.length} commands`)
  const refused: string[] = []
  for (const path of commands) {
    const reply = await app.inject(preflight(APP_ORIGIN, path))
    if (reply.statusCode !== 204 || reply.headers['access-control-allow-origin'] !== APP_ORIGIN) refused.push(`${path}: ${reply.statusCode}`)
  }
  t.same(refused, [], 'OPTIONS answers 204 with the origin allowed on every command\'s path')
  const reply = await app.inject(preflight(APP_ORIGIN, '/send_msg'))
  t.equal(reply.statusCode, 204, 'OPTIONS /send_msg: 204')
  t.match(String(reply.headers['access-control-allow-methods']), /POST/)
  t.match(String(reply.headers['access-control-allow-headers']).toLowerCase(), /authorization/)
  t.match(String(reply.headers['access-control-allow-headers']).toLowerCase(), /content-type/)
  t.ok(Number(reply.headers['access-control-max-age']) > 0, 'browsers may cache the preflight')
  const download = await app.inject({ ...preflight(APP_ORIGIN, '/files/1'), headers: { origin: APP_ORIGIN, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization,range' } })
  t.equal(download.statusCode, 204, 'a ranged download may be preflighted')
  t.match(String(download.headers['access-control-allow-headers']).toLowerCase(), /range/)
})

t.test('CORS_ORIGINS=* allows any origin', async (t) => {
  const app = await build(t, { corsOrigins: ['*'] })
  const reply = await app.inject({ method: 'POST', url: '/whoami', headers: { origin: OTHER_ORIGIN }, payload: {} })
  t.equal(reply.headers['access-control-allow-origin'], '*')
})

t.test('CORS_ORIGINS is checked at boot', async (t) => {
  t.same(configFromEnv({ CORS_ORIGINS: ' https://A.Example.test/ , http://127.0.0.1:5173' }, TEST_JWT_SECRET).corsOrigins, ['https://a.example.test', 'http://127.0.0.1:5173'], 'listed, trimmed, lower-cased as browsers send it, a trailing slash dropped')
  for (const bad of ['a.example.test', 'https://a.example.test/app', 'ftp://a.example.test', '*,https://a.example.test']) {
    t.throws(() => configFromEnv({ CORS_ORIGINS: bad }, TEST_JWT_SECRET), ConfigError, `"${bad}" is refused`)
  }
})
