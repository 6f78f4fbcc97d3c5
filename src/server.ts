// The launcher: configuration, the database (embedded unless DATABASE_URL is set),
// migrations, the listening socket, and a graceful shutdown on SIGTERM/SIGINT.
//
// With WORKERS > 1 this process (the primary) opens the database and migrates, then forks
// the workers (node:cluster), which each build the app and share the port; nothing in
// the app assumes one process (wake-ups, the cursor guarantee, presence and the periodic
// jobs hold across processes). The primary replaces a worker that dies, and on SIGTERM
// stops the workers (each answers its held polls) before the database.
import cluster, { type Worker } from 'node:cluster'
import os from 'node:os'
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { bootWarnings, loadConfig, openDatabase, type OpenedDatabase } from './bootstrap.js'
import { ConfigError, type Config } from './config.js'
import { createKnex, migrate } from './database.js'
import { EmbeddedDatabaseError } from './embedded-database.js'

const startedAt = performance.now()
let database: OpenedDatabase | undefined

/** Builds the app on `databaseUrl` and listens; stops it on SIGTERM/SIGINT (then `after`). */
async function serve(config: Config, databaseUrl: string, after: () => Promise<void>) {
  const app = await buildApp({ ...config, databaseUrl })
  let stopping = false
  // A worker is told to stop by its primary: as by a SIGTERM, unless a signal came first
  // (Ctrl-C reaches every process of the group; a second signal would cut the grace short).
  process.on('message', (message) => {
    if (message === 'shutdown' && !stopping) process.kill(process.pid, 'SIGTERM')
  })
  closeWithGrace({ delay: config.shutdownGraceMs }, async ({ signal, err }) => {
    stopping = true
    if (err) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await app.close() // answers held polls, finishes in-flight requests
    await after()
  })
  await app.listen({ port: config.port, host: config.host })
  return app
}

const LEVELS: Record<Config['logLevel'], number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity }
let logLevel: Config['logLevel'] = 'info'

/** One JSON line in the app's log format, at LOG_LEVEL, for the primary (which has no app). */
function logLine(level: 'info' | 'warn' | 'error', msg: string, fields: object = {}) {
  if (LEVELS[level] < LEVELS[logLevel]) return
  const levels = LEVELS
  console.log(JSON.stringify({ level: levels[level], time: Date.now(), pid: process.pid, hostname: os.hostname(), ...fields, msg }))
}

/** Forks the workers and keeps them running until SIGTERM/SIGINT; resolves once all listen. */
async function superviseWorkers(config: Config, opened: OpenedDatabase): Promise<void> {
  let stopping = false
  const fork = () => cluster.fork({ DATABASE_URL: opened.url, JWT_SECRET: config.jwtSecret })
  closeWithGrace({ delay: config.shutdownGraceMs + 1000 }, async ({ signal }) => {
    stopping = true
    logLine('info', 'shutting down', { signal })
    const workers = Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined)
    await Promise.all(
      workers.map((worker) => new Promise((resolve) => {
        worker.once('exit', resolve)
        worker.send('shutdown')
      })),
    )
    await opened.close()
  })
  await new Promise<void>((resolve, reject) => {
    let listening = 0
    cluster.on('listening', () => {
      if (++listening === config.workers) resolve()
    })
    cluster.on('exit', (worker, code, signal) => {
      if (stopping) return
      // A worker that dies before the server is up is a start-up failure (it said why).
      if (listening < config.workers) return reject(new Error(`a worker exited while starting (code ${code})`))
      logLine('error', 'a worker died; starting another', { worker: worker.process.pid, code, signal })
      fork()
    })
    for (let i = 0; i < config.workers; i++) fork()
  })
}

async function primary() {
  const config = await loadConfig()
  logLevel = config.logLevel
  // Here, not in the app: once per launch, whatever the number of workers (or of apps a test builds).
  for (const { setting, msg } of bootWarnings(config)) logLine('warn', msg, { setting })
  database = await openDatabase(config, () => {})
  const opened = database

  const knex = createKnex({ url: opened.url, schema: config.databaseSchema, poolMax: 1 })
  try {
    await migrate(knex, config.databaseSchema)
  } finally {
    await knex.destroy()
  }

  const ready = {
    database: opened.embedded ? `embedded (${opened.location})` : 'DATABASE_URL',
    workers: config.workers,
  }
  if (config.workers === 1) {
    const app = await serve(config, opened.url, () => opened.close())
    app.log.info({ ...ready, startupMs: Math.round(performance.now() - startedAt) }, 'messenger ready')
  } else {
    await superviseWorkers(config, opened)
    logLine('info', 'messenger ready', { ...ready, startupMs: Math.round(performance.now() - startedAt) })
  }
}

/** A worker: the primary opened and migrated the database, and passes its URL. */
async function worker() {
  const config = await loadConfig()
  await serve(config, config.databaseUrl!, async () => {})
}

;(cluster.isPrimary ? primary() : worker()).catch(async (error) => {
  // What the user can act on is said in one message; anything else keeps its stack.
  if (error instanceof ConfigError || error instanceof EmbeddedDatabaseError) console.error(error.message)
  else console.error('Failed to start:', error)
  for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill()
  await database?.close().catch(() => {})
  process.exit(1)
})
