// Reconnect storm: `stormUsers` clients, all offline, send their first poll at once, at
// most `stormConcurrency` in flight (a server restart, or a network's return). A first
// poll authenticates, turns its user online (a presence event to each friend) and reads
// the log; `timeout: 0` makes each answer as soon as that is done, so the rate is the
// rate at which first polls are opened. Two runs: users with no friend in common, and
// users who are all friends of one user (who polls throughout), whose log then takes
// every presence event. Backends waiting on a row lock are sampled all along (pg_locks):
// a popular user's row must not be a lock every friend queues on.
import pg from 'pg'
import { HttpClient } from '../lib/http.js'
import { PollLoop, catchUp } from '../lib/poller.js'
import { atLeast, zero } from '../lib/report.js'
import { percentile } from '../lib/stats.js'
import type { BenchContext } from '../lib/context.js'
import type { BenchUser } from '../seed.js'

const SAMPLE_EVERY_MS = 10

/** Samples the waits on row locks (a tuple, or the transaction holding one) until stopped. */
function sampleLockWaits(url: string) {
  const client = new pg.Client({ connectionString: url })
  client.on('error', () => {})
  const samples: number[] = []
  let stopped = false
  const running = (async () => {
    await client.connect()
    while (!stopped) {
      const { rows } = await client.query(
        `SELECT count(*)::int AS waiting FROM pg_locks
          WHERE NOT granted AND locktype IN ('tuple', 'transactionid')
            AND database IS DISTINCT FROM 0`,
      )
      samples.push(rows[0].waiting)
      await new Promise((resolve) => setTimeout(resolve, SAMPLE_EVERY_MS))
    }
  })()
  return {
    async stop() {
      stopped = true
      await running.catch(() => {})
      await client.end().catch(() => {})
      return { samples: samples.length, withWaits: samples.filter((n) => n > 0).length, maxWaiting: Math.max(0, ...samples) }
    },
  }
}

async function storm(ctx: BenchContext, name: string, users: BenchUser[]): Promise<void> {
  const { plan, report, server } = ctx
  const client = new HttpClient(server.base)
  const locks = sampleLockWaits(ctx.db.url)
  const latencies: number[] = []
  let errors = 0
  let next = 0
  const t0 = performance.now()
  try {
    await Promise.all(
      Array.from({ length: plan.stormConcurrency }, async () => {
        while (next < users.length) {
          const user = users[next++]
          const started = performance.now()
          const reply = await client.post('update_data', { cursor: 0, timeout: 0 }, user.token).catch(() => undefined)
          if (reply?.status === 200) latencies.push(reply.at - started)
          else errors++
        }
      }),
    )
  } finally {
    client.close()
  }
  const seconds = (performance.now() - t0) / 1000
  const waits = await locks.stop()
  report.add({
    figure: `storm_${name}_opens_per_s`,
    value: errors === 0 ? users.length / seconds : Number.NaN,
    unit: 'polls/s',
    target: atLeast(1000, 'polls/s'),
    note: errors > 0 ? `${errors} first polls failed` : undefined,
    extra: { users: users.length, concurrency: plan.stormConcurrency, first_poll_p50_ms: +percentile(latencies, 50).toFixed(2), first_poll_p99_ms: +percentile(latencies, 99).toFixed(2) },
  })
  report.add({
    figure: `storm_${name}_lock_waits`,
    value: waits.withWaits,
    unit: 'samples',
    target: name === 'shared_friend' ? zero : undefined,
    note: `of ${waits.samples} samples had a backend waiting on a row lock (at most ${waits.maxWaiting} at once)`,
  })
}

export async function reconnectStorm(ctx: BenchContext): Promise<void> {
  const { alone, shared, friend } = ctx.population.storm
  await storm(ctx, 'alone', alone)
  // The shared friend polls all along: every first poll's presence event wakes it.
  const client = new HttpClient(ctx.server.base)
  const friendLoop = new PollLoop(client, friend, await catchUp(client, friend), {
    timeout: 25,
    deadline: performance.now() + 120_000,
    maxPolls: 100_000,
    onMessages() {},
  }).start()
  try {
    await storm(ctx, 'shared_friend', shared)
  } finally {
    await friendLoop.stop()
    client.close()
  }
}
