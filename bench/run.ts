// npm run bench [-- --smoke] [--only=throughput,delivery] [--cpu-prof]: the messenger's
// performance figures, all from one run on this machine (loopback only). Starts its own PostgreSQL (or
// uses DATABASE_URL) on a fresh schema, seeds users, measures the baselines, starts the
// server and measures it.
// One JSON line per figure on stdout, progress on stderr, then a table with the targets.
// Exit 0 when the run completed (whatever the figures say), 1 when it broke.
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { databaseLatency, lightLoadFloor, whoamiThroughput, whoamiVariant } from './figures/baselines.js'
import { deliveryAcrossProcesses, deliveryLatency } from './figures/delivery.js'
import { logGrowth } from './figures/growth.js'
import { HELD_POLL_SECONDS, heldPolls } from './figures/held-polls.js'
import { reconnectStorm } from './figures/reconnect.js'
import { roomFanout } from './figures/room-fanout.js'
import { sendThroughput } from './figures/throughput.js'
import type { BenchContext } from './lib/context.js'
import { openBenchDatabase } from './lib/database.js'
import { makePlan } from './lib/plan.js'
import { cpuSplit, ForeignLoad, rssKb, startNodeProcess, waitQuiet, type NodeProcess } from './lib/processes.js'
import { below, Report } from './lib/report.js'
import { describeWork, serverWork } from './lib/server-work.js'
import { seedPopulation, Seeder } from './seed.js'
import { freeLoopbackPort } from '../src/embedded-database.js'

