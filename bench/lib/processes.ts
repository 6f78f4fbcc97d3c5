// Child processes the bench runs (the messenger server, the hello-world baseline) and what
// the bench reads about them from /proc: memory, open descriptors, the machine's CPU use.
import { spawn, type ChildProcess } from 'node:child_process'
import { readdir, readFile } from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { sleep } from './stats.js'

export const PROJECT_ROOT = path.resolve(fileURLToPath(new URL('../..', import.meta.url)))
const READY_TIMEOUT_MS = 60_000

export interface NodeProcess {
  name: string
  pid: number
  base: string
  child: ChildProcess
  /** Lines the process wrote (the server logs at warn and above), the last 200. */
  output: string[]
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  stop(): Promise<void>
}

/** The bench's environment minus anything that would load tap's hooks into a child. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (key === 'NODE_OPTIONS' || key.startsWith('TAP') || key.startsWith('_TAPJS')) continue
    env[key] = value
  }
  return { ...env, ...extra }
}

/**
 * Runs `node --import tsx <script>` and waits until it answers HTTP on `port`. Readiness
 * is probed rather than read from the log: at LOG_LEVEL=warn the server's "messenger
 * ready" line is not printed. `defer` receives the stop step as soon as the process exists.
 */
export async function startNodeProcess(
  name: string,
  script: string,
  port: number,
  env: Record<string, string>,
  defer: (undo: () => Promise<void>) => void = () => {},
  nodeArgs: string[] = [],
): Promise<NodeProcess> {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', script], {
    cwd: PROJECT_ROOT,
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const pid = child.pid!
  const output: string[] = []
  const keep = (chunk: string) => {
    for (const line of chunk.split('\n')) if (line.trim()) output.push(line)
    if (output.length > 200) output.splice(0, output.length - 200)
  }
  child.stdout!.setEncoding('utf8').on('data', keep)
  child.stderr!.setEncoding('utf8').on('data', keep)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  )
  let stopping: Promise<void> | undefined
  const stop = () =>
    (stopping ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      // The server answers its held polls and closes within SHUTDOWN_GRACE_MS (10 s).
      const killed = sleep(15_000).then(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      })
      await Promise.race([exited, killed])
      await exited
    })())
  defer(stop)
  const base = `http://127.0.0.1:${port}`
  const proc: NodeProcess = { name, pid, base, child, output, exited, stop }

  let exitedEarly = false
  void exited.then(() => (exitedEarly = true))
  const deadline = Date.now() + READY_TIMEOUT_MS
  while (!(await answersHttp(base))) {
    if (exitedEarly) throw new Error(`${name} exited before it was ready:\n${output.join('\n')}`)
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`${name} not answering on ${base} after ${READY_TIMEOUT_MS} ms:\n${output.join('\n')}`)
    }
    await sleep(100)
  }
  return proc
}

/** Any HTTP answer at all (a 404 too) means the process is listening and serving. */
function answersHttp(base: string): Promise<boolean> {
  return new Promise((resolve) => {
    const request = http.get(`${base}/`, { agent: false, timeout: 1000 }, (response) => {
      response.resume()
      resolve(true)
    })
    request.on('timeout', () => request.destroy())
    request.on('error', () => resolve(false))
  })
}

/** Resident memory of a process, in KiB (VmRSS). */
export async function rssKb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
  if (!match) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(match[1])
}

// The first collection frees the garbage; V8 gives the emptied pages back to the system
// only at a later one.
const GC_ROUNDS = 3

/**
 * RSS once the server has run full garbage collections: it was started with
 * bench/lib/gc-on-signal.mjs, which collects on SIGWINCH.
 */
export async function rssAfterGcKb(pid: number, settleMs: number): Promise<number> {
  for (let round = 0; round < GC_ROUNDS; round++) {
    process.kill(pid, 'SIGWINCH')
    await sleep(settleMs)
  }
  return rssKb(pid)
}

export async function openFds(pid: number | 'self'): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length
}

/** The soft RLIMIT_NOFILE of a process (node 20 has no process.getrlimit). */
export async function fdLimit(pid: number | 'self'): Promise<number> {
  const limits = await readFile(`/proc/${pid}/limits`, 'utf8')
  const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits)
  return !match || match[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(match[1])
}

// CPU accounting, in clock ticks (USER_HZ, as /proc reports them). "The bench's tree" is
// this process and everything it started: the server, the hello-world process, and the
// embedded PostgreSQL with its backends. Time of processes that already ended is in their
// parent's cutime/cstime, so the sum over the tree only ever grows.

/**
 * The machine's ticks (every core), from /proc/stat: `busy` is all but idle and iowait;
 * `used` also leaves out steal, the time a virtual machine's host gave the core to others.
 */
