// Send throughput: N senders, each sending as fast as its acknowledgements come back, to
// 16 receivers that long-poll throughout. Every message is checked: an acknowledged one
// must arrive exactly once, and a sender's messages must arrive in the order sent. The
// drain is the time from the last acknowledgement until every receiver has everything.
// A send that fails is retried with the same client_msg_id (at most 3 tries), as a
// client would, so a retry can never create a second message.
import { databaseCeilingHalf, reportDatabaseCeiling } from './baselines.js'
import { HttpClient } from '../lib/http.js'
import { cpuSplit, machineCores } from '../lib/processes.js'
import { catchUp, PollLoop } from '../lib/poller.js'
import { below, ratioAtLeast, zero } from '../lib/report.js'
import { percentile, sleep } from '../lib/stats.js'
import type { BenchContext } from '../lib/context.js'

const MAX_SENDS_PER_SENDER = 100_000
const TRIES = 3

/**
 * `variant`: the same run against another server (e.g. more workers), its figures named with
 * `suffix` and compared with the first run's sends per second.
 */
export async function sendThroughput(ctx: BenchContext, levelIndex: number, variant?: { suffix: string }): Promise<void> {
  const { plan, report, server } = ctx
  const { senders, receivers } = ctx.population.throughput[levelIndex]
  const level = senders.length
  // Message texts and client_msg_ids are the run's own (a repeat would be taken for a retry).
  const prefix = `tp${level}${variant ? variant.suffix.replace(/\W/g, '') : ''}`
  // A connection per client, as each person's device holds its own.
  const connections = [...receivers, ...senders].map(() => new HttpClient(server.base, { oneConnection: true }))
  const receiverConnection = (i: number) => connections[i]
  const senderConnection = (i: number) => connections[receivers.length + i]

  const startedAt = new Map<string, number>() // message key → first send attempt
  const arrivals = new Map<number, number>() // msg_id → number of arrivals
  const firstArrival = new Map<number, number>()
  const ackedAt = new Map<number, number>() // msg_id → acknowledgement
  const lastSeq = new Map<number, number>() // sender index → highest seq received
  const pending = new Set<number>() // acknowledged, not arrived yet
  const latencies: number[] = []
  const ackLatencies: number[] = []
  let reordered = 0
  let errors = 0

  const ceiling = variant ? [] : [await databaseCeilingHalf(plan, ctx.db, level, 10_000 * (levelIndex + 1))]
  const deadline = performance.now() + plan.throughputSeconds * 1000 + plan.drainTimeoutMs + 60_000
  const loops = await Promise.all(
    receivers.map(async (receiver, i) =>
      new PollLoop(receiverConnection(i), receiver, await catchUp(receiverConnection(i), receiver), {
        timeout: 25,
        deadline,
        maxPolls: 1_000_000,
        onMessages(messages, at) {
          for (const message of messages) {
            const match = /^tp\w+:(\d+):(\d+)$/.exec(message.text)
            if (!match) continue
            const count = (arrivals.get(message.msg_id) ?? 0) + 1
            arrivals.set(message.msg_id, count)
            if (count > 1) continue
            firstArrival.set(message.msg_id, at)
            pending.delete(message.msg_id)
            const sender = Number(match[1])
            const seq = Number(match[2])
            if (seq < (lastSeq.get(sender) ?? -1)) reordered++
            else lastSeq.set(sender, seq)
            const t0 = startedAt.get(message.text)
            if (t0 !== undefined) latencies.push(at - t0)
          }
        },
      }).start(),
    ),
  )

  let acked = 0
  let sendStart = 0
  let lastAck = 0
  let cpuBefore: Awaited<ReturnType<typeof cpuSplit>> | undefined
  let cpuDuring: ReturnType<typeof cpuPerSend> | undefined
  try {
    await sleep(300) // the receivers' polls are held before the first send
    await Promise.all(senders.map((s, i) => senderConnection(i).ok('whoami', {}, s.token))) // connections open
    cpuBefore = await cpuSplit(server.pid)
    sendStart = performance.now()
    const sendDeadline = sendStart + plan.throughputSeconds * 1000
    await Promise.all(
      senders.map(async (sender, i) => {
        const to = receivers[i % receivers.length]
        for (let seq = 0; seq < MAX_SENDS_PER_SENDER && performance.now() < sendDeadline; seq++) {
          const key = `${prefix}:${i}:${seq}`
          startedAt.set(key, performance.now())
          for (let attempt = 0; attempt < TRIES; attempt++) {
            const reply = await senderConnection(i).post('send_msg', { to_uid: to.uid, msg: key, client_msg_id: key }, sender.token).catch(() => undefined)
            if (reply?.status === 200) {
              ackedAt.set(reply.body.msg_id, reply.at)
              ackLatencies.push(reply.at - startedAt.get(key)!)
              if (!arrivals.has(reply.body.msg_id)) pending.add(reply.body.msg_id)
              acked++
              lastAck = Math.max(lastAck, reply.at)
              break
            }
            errors++
          }
        }
      }),
    )
    cpuDuring = cpuPerSend(cpuBefore!, await cpuSplit(server.pid), acked, (performance.now() - sendStart) / 1000)
    // Drain: wait (bounded) until every acknowledged message has arrived.
    const drainDeadline = performance.now() + plan.drainTimeoutMs
    while (pending.size > 0 && performance.now() < drainDeadline) await sleep(2)
  } finally {
    await Promise.all(loops.map((loop) => loop.stop()))
    for (const connection of connections) connection.close()
  }

  if (!variant) {
    ceiling.push(await databaseCeilingHalf(plan, ctx.db, level, 10_000 * (levelIndex + 1) + 5000))
    reportDatabaseCeiling(report, level, ceiling)
  }

  const missing = [...ackedAt.keys()].filter((id) => !arrivals.has(id))
  const duplicated = [...arrivals.values()].reduce((sum, n) => sum + n - 1, 0)
  const unackedArrived = [...arrivals.keys()].filter((id) => !ackedAt.has(id)).length
  let lastArrival = 0
  for (const id of ackedAt.keys()) lastArrival = Math.max(lastArrival, firstArrival.get(id) ?? 0)
  const drainMs = missing.length > 0 ? Number.NaN : Math.max(0, lastArrival - lastAck)
  const seconds = (lastAck - sendStart) / 1000

  const suffix = variant ? `_${variant.suffix}` : ''
  const name = (what: string) => `sends_${level}${suffix}_${what}`
  const loaded = !variant && level === Math.max(...plan.throughputLevels)
  report.add({
    figure: `sends_per_s_${level}${suffix}`,
    value: acked / seconds,
    unit: 'msg/s',
    // Durable sends against the database's own one-transaction-per-send ceiling; a variant
    // against the first run.
    baseline: variant ? `sends_per_s_${level}` : `db_tps_${level}`,
    target: variant ? undefined : ratioAtLeast(loaded ? 1.2 : 1.0),
    extra: {
      acked,
      seconds: Number(seconds.toFixed(2)),
      receivers: receivers.length,
      send_ack_p50_ms: +percentile(ackLatencies, 50).toFixed(3),
      send_ack_p99_ms: +percentile(ackLatencies, 99).toFixed(3),
      unacked_arrived: unackedArrived,
    },
  })
  report.add({ figure: name('errors'), value: errors, unit: 'errors' })
  // Where a send's CPU goes, while the senders run (the drain and the ceiling excluded): what
  // bounds sends per second when the load generator, the server and PostgreSQL share the cores.
  // Not for a variant: its workers are children of the process measured as the server.
  if (cpuDuring && !variant) {
    report.add({ figure: name('cpu_server_ms_per_send'), value: cpuDuring.server, unit: 'ms' })
    report.add({ figure: name('cpu_bench_ms_per_send'), value: cpuDuring.bench, unit: 'ms', note: 'the load generator' })
    if (ctx.db.embedded) report.add({ figure: name('cpu_database_ms_per_send'), value: cpuDuring.database, unit: 'ms' })
    report.add({ figure: name('cpu_machine_ms_per_send'), value: cpuDuring.machine, unit: 'ms', note: 'every process on the machine' })
    const cores = await machineCores()
    report.add({ figure: name('busy_cores'), value: cpuDuring.busyCores, unit: 'cores', note: `of ${cores}` })
    // The cores the ceiling's rate would take at this CPU per send. When that is more than
    // the machine has, no pacing of the same work can reach the ceiling here.
    const coresAtCeiling = (cpuDuring.machine * (report.value(`db_tps_${level}`) ?? Number.NaN)) / 1000
    report.add({
      figure: name('cores_at_ceiling'),
      value: coresAtCeiling,
      unit: 'cores',
      note: `this CPU per send at db_tps_${level}; of ${cores}${coresAtCeiling > cores ? ': bounds the target in this run' : ''}`,
    })
  }
  report.add({ figure: name('delivery_p50_ms'), value: percentile(latencies, 50), unit: 'ms' })
  report.add({ figure: name('delivery_p99_ms'), value: percentile(latencies, 99), unit: 'ms', target: loaded ? below(100, 'ms') : undefined })
  report.add({
    figure: name('drain_ms'),
    value: drainMs,
    unit: 'ms',
    target: loaded ? below(1000, 'ms') : undefined,
    note: missing.length > 0 ? `${missing.length} not arrived within ${plan.drainTimeoutMs} ms` : undefined,
  })
  report.add({ figure: name('lost'), value: missing.length, unit: 'msgs', target: zero })
  report.add({ figure: name('duplicated'), value: duplicated, unit: 'msgs', target: zero })
  report.add({ figure: name('reordered'), value: reordered, unit: 'msgs', target: zero })
}

/**
 * CPU milliseconds per acknowledged send between two readings `seconds` apart, by process
 * and for the whole machine, and the cores the machine kept busy.
 */
function cpuPerSend(before: Awaited<ReturnType<typeof cpuSplit>>, after: Awaited<ReturnType<typeof cpuSplit>>, sends: number, seconds: number) {
  const per = (cpuSeconds: number) => (sends > 0 ? (1000 * cpuSeconds) / sends : Number.NaN)
  const bench = after.bench - before.bench
  const server = after.server - before.server
  const machine = after.machine - before.machine
  return { bench: per(bench), server: per(server), database: per(after.tree - before.tree - bench - server), machine: per(machine), busyCores: machine / seconds }
}
