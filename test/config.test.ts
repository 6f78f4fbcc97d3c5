import { spawn } from 'node:child_process'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { configFromEnv, ConfigError, DEFAULTS } from '../src/config.js'
import { claimDataDir, DataDirError } from '../src/embedded-database.js'

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
  t.same(configFromEnv({ ADMIN_LOGINS: ' Root, ops ,' }, SECRET).adminLogins, ['root', 'ops'], 'ADMIN_LOGINS: trimmed, lower-cased')
})

t.test('a second server on the same DATA_DIR is told the data is in use', async (t) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'messenger-lock-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const release = await claimDataDir(dataDir)
  // A live process (the test runner's parent) holds it: claiming again from "another server" fails.
  await writeFile(path.join(dataDir, 'server.pid'), String(process.ppid))
  await t.rejects(claimDataDir(dataDir), DataDirError)
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

t.test('run as root, a DATA_DIR the postgres user may not enter: npm start names the directory and exits 1', { skip: process.getuid?.() === 0 ? false : 'only as root does PostgreSQL run as another user' }, async (t) => {
  const closed = await mkdtemp(path.join(os.tmpdir(), 'messenger-closed-'))
  await chmod(closed, 0o700)
  t.teardown(() => rm(closed, { recursive: true, force: true }))
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, DATABASE_URL: '', DATA_DIR: path.join(closed, 'data'), LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const code = await new Promise((resolve) => child.on('exit', resolve))
  t.equal(code, 1)
  t.match(stderr, `may not enter ${closed} (mode 700)`, 'names the directory in the way and its mode')
  t.match(stderr, /Choose a DATA_DIR it can reach/, 'says what to do')
  t.notMatch(stderr, /\n\s+at /, 'no stack trace')
})