async function machineTicks(): Promise<{ busy: number; used: number; total: number }> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]
  const fields = line.trim().split(/\s+/).slice(1, 9).map(Number)
  const total = fields.reduce((a, b) => a + b, 0)
  const busy = total - fields[3] - fields[4]
  return { busy, used: busy - (fields[7] ?? 0), total }
}

/** The cores /proc/stat counts (the machine's CPU figures are summed over these). */
export async function machineCores(): Promise<number> {
  return (await readFile('/proc/stat', 'utf8')).split('\n').filter((line) => /^cpu\d+\s/.test(line)).length
}

/** utime + stime + cutime + cstime of one process; 0 when it is gone. */
async function processTicks(pid: number): Promise<number> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14])
  } catch {
    return 0
  }
}

async function childrenOf(pid: number): Promise<number[]> {
  try {
    const threads = await readdir(`/proc/${pid}/task`)
    const lists = await Promise.all(threads.map((tid) => readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '')))
    return lists.flatMap((list) => list.split(' ').filter(Boolean).map(Number))
  } catch {
    return []
  }
}

/**
 * CPU seconds so far: this process alone, one child (the server), the whole tree, and the
 * whole machine (every core, every process: a database reached through DATABASE_URL too).
 */
export async function cpuSplit(serverPid: number): Promise<{ bench: number; server: number; tree: number; machine: number }> {
  const [bench, server, tree, machine] = await Promise.all([processTicks(process.pid), processTicks(serverPid), treeTicks(), machineBusySeconds()])
  // This process's own ticks include its reaped children (the hello-world process).
  return { bench: bench / TICKS_PER_SECOND, server: server / TICKS_PER_SECOND, tree: tree / TICKS_PER_SECOND, machine }
}

/** CPU seconds the machine's processes have used, summed over its cores. */
export async function machineBusySeconds(): Promise<number> {
  return (await machineTicks()).used / TICKS_PER_SECOND
}

/** CPU ticks used so far by the bench's process tree. */
export async function treeTicks(root = process.pid): Promise<number> {
  const [own, children] = await Promise.all([processTicks(root), childrenOf(root)])
  const below = await Promise.all(children.map((child) => treeTicks(child)))
  return own + below.reduce((a, b) => a + b, 0)
}

/** Cores' worth of CPU the bench's tree used over the next `windowMs`. */
export async function treeBusyCores(windowMs = 100): Promise<number> {
  const a = await treeTicks()
  const t0 = performance.now()
  await sleep(windowMs)
  const b = await treeTicks()
  return (b - a) / TICKS_PER_SECOND / ((performance.now() - t0) / 1000)
}

const TICKS_PER_SECOND = 100

/**
 * Waits until the server and the database are done with what they were sent (the bench's
 * tree nearly idle), at most `maxMs`. Returns whether they got there. Measured on our own
 * processes, so other load on the machine does not keep it waiting.
 */
export async function waitQuiet(maxMs: number, thresholdCores = 0.2): Promise<boolean> {
  const deadline = Date.now() + maxMs
  while (Date.now() < deadline) {
    if ((await treeBusyCores(100)) < thresholdCores) return true
  }
  return false
}

/**
 * Samples, once a second, how much CPU the rest of the machine takes: processes outside
 * the bench's tree (other jobs, and a PostgreSQL server reached through DATABASE_URL).
 * Figures measured beside such load are understated.
 */
export class ForeignLoad {
  private samples: number[] = []
  private timer: NodeJS.Timeout | undefined
  private last: { machine: { busy: number; total: number }; tree: number } | undefined

  start(): this {
    const sample = async () => {
      const [machine, tree] = await Promise.all([machineTicks(), treeTicks()])
      if (this.last && machine.total > this.last.machine.total) {
        const foreign = Math.max(0, machine.busy - this.last.machine.busy - (tree - this.last.tree))
        this.samples.push(foreign / (machine.total - this.last.machine.total))
      }
      this.last = { machine, tree }
    }
    void sample()
    this.timer = setInterval(() => void sample().catch(() => {}), 1000)
    this.timer.unref()
    return this
  }

  stop(): void {
    clearInterval(this.timer)
  }

  /** Mean share of the machine's CPU used by foreign processes, in percent. */
  meanPercent(): number {
    return this.samples.length === 0 ? Number.NaN : (100 * this.samples.reduce((a, b) => a + b, 0)) / this.samples.length
  }

  /** Share over the last `seconds` of samples, in percent. */
  recentPercent(seconds: number): number {
    const recent = this.samples.slice(-seconds)
    return recent.length === 0 ? Number.NaN : (100 * recent.reduce((a, b) => a + b, 0)) / recent.length
  }
}
