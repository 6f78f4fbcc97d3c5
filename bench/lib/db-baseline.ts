// The database's ceiling for a durable send, measured with the pg driver alone: each
// transaction does what a send must at least do (append one row to an indexed log and
// queue a NOTIFY) and commits, waiting for its WAL flush. One statement per round trip,
// as an application talks to PostgreSQL. The server cannot send faster than this.
import pg from 'pg'
import { machineBusySeconds } from './processes.js'

const TABLE = 'bench_db_baseline'

export async function createBaselineTable(client: pg.Client, schema: string): Promise<void> {
  await client.query(
    `CREATE TABLE IF NOT EXISTS "${schema}".${TABLE} (
       user_id bigint NOT NULL, pos bigint NOT NULL, payload jsonb, PRIMARY KEY (user_id, pos))`,
  )
}

async function durableSend(client: pg.Client, schema: string, userId: number, pos: number): Promise<void> {
  await client.query('BEGIN')
  try {
    await client.query(`INSERT INTO "${schema}".${TABLE} (user_id, pos, payload) VALUES ($1, $2, $3)`, [userId, pos, '{"msg":"bench"}'])
    await client.query("SELECT pg_notify('bench', 'x')")
    await client.query('COMMIT')
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {})
    throw error
  }
}

/** The least a durable send can cost the database: one row and its NOTIFY in one statement, one round trip, committed. */
async function durableStatement(client: pg.Client, schema: string, userId: number, pos: number): Promise<void> {
  await client.query({
    name: 'bench_durable_statement',
    text: `WITH appended AS (INSERT INTO "${schema}".${TABLE} (user_id, pos, payload) VALUES ($1, $2, $3) RETURNING pos)
           SELECT pg_notify('bench', 'x') FROM appended`,
    values: [userId, pos, '{"msg":"bench"}'],
  })
}

async function connect(url: string, count: number): Promise<pg.Client[]> {
  const clients: pg.Client[] = []
  try {
    for (let i = 0; i < count; i++) {
      const client = new pg.Client({ connectionString: url })
      clients.push(client)
      await client.connect()
    }
    return clients
  } catch (error) {
    await Promise.all(clients.map((c) => c.end().catch(() => {})))
    throw error
  }
}

/**
 * Transactions per second with `clients` connections, each committing one after another
 * for `seconds` (and at most `maxPerClient` each). `keyBase` keeps rows of runs apart.
 */
export async function dbTps(url: string, schema: string, clients: number, seconds: number, keyBase: number, maxPerClient = 1_000_000) {
  const connections = await connect(url, clients)
  try {
    let total = 0
    let errors = 0
    const busyBefore = await machineBusySeconds()
    const started = performance.now()
    const deadline = started + seconds * 1000
    await Promise.all(
      connections.map(async (client, i) => {
        for (let pos = 1; pos <= maxPerClient && performance.now() < deadline; pos++) {
          try {
            await durableSend(client, schema, keyBase + i, pos)
            total++
          } catch {
            errors++
          }
        }
      }),
    )
    const elapsed = (performance.now() - started) / 1000
    // The machine's CPU over the transactions alone (not the connections' setup).
    return { tps: total / elapsed, total, errors, cpuSeconds: (await machineBusySeconds()) - busyBefore }
  } finally {
    await Promise.all(connections.map((c) => c.end().catch(() => {})))
  }
}

/**
 * Latencies (ms) of `count` such transactions from one client, one at a time, within
 * `maxMs`; with `oneStatement`, each is the single durable statement instead.
 */
export async function dbTransactionLatencies(url: string, schema: string, count: number, keyBase: number, { maxMs = 20_000, oneStatement = false } = {}): Promise<number[]> {
  const [client] = await connect(url, 1)
  try {
    const latencies: number[] = []
    const deadline = performance.now() + maxMs
    for (let pos = 1; pos <= count && performance.now() < deadline; pos++) {
      const t0 = performance.now()
      await (oneStatement ? durableStatement : durableSend)(client, schema, keyBase, pos)
      latencies.push(performance.now() - t0)
    }
    return latencies
  } finally {
    await client.end().catch(() => {})
  }
}
