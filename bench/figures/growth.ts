// Growth: do single operations slow down as the event log grows? The same two operations
// are timed on a log that is still (nearly) empty and again after 1,000,000 events were
// added behind every cursor (spread over 1,000 users, scattered over the table as a real
// log would be): a caught-up client's poll (timeout 0, nothing new) and a send between
// two friends. Medians of sequential operations, after untimed warm-up ones. A whoami,
// which reads no log, is timed after each of them: its ratio shows how far the machine's
// own speed moved between the two phases (the operations' ratios are not adjusted by it).
import { HttpClient } from '../lib/http.js'
import { catchUp } from '../lib/poller.js'
import { ratioAtMost } from '../lib/report.js'
import { median } from '../lib/stats.js'
import type { BenchContext } from '../lib/context.js'

async function timeOperations(ctx: BenchContext, phase: string) {
  const { plan } = ctx
  const [sender, poller] = ctx.population.growth
  const client = new HttpClient(ctx.server.base)
  const deadline = performance.now() + 120_000
  const within = () => {
    if (performance.now() > deadline) throw new Error(`growth (${phase}): operations not done within 120 s`)
  }
  try {
    const cursor = await catchUp(client, poller)
    const probes: number[] = []
    const probe = async (timed: boolean) => {
      const t0 = performance.now()
      const reply = await client.ok('whoami', {}, poller.token)
      if (timed) probes.push(reply.at - t0)
    }
    const polls: number[] = []
    for (let i = 0; i < plan.growthWarmup + plan.growthOps; i++) {
      within()
      const t0 = performance.now()
      const reply = await client.ok('update_data', { cursor, timeout: 0 }, poller.token)
      if (reply.body.msg_array.length + reply.body.events_array.length > 0) throw new Error('growth: the caught-up poll found entries')
      if (i >= plan.growthWarmup) polls.push(reply.at - t0)
      await probe(i >= plan.growthWarmup)
    }
    const sends: number[] = []
    for (let i = 0; i < plan.growthWarmup + plan.growthOps; i++) {
      within()
      const key = `growth:${phase}:${i}`
      const t0 = performance.now()
      const reply = await client.ok('send_msg', { to_uid: poller.uid, msg: key, client_msg_id: key }, sender.token)
      if (i >= plan.growthWarmup) sends.push(reply.at - t0)
      await probe(i >= plan.growthWarmup)
    }
    return { pollMs: median(polls), sendMs: median(sends), probeMs: median(probes) }
  } finally {
    client.close()
  }
}

export async function logGrowth(ctx: BenchContext): Promise<void> {
  const { plan, report, db } = ctx
  const empty = await timeOperations(ctx, 'empty')
  const { rows } = await db.knex.raw('SELECT count(*)::int8 AS n FROM events')
  report.add({ figure: 'poll_ms_empty', value: empty.pollMs, unit: 'ms', extra: { ops: plan.growthOps, events_in_table: rows[0].n } })
  report.add({ figure: 'send_ms_empty', value: empty.sendMs, unit: 'ms', extra: { ops: plan.growthOps } })
  report.add({ figure: 'whoami_ms_empty', value: empty.probeMs, unit: 'ms', note: 'reads no log: the machine itself' })

  const t0 = performance.now()
  await ctx.seeder.fillerEvents(ctx.population.growth, plan.growthEvents)
  // VACUUM ANALYZE rather than ANALYZE alone: autovacuum would otherwise pick the fresh
  // table up in the middle of the timings below.
  await db.knex.raw('VACUUM (ANALYZE) events')
  await db.knex.raw('ANALYZE users')
  // Flush the bulk insert now, so that no checkpoint it triggers runs during the timings.
  // (Needs superuser or pg_checkpoint on a DATABASE_URL server; without, the timings may include it.)
  await db.knex.raw('CHECKPOINT').catch((error) => ctx.log(`growth: no CHECKPOINT (${(error as Error).message})`))
  ctx.log(`growth: ${plan.growthEvents} events inserted and analysed in ${((performance.now() - t0) / 1000).toFixed(1)} s`)

  const grown = await timeOperations(ctx, 'grown')
  // The names stay the same in a smoke run (fewer events); the note says so.
  const note = plan.growthEvents === 1_000_000 ? undefined : `${plan.growthEvents} events (smoke)`
  report.add({ figure: 'poll_ms_1m', value: grown.pollMs, unit: 'ms', baseline: 'poll_ms_empty', target: ratioAtMost(1.2), note })
  report.add({ figure: 'send_ms_1m', value: grown.sendMs, unit: 'ms', baseline: 'send_ms_empty', target: ratioAtMost(1.2), note })
  report.add({ figure: 'whoami_ms_1m', value: grown.probeMs, unit: 'ms', baseline: 'whoami_ms_empty', note: 'its ratio is the drift of the machine between the phases' })
}