const wallStart = performance.now()
const plan = makePlan(process.argv.includes('--smoke'))
// --only=a,b: just the groups whose names contain one of these (and the database latency,
// every send figure's baseline; the light-load floors' group names the delivery latency,
// which they bound), for profiling one figure at a time.
const only = process.argv.find((arg) => arg.startsWith('--only='))?.slice('--only='.length).split(',')
const selected = (name: string) => !only || name === 'baseline: database latency' || only.some((part) => name.includes(part))
// --cpu-prof: the server writes a V8 CPU profile (open it in Chrome DevTools) into ./profiles at exit.
// Always: SIGWINCH makes the server collect its garbage (bench/lib/gc-on-signal.mjs), for the
// held-poll memory figure.
const serverNodeArgs = [
  '--expose-gc',
  '--import',
  path.resolve('bench/lib/gc-on-signal.mjs'),
  ...(process.argv.includes('--cpu-prof') ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve('profiles')}`] : []),
]
const report = new Report()
const foreign = new ForeignLoad().start()
const log = (line: string) => console.error(`# [${((performance.now() - wallStart) / 1000).toFixed(1)} s] ${line}`)

// Undo steps, run last-in first-out exactly once: on completion, on error, on a signal.
const cleanups: (() => Promise<void>)[] = []
let cleaning: Promise<void> | undefined
function cleanup(): Promise<void> {
  return (cleaning ??= (async () => {
    while (cleanups.length > 0) {
      try {
        await cleanups.pop()!()
      } catch (error) {
        log(`cleanup: ${(error as Error).message}`)
      }
    }
  })())
}

/** Set once the run is being stopped early (a signal, the time limit): nothing new starts. */
let stopping: string | undefined
let finishing: Promise<never> | undefined

/** Cleans up (bounded), prints the closing figures and the table, exits. The first caller's code wins. */
function finish(code: number): Promise<never> {
  return (finishing ??= (async () => {
    log('cleaning up')
    const bounded = new Promise<void>((resolve) => setTimeout(resolve, 30_000).unref())
    await Promise.race([cleanup(), bounded])
    foreign.stop()
    report.add({
      figure: 'foreign_cpu_pct',
      value: foreign.meanPercent(),
      unit: '%',
      target: below(10, '%'),
      note:
        `CPU of processes outside the bench${process.env.DATABASE_URL ? ' (incl. the DATABASE_URL server)' : ''}` +
        (foreign.meanPercent() >= 10 ? '; above target: the figures are understated' : ''),
    })
    report.add({ figure: 'wall_time_s', value: (performance.now() - wallStart) / 1000, unit: 's', note: plan.smoke ? 'smoke' : undefined })
    if (stopping) report.note(`stopped early: ${stopping}`)
    console.log(`\n${report.table()}`)
    process.exit(code)
  })())
}

function stopEarly(reason: string, code: number): void {
  if (stopping) return
  stopping = reason
  log(`${reason}: stopping`)
  void finish(code)
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => stopEarly(signal, 130))
setTimeout(() => stopEarly(`over the run's limit of ${plan.hardLimitMs / 1000} s`, 1), plan.hardLimitMs).unref()

let broken = false
/** The measured server, once started: each group reports its CPU and its work. */
let measured: NodeProcess | undefined
/** Runs one figure group; a failure is reported and the run goes on (and exits 1). */
async function group(name: string, run: () => Promise<void>): Promise<void> {
  if (stopping || !selected(name)) return
  log(`${name}…`)
  const t0 = performance.now()
  const cpu0 = measured && (await cpuSplit(measured.pid))
  const work0 = measured && (await serverWork(measured.base).catch(() => undefined))
  try {
    await run()
  } catch (error) {
    if (stopping) return // torn down under it: not a finding
    broken = true
    report.note(`${name} broke: ${(error as Error).stack ?? error}`)
  }
  const seconds = Math.max(1, Math.round((performance.now() - t0) / 1000))
  // Where the CPU went: shows whether the bench's own client was a bottleneck.
  let split = ''
  if (cpu0 && measured) {
    const cpu1 = await cpuSplit(measured.pid)
    const bench = cpu1.bench - cpu0.bench
    const server = cpu1.server - cpu0.server
    const database = process.env.DATABASE_URL ? 'not ours' : (cpu1.tree - cpu0.tree - bench - server).toFixed(1)
    split = `; CPU s: bench ${bench.toFixed(1)}, server ${server.toFixed(1)}, database ${database}`
  }
  log(`${name}: ${seconds} s, other processes took ${foreign.recentPercent(seconds).toFixed(0)}% of the machine's CPU${split}`)
  const work1 = work0 && measured && (await serverWork(measured.base).catch(() => undefined))
  if (work0 && work1) log(`${name}: ${describeWork(work0, work1)}`)
}

async function main(): Promise<void> {
  log(plan.smoke ? 'smoke run: tiny counts' : 'full run')
  const defer = (undo: () => Promise<void>) => void cleanups.push(undo)
  const db = await openBenchDatabase(log, defer)
  const secret = randomBytes(32).toString('hex')
  const seeder = new Seeder(db.knex, secret)
  const poolSize = Math.max(...plan.heldLevels, plan.roomMembers)
  const population = await seedPopulation(seeder, { ...plan, poolSize })
  const seeded = 2 + population.throughput.reduce((n, g) => n + g.senders.length + g.receivers.length, 0) + population.growth.length + population.pool.length + 2 + 2 * plan.stormUsers + 1
  log(`seeded ${seeded} users`)

  /** A messenger server on the bench's database, with `workers` processes. */
  async function startServer(name: string, workers: number): Promise<NodeProcess> {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'messenger-bench-data-'))
    defer(() => rm(dataDir, { recursive: true, force: true }))
    const port = await freeLoopbackPort()
    return startNodeProcess(name, 'src/server.ts', port, {
      DATABASE_URL: db.url,
      DATABASE_SCHEMA: db.schema,
      JWT_SECRET: secret,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      WORKERS: String(workers),
      // The limits would be what is measured, not the server: out of the way.
      RATE_LIMIT_PER_MINUTE: '100000000',
      SEND_RATE_PER_MINUTE: '100000000',
      // Limits in memory: the figures must not depend on a Redis service that happens to
      // be configured in the environment (CI sets one).
      REDIS_URL: '',
      MAX_HELD_POLLS_PER_USER: '4',
      POLL_MAX_SECONDS: String(HELD_POLL_SECONDS),
      DATA_DIR: dataDir,
    }, defer, serverNodeArgs)
  }
  // The measured server: the default, one process.
  const server = await startServer('messenger server', 1)
  measured = server
  let serverGone = false
  void server.exited.then(({ code, signal }) => {
    serverGone = true
    log(`the server exited (${code ?? signal})`)
  })
  log(`server pid ${server.pid} on ${server.base}`)

  const ctx: BenchContext = { plan, report, db, seeder, population, server, log }
  const cursors = new Map<number, number>()
  const groups: [string, () => Promise<void>][] = [
    ['whoami throughput (with hello-world)', () => whoamiThroughput(plan, report, server.base, population.delivery.sender.token, defer)],
    [
      'idle server memory',
      async () => {
        await waitQuiet(5000)
        report.add({ figure: 'server_rss_idle_mb', value: (await rssKb(server.pid)) / 1024, unit: 'MB', note: 'after the whoami run' })
      },
    ],
    // The light-load figures and their baselines back to back, within a minute: the
    // machine's speed drifts (one durable transaction took 0.41 to 0.93 ms at the start of
    // runs), and a ratio compares like with like only when both sides meet the same drift.
    // The server is idle meanwhile.
    ['baseline: database latency', () => databaseLatency(plan, report, db)],
    ['baseline: light-load floors (hello-world), for the delivery latency', () => lightLoadFloor(plan, report, db, defer)],
    ['delivery latency', () => deliveryLatency(ctx)],
    ...plan.throughputLevels.map((level, i): [string, () => Promise<void>] => [`send throughput, ${level} senders`, () => sendThroughput(ctx, i)]),
    // Before the held polls: their users going offline 60 s after a level must not overlap the timings.
    ['log growth', () => logGrowth(ctx)],
    ['held polls', () => heldPolls(ctx, cursors)],
    // Right after the held polls, on the same users: they are still online, so no presence
    // changes run in the server while the fan-out is timed.
    ['room fan-out', () => roomFanout(ctx, cursors)],
    // Last: the storm's users go offline a minute later, which must not overlap other timings.
    ['reconnect storm', () => reconnectStorm(ctx)],
    // Every core: the same whoami and 16-sender runs against WORKERS=2, beside the first.
    [
      'workers: 2',
      async () => {
        const two = await startServer('messenger server, 2 workers', 2)
        try {
          await waitQuiet(5000) // both workers started
          await whoamiVariant(plan, report, two.base, population.delivery.sender.token, '2_workers')
          await sendThroughput({ ...ctx, server: two }, 0, { suffix: '2_workers' })
        } finally {
          await two.stop()
        }
      },
    ],
    // A second one-process server beside the first: the receiver polls it, the sender
    // sends through the measured one, so each message crosses processes by LISTEN/NOTIFY.
    [
      'delivery across processes',
      async () => {
        const second = await startServer('messenger server, second process', 1)
        try {
          await deliveryAcrossProcesses(ctx, second)
        } finally {
          await second.stop()
        }
      },
    ],
  ]
  for (const [name, run] of groups) {
    if (stopping) return
    if (serverGone) {
      broken = true
      report.note(`${name}: skipped, the server is gone:\n${server.output.slice(-20).join('\n')}`)
      continue
    }
    await group(name, run)
  }

  const problems = server.output.filter((line) => /"level":(50|60)/.test(line))
  if (problems.length > 0) report.note(`the server logged ${problems.length} errors; the last: ${problems[problems.length - 1]}`)
}

try {
  await main()
} catch (error) {
  if (!stopping) {
    broken = true
    report.note(`the run broke: ${(error as Error).stack ?? error}`)
  }
}
await finish(broken ? 1 : 0)
