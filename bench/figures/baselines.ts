// Baselines: what the machine can do without the messenger's logic, measured in the same
// run so that every ratio compares like with like.
//   hello_rps   a bare Fastify route (JSON body in, JSON out) in its own process
//   whoami_rps  the server's cheapest authenticated command, for context
//   db_tps_N    durable send-shaped transactions straight through the pg driver
//   light_load_floor_*  what no server acknowledges faster at light load: the bare
//               Fastify process answering only once it committed one row and its NOTIFY
//               in one statement. Timed the way light load comes, one request at a time
//               after an idle pause (IDLE_PAUSE_MS), so every hop wakes a sleeping process;
//               its parts, the bare round trip (hello_rtt_ms) and the statement from the
//               pg driver (db_stmt_ms), are timed the same way. db_tx_ms is back to back.
import autocannon from 'autocannon'
import pg from 'pg'
import { createBaselineTable, dbTps, dbTransactionLatencies } from '../lib/db-baseline.js'
import type { BenchDatabase } from '../lib/database.js'
import type { Plan } from '../lib/plan.js'
import { HttpClient } from '../lib/http.js'
import { startNodeProcess } from '../lib/processes.js'
import { ratioAtLeast, type Report } from '../lib/report.js'
import { median, percentile, sleep } from '../lib/stats.js'
import { freeLoopbackPort } from '../../src/embedded-database.js'

/** The pause before each light-load timing: the processes involved go idle, as between a person's messages. */
export const IDLE_PAUSE_MS = 3

async function hammer(plan: Plan, url: string, headers: Record<string, string>) {
  const result = await autocannon({
    url,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: '{}',
    connections: plan.autocannonConnections,
    duration: plan.autocannonSeconds,
  })
  return { rps: result.requests.average, non2xx: result.non2xx, errors: result.errors + result.timeouts, total: result.requests.total }
}

/** Latencies (ms) of `count` requests, one at a time, each after an idle pause. */
async function idleLatencies(client: HttpClient, command: string, count: number): Promise<number[]> {
  const latencies: number[] = []
  for (let i = 0; i < count; i++) {
    await sleep(IDLE_PAUSE_MS)
    const t0 = performance.now()
    const reply = await client.ok(command, {}, 'not-checked')
    latencies.push(reply.at - t0)
  }
  return latencies
}

/** After databaseCeiling: the floor's ratios are to db_tx_ms. */
export async function helloBaseline(plan: Plan, report: Report, db: BenchDatabase, defer: (undo: () => Promise<void>) => void): Promise<void> {
  const port = await freeLoopbackPort()
  const env = { PORT: String(port), DATABASE_URL: db.url, DATABASE_SCHEMA: db.schema }
  const hello = await startNodeProcess('hello-server', 'bench/hello-server.ts', port, env, defer)
  try {
    // Same request shape as the /whoami run: a POST with a JSON body and a bearer header.
    const result = await hammer(plan, `${hello.base}/hello`, { authorization: 'Bearer not-checked' })
    report.add({
      figure: 'hello_rps',
      value: result.rps,
      unit: 'req/s',
      extra: { connections: plan.autocannonConnections, seconds: plan.autocannonSeconds, non2xx: result.non2xx, errors: result.errors },
    })
    // One request at a time on one connection, through the client the delivery figures use.
    const client = new HttpClient(hello.base, { oneConnection: true })
    try {
      const bare = await idleLatencies(client, 'hello', plan.dbLatencyTransactions)
      report.add({ figure: 'hello_rtt_ms', value: median(bare), unit: 'ms', note: `one at a time, ${IDLE_PAUSE_MS} ms pauses, median`, extra: { requests: bare.length } })
      const durable = await idleLatencies(client, 'durable', plan.dbLatencyTransactions)
      const note = 'bare Fastify answering after one durable statement'
      report.add({ figure: 'light_load_floor_ms', value: median(durable), unit: 'ms', baseline: 'db_tx_ms', note: `${note}, median`, extra: { requests: durable.length } })
      report.add({ figure: 'light_load_floor_p99_ms', value: percentile(durable, 99), unit: 'ms', baseline: 'db_tx_ms', note: `${note}, p99` })
    } finally {
      client.close()
    }
  } finally {
    await hello.stop()
  }
}

/** `suffix`: the same run against another server (e.g. more workers), compared with the first. */
export async function whoamiThroughput(plan: Plan, report: Report, base: string, token: string, suffix?: string): Promise<void> {
  const result = await hammer(plan, `${base}/whoami`, { authorization: `Bearer ${token}` })
  report.add({
    figure: suffix ? `whoami_rps_${suffix}` : 'whoami_rps',
    value: result.non2xx + result.errors === 0 ? result.rps : Number.NaN,
    unit: 'req/s',
    baseline: suffix ? 'whoami_rps' : 'hello_rps',
    target: suffix ? undefined : ratioAtLeast(0.3),
    note: result.non2xx + result.errors > 0 ? `${result.non2xx} non-2xx, ${result.errors} errors` : undefined,
    extra: { non2xx: result.non2xx, errors: result.errors },
  })
}

export async function databaseCeiling(plan: Plan, report: Report, db: BenchDatabase): Promise<void> {
  const admin = new pg.Client({ connectionString: db.url })
  await admin.connect()
  try {
    await createBaselineTable(admin, db.schema)
  } finally {
    await admin.end()
  }
  const latencies = await dbTransactionLatencies(db.url, db.schema, plan.dbLatencyTransactions, 0)
  report.add({ figure: 'db_tx_ms', value: median(latencies), unit: 'ms', note: 'one client, median', extra: { transactions: latencies.length } })
  const statements = await dbTransactionLatencies(db.url, db.schema, plan.dbLatencyTransactions, 500, { oneStatement: true, pauseMs: IDLE_PAUSE_MS })
  report.add({ figure: 'db_stmt_ms', value: median(statements), unit: 'ms', note: `one durable statement, ${IDLE_PAUSE_MS} ms pauses`, extra: { statements: statements.length } })
  for (const [i, clients] of plan.dbClientCounts.entries()) {
    const result = await dbTps(db.url, db.schema, clients, plan.dbSeconds, (i + 1) * 1000)
    report.add({
      figure: `db_tps_${clients}`,
      value: result.errors === 0 ? result.tps : Number.NaN,
      unit: 'tx/s',
      note: result.errors > 0 ? `${result.errors} failed transactions` : undefined,
      extra: { transactions: result.total, errors: result.errors, seconds: plan.dbSeconds },
    })
  }
}
