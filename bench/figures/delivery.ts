// Delivery latency: one sender, one receiver long-polling with its cursor. Messages go one
// at a time, the next only once the previous arrived, so each latency is the full path of
// one message through an otherwise idle server: send request, commit, NOTIFY, wake-up,
// re-read of the log, reply. Timed from just before the send to the receiver having read
// the reply. The same measurement with the receiver on a second server process on the same
// database times the wake-up across processes (LISTEN/NOTIFY), which the product promises
// within 100 ms.
import { HttpClient } from '../lib/http.js'
import { catchUp, PollLoop } from '../lib/poller.js'
import { below, ratioAtMost, zero } from '../lib/report.js'
import { maximum, percentile } from '../lib/stats.js'
import type { BenchContext } from '../lib/context.js'
import type { NodeProcess } from '../lib/processes.js'

/** A message one at a time that has not arrived by then is counted lost to a timeout. */
export const ARRIVAL_TIMEOUT_MS = 5_000

interface Deliveries {
  /** From just before each send to the receiver having read it (warm-up left out). */
  latencies: number[]
  /** The send's own round trip, to split the latency in two. */
  ackLatencies: number[]
  lost: number
  duplicated: number
  reordered: number
  extra: { messages: number; send_errors: number; arrival_timeouts: number }
}

/**
 * Sends the plan's delivery messages one at a time through the measured server, received by
 * a poll on `pollBase`. `label` tells this run's messages (and their client_msg_ids) apart
 * from another run's.
 */
async function measureDeliveries(ctx: BenchContext, pollBase: string, label: string): Promise<Deliveries> {
  const { plan, server } = ctx
  const { sender, receiver } = ctx.population.delivery
  // A connection each, as the two people's devices hold their own.
  const senderConnection = new HttpClient(server.base, { oneConnection: true })
  const receiverConnection = new HttpClient(pollBase, { oneConnection: true })
  const pattern = new RegExp(`^${label}:(\\d+)$`)
  const total = plan.deliveryWarmup + plan.deliveryMessages
  const arrivals = new Map<number, number[]>() // message number → arrival times (more than one: duplicated)
  const order: number[] = []
  const waiting = new Map<number, () => void>()

  const receiverLoop = new PollLoop(receiverConnection, receiver, await catchUp(receiverConnection, receiver), {
    timeout: 25,
    deadline: performance.now() + 120_000,
    maxPolls: total * 4 + 100,
    onMessages(messages, at) {
      for (const message of messages) {
        const n = Number(pattern.exec(message.text)?.[1])
        if (!Number.isInteger(n)) continue
        arrivals.set(n, [...(arrivals.get(n) ?? []), at])
        order.push(n)
        waiting.get(n)?.()
      }
    },
  }).start()

  const latencies: number[] = []
  const ackLatencies: number[] = []
  const acked = new Set<number>()
  let sendErrors = 0
  let timedOut = 0
  try {
    await senderConnection.ok('whoami', {}, sender.token) // the sender's connection is open before the first timing
    const deadline = performance.now() + 90_000
    for (let n = 0; n < total && performance.now() < deadline; n++) {
      const arrived = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), ARRIVAL_TIMEOUT_MS)
        waiting.set(n, () => {
          clearTimeout(timer)
          resolve(true)
        })
      })
      const t0 = performance.now()
      const reply = await senderConnection.post('send_msg', { to_uid: receiver.uid, msg: `${label}:${n}`, client_msg_id: `${label}:${n}` }, sender.token).catch(() => undefined)
      if (reply?.status === 200) {
        acked.add(n)
        if (n >= plan.deliveryWarmup) ackLatencies.push(reply.at - t0)
      } else {
        sendErrors++
      }
      const ok = await arrived
      waiting.delete(n)
      if (!ok) {
        timedOut++
        continue
      }
      if (n >= plan.deliveryWarmup) latencies.push(arrivals.get(n)![0] - t0)
    }
  } finally {
    await receiverLoop.stop()
    senderConnection.close()
    receiverConnection.close()
  }

  // Exactly-once is owed to acknowledged messages.
  const lost = [...acked].filter((n) => !arrivals.has(n)).length
  const duplicated = [...arrivals.values()].reduce((sum, times) => sum + times.length - 1, 0)
  let reordered = 0
  for (let i = 1; i < order.length; i++) if (order[i] < order[i - 1]) reordered++
  return { latencies, ackLatencies, lost, duplicated, reordered, extra: { messages: latencies.length, send_errors: sendErrors, arrival_timeouts: timedOut } }
}

export async function deliveryLatency(ctx: BenchContext): Promise<void> {
  const { report } = ctx
  const { latencies, ackLatencies, lost, duplicated, reordered, extra } = await measureDeliveries(ctx, ctx.server.base, 'dl')
  // Against one durable transaction of the same run: a send can be no faster than a commit.
  report.add({ figure: 'delivery_p50_ms', value: percentile(latencies, 50), unit: 'ms', baseline: 'db_tx_ms', target: ratioAtMost(1.5), extra })
  report.add({ figure: 'delivery_p95_ms', value: percentile(latencies, 95), unit: 'ms', baseline: 'db_tx_ms' })
  report.add({ figure: 'delivery_p99_ms', value: percentile(latencies, 99), unit: 'ms', baseline: 'db_tx_ms', target: ratioAtMost(5) })
  report.add({ figure: 'send_ack_p50_ms', value: percentile(ackLatencies, 50), unit: 'ms', baseline: 'db_tx_ms', target: ratioAtMost(1.3), note: "the send's own round trip" })
  report.add({ figure: 'delivery_max_ms', value: maximum(latencies), unit: 'ms', baseline: 'db_tx_ms' })
  report.add({ figure: 'delivery_lost', value: lost, unit: 'msgs', target: zero })
  report.add({ figure: 'delivery_duplicated', value: duplicated, unit: 'msgs', target: zero })
  report.add({ figure: 'delivery_reordered', value: reordered, unit: 'msgs', target: zero })
}

/** The receiver polls a second server process (`pollServer`) on the same database. */
export async function deliveryAcrossProcesses(ctx: BenchContext, pollServer: NodeProcess): Promise<void> {
  const { report } = ctx
  const { latencies, lost, duplicated, reordered, extra } = await measureDeliveries(ctx, pollServer.base, 'dx')
  const note = 'sent through the measured server, polled on a second one'
  report.add({ figure: 'delivery_across_processes_p50_ms', value: percentile(latencies, 50), unit: 'ms', baseline: 'delivery_p50_ms', note, extra })
  report.add({ figure: 'delivery_across_processes_p99_ms', value: percentile(latencies, 99), unit: 'ms', baseline: 'delivery_p99_ms', target: below(100, 'ms'), note })
  report.add({ figure: 'delivery_across_processes_lost', value: lost, unit: 'msgs', target: zero })
  report.add({ figure: 'delivery_across_processes_duplicated', value: duplicated, unit: 'msgs', target: zero })
  report.add({ figure: 'delivery_across_processes_reordered', value: reordered, unit: 'msgs', target: zero })
}
