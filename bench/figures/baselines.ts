// Baselines: what the machine can do without the messenger's logic, measured in the same
// run so that every ratio compares like with like.
//   hello_rps   a bare Fastify route (JSON body in, JSON out) in its own process
//   whoami_rps  the server's cheapest authenticated command, loaded in turn with hello_rps
//   db_tx_ms    one durable send-shaped transaction straight through the pg driver
//   db_tps_N    the same, N clients at once, measured around each send-throughput level
//               (databaseCeilingHalf)
//   light_load_floor_*  what no server acknowledges faster at light load: the bare
//               Fastify process answering only once it committed one row and its NOTIFY
//               in one statement, one request at a time, back to back (the kindest
//               pacing: no process sleeps long); its parts, the bare round trip
//               (hello_rtt_ms) and the statement from the pg driver (db_stmt_ms), alike.
//   delivery_floor_*  the same process delivering: a receiver long-polls it with a cursor,
//               and its LISTEN connection answers the poll when the commit's NOTIFY
//               arrives; timed like the messenger's delivery, from the send to the reply.
import autocannon from 'autocannon'
import pg from 'pg'
import { createBaselineTable, dbTps, dbTransactionLatencies } from '../lib/db-baseline.js'
import type { BenchDatabase } from '../lib/database.js'
import type { Plan } from '../lib/plan.js'
import { HttpClient } from '../lib/http.js'
import { startNodeProcess } from '../lib/processes.js'
import { ratioAtLeast, type FigureInput, type Report } from '../lib/report.js'
import { median, percentile } from '../lib/stats.js'
import { ARRIVAL_TIMEOUT_MS } from './delivery.js'
import { freeLoopbackPort } from '../../src/embedded-database.js'

/** Slices of autocannon load, at most this long: see whoamiThroughput. */
const SLICE_SECONDS = 2
const WARM_UP_SECONDS = 1

async function hammer(plan: Plan, url: string, headers: Record<string, string>, seconds: number) {
  const result = await autocannon({
    url,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: '{}',
    connections: plan.autocannonConnections,
    duration: seconds,
  })
  return { total: result.requests.total, seconds: result.duration, non2xx: result.non2xx, errors: result.errors + result.timeouts }
}

/** Requests per second of each target, loaded in turn, slice after slice, for `seconds` each in all. */
async function alternating(plan: Plan, targets: { url: string; headers: Record<string, string> }[]) {
  const slices = Math.max(1, Math.round(plan.autocannonSeconds / SLICE_SECONDS))
  // Untimed: both processes' code compiled and their connections open before the first slice.
  for (const target of targets) await hammer(plan, target.url, target.headers, WARM_UP_SECONDS)
  const sums = targets.map(() => ({ total: 0, seconds: 0, non2xx: 0, errors: 0 }))
  for (let i = 0; i < slices; i++) {
    for (const [t, target] of targets.entries()) {
      const slice = await hammer(plan, target.url, target.headers, plan.autocannonSeconds / slices)
      for (const key of ['total', 'seconds', 'non2xx', 'errors'] as const) sums[t][key] += slice[key]
    }
  }
  return sums.map((sum) => ({ ...sum, rps: sum.total / sum.seconds }))
}

/** A rate as a figure: not a number when any request failed. */
function rpsFigure(plan: Plan, figure: string, run: Awaited<ReturnType<typeof alternating>>[number]): FigureInput {
  const failed = run.non2xx + run.errors
  return {
    figure,
    value: failed === 0 ? run.rps : Number.NaN,
    unit: 'req/s',
    note: failed > 0 ? `${run.non2xx} non-2xx, ${run.errors} errors` : undefined,
    extra: { connections: plan.autocannonConnections, seconds: run.seconds, non2xx: run.non2xx, errors: run.errors },
  }
}

/** Latencies (ms) of `count` requests, one at a time, back to back. */
async function sequentialLatencies(client: HttpClient, command: string, count: number): Promise<number[]> {
  const latencies: number[] = []
  for (let i = 0; i < count; i++) {
    const t0 = performance.now()
    const reply = await client.ok(command, {}, 'not-checked')
    latencies.push(reply.at - t0)
  }
  return latencies
}

/**
 * Latencies (ms) from a `durable` send to the first long-poll reply that heard of its row,
 * one message at a time, the first `warmup` untimed.
 */
async function deliveryFloorLatencies(sender: HttpClient, receiver: HttpClient, count: number, warmup: number): Promise<number[]> {
  const newestOf = (body: unknown) => (body as { newest: number }).newest
  let heard = newestOf((await receiver.ok('wait', { after: -1 })).body) // answers at once
  /** The poll's replies since the current send started: the newest row each heard of. */
  let replies: { newest: number; at: number }[] = []
  let awaited: { id: number; arrived: (at: number | undefined) => void } | undefined
  let pollError: unknown
  let stopped = false
  const polling = (async () => {
    while (!stopped) {
      const reply = await receiver.ok('wait', { after: heard })
      heard = newestOf(reply.body)
      replies.push({ newest: heard, at: reply.at })
      if (awaited && heard >= awaited.id) awaited.arrived(reply.at)
    }
  })().catch((error) => {
    if (stopped) return // the receiver's connection closed under it
    pollError = error
    awaited?.arrived(undefined)
  })
  const latencies: number[] = []
  try {
    for (let n = 0; n < count; n++) {
      replies = []
      const t0 = performance.now()
      const { id } = (await sender.ok('durable', {})).body as { id: number }
      let timer: NodeJS.Timeout | undefined
      const at =
        replies.find((reply) => reply.newest >= id)?.at ??
        (await new Promise<number | undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), ARRIVAL_TIMEOUT_MS)
          awaited = { id, arrived: resolve }
          if (pollError !== undefined) resolve(undefined)
        }))
      clearTimeout(timer)
      awaited = undefined
      if (at === undefined) throw new Error(pollError !== undefined ? `the long poll failed: ${pollError}` : `durable row ${id} never reached the long poll`)
      if (n >= warmup) latencies.push(at - t0)
    }
  } finally {
    stopped = true
    receiver.close() // ends the held poll
    await polling
  }
  return latencies
}

/** The bare Fastify process, on the bench's database when given (its durable route). */
async function startHello(defer: (undo: () => Promise<void>) => void, db?: BenchDatabase) {
  const port = await freeLoopbackPort()
  const env: Record<string, string> = { PORT: String(port), ...(db ? { DATABASE_URL: db.url, DATABASE_SCHEMA: db.schema } : {}) }
  return startNodeProcess('hello-server', 'bench/hello-server.ts', port, env, defer)
}

/** After databaseLatency: the floor's ratios are to db_tx_ms. */
export async function lightLoadFloor(plan: Plan, report: Report, db: BenchDatabase, defer: (undo: () => Promise<void>) => void): Promise<void> {
  const hello = await startHello(defer, db)
  try {
    // One request at a time on one connection, through the client the delivery figures use.
    const client = new HttpClient(hello.base, { oneConnection: true })
    try {
      const bare = await sequentialLatencies(client, 'hello', plan.dbLatencyTransactions)
      report.add({ figure: 'hello_rtt_ms', value: median(bare), unit: 'ms', note: 'one at a time, median', extra: { requests: bare.length } })
      const durable = await sequentialLatencies(client, 'durable', plan.dbLatencyTransactions)
      const note = 'bare Fastify answering after one durable statement'
      report.add({ figure: 'light_load_floor_ms', value: median(durable), unit: 'ms', baseline: 'db_tx_ms', note: `${note}, median`, extra: { requests: durable.length } })
      report.add({ figure: 'light_load_floor_p99_ms', value: percentile(durable, 99), unit: 'ms', baseline: 'db_tx_ms', note: `${note}, p99` })
      // As many messages as the messenger's delivery figure times, on a connection each.
      const delivered = await deliveryFloorLatencies(client, new HttpClient(hello.base, { oneConnection: true }), plan.deliveryWarmup + plan.deliveryMessages, plan.deliveryWarmup)
      const deliveryNote = 'bare Fastify answering a long poll when the NOTIFY of a durable send arrives'
      report.add({ figure: 'delivery_floor_ms', value: median(delivered), unit: 'ms', baseline: 'db_tx_ms', note: `${deliveryNote}, median`, extra: { messages: delivered.length } })
      report.add({ figure: 'delivery_floor_p99_ms', value: percentile(delivered, 99), unit: 'ms', baseline: 'db_tx_ms', note: `${deliveryNote}, p99` })
    } finally {
      client.close()
    }
  } finally {
    await hello.stop()
  }
}

/**
 * whoami against bare Fastify, in alternating slices: the machine's speed drifts (the same
 * server took 90 to 164 µs of CPU per whoami in runs an hour apart), and a drift weighs on
 * both alike only when both are measured in the same seconds. Same request shape: a POST
 * with a JSON body and a bearer header.
 */
export async function whoamiThroughput(plan: Plan, report: Report, base: string, token: string, defer: (undo: () => Promise<void>) => void): Promise<void> {
  const hello = await startHello(defer)
  try {
    const [bare, whoami] = await alternating(plan, [
      { url: `${hello.base}/hello`, headers: { authorization: 'Bearer not-checked' } },
      { url: `${base}/whoami`, headers: { authorization: `Bearer ${token}` } },
    ])
    report.add(rpsFigure(plan, 'hello_rps', bare))
    report.add({ ...rpsFigure(plan, 'whoami_rps', whoami), baseline: 'hello_rps', target: ratioAtLeast(0.3) })
  } finally {
    await hello.stop()
  }
}

/** The same whoami run against another server (e.g. more workers), compared with the first. */
export async function whoamiVariant(plan: Plan, report: Report, base: string, token: string, suffix: string): Promise<void> {
  const [whoami] = await alternating(plan, [{ url: `${base}/whoami`, headers: { authorization: `Bearer ${token}` } }])
  report.add({ ...rpsFigure(plan, `whoami_rps_${suffix}`, whoami), baseline: 'whoami_rps' })
}

/** The baseline table, then one client's durable transactions and statements, timed. */
export async function databaseLatency(plan: Plan, report: Report, db: BenchDatabase): Promise<void> {
  const admin = new pg.Client({ connectionString: db.url })
  await admin.connect()
  try {
    await createBaselineTable(admin, db.schema)
  } finally {
    await admin.end()
  }
  const latencies = await dbTransactionLatencies(db.url, db.schema, plan.dbLatencyTransactions, 0)
  report.add({ figure: 'db_tx_ms', value: median(latencies), unit: 'ms', note: 'one client, median', extra: { transactions: latencies.length } })
  const statements = await dbTransactionLatencies(db.url, db.schema, plan.dbLatencyTransactions, 500, { oneStatement: true })
  report.add({ figure: 'db_stmt_ms', value: median(statements), unit: 'ms', note: 'one durable statement, one round trip, median', extra: { statements: statements.length } })
}

/**
 * Half of the database's ceiling for `clients` durable transactions at once (dbSeconds / 2):
 * the send-throughput levels take one just before their sends and one just after, so that
 * the machine's drifting speed weighs on the figure and on its baseline alike.
 * `keyBase` keeps runs apart.
 */
export function databaseCeilingHalf(plan: Plan, db: BenchDatabase, clients: number, keyBase: number) {
  return dbTps(db.url, db.schema, clients, plan.dbSeconds / 2, keyBase)
}

/** Reports db_tps_N from the two halves. */
export function reportDatabaseCeiling(report: Report, clients: number, halves: Awaited<ReturnType<typeof databaseCeilingHalf>>[]): void {
  const errors = halves.reduce((n, half) => n + half.errors, 0)
  report.add({
    figure: `db_tps_${clients}`,
    value: errors === 0 ? halves.reduce((sum, half) => sum + half.tps, 0) / halves.length : Number.NaN,
    unit: 'tx/s',
    note: errors > 0 ? `${errors} failed transactions` : 'just before and after the sends',
    extra: { halves: halves.map((half) => Math.round(half.tps)), transactions: halves.reduce((n, half) => n + half.total, 0), errors },
  })
  // What the ceiling itself takes of the machine, to compare with a send's CPU.
  const transactions = halves.reduce((n, half) => n + half.total, 0)
  report.add({
    figure: `db_tps_${clients}_cpu_machine_ms_per_tx`,
    value: errors === 0 && transactions > 0 ? (1000 * halves.reduce((sum, half) => sum + half.cpuSeconds, 0)) / transactions : Number.NaN,
    unit: 'ms',
    note: 'every process on the machine',
  })
}
