// Held polls: what an idle connected client costs the server. At each level, that many
// users (one poll each, held up to HELD_POLL_SECONDS) hold a poll in the one server
// process; the figures are the server's resident memory per held poll, (RSS with them −
// RSS before) / n, both read after full garbage collections (so what the polls retain is
// counted, not the garbage left from opening them), and how fast the last-opened poll
// still answers when a message comes for it (the median of a few pings, one at a time,
// so a presence sweep that happens to run does not decide it).
//
// Each held poll is a socket in the server and one in the bench, so a level can need more
// descriptors than RLIMIT_NOFILE allows; it is then capped below the limit, and the report
// says so, rather than letting accept() fail with EMFILE.
import { HeldPolls } from '../lib/held-polls.js'
import { HttpClient } from '../lib/http.js'
import { fdLimit, openFds, rssAfterGcKb, rssKb, waitQuiet } from '../lib/processes.js'
import { atMost, below } from '../lib/report.js'
import { median, sleep } from '../lib/stats.js'
import type { BenchContext } from '../lib/context.js'
import type { BenchUser } from '../seed.js'

// Descriptors kept free for everything else the two processes open (database pools, the
// pinger's connection, files).
const FD_MARGIN = 150
// Longer than opening the largest level takes on a slow machine (110 s seen on 2 cores), so
// no poll's hold runs out and is opened again while the level is still being opened: that
// churn is not holding, and its garbage and extra connections would be counted as held.
// The bench starts the server with POLL_MAX_SECONDS at this value.
export const HELD_POLL_SECONDS = 300
const PING_TIMEOUT_MS = 10_000

/** How many more sockets both the server and the bench can open. */
async function descriptorRoom(serverPid: number): Promise<{ room: number; limit: number }> {
  const [serverLimit, serverOpen, ownLimit, ownOpen] = await Promise.all([fdLimit(serverPid), openFds(serverPid), fdLimit('self'), openFds('self')])
  return { room: Math.min(serverLimit - serverOpen, ownLimit - ownOpen) - FD_MARGIN, limit: Math.min(serverLimit, ownLimit) }
}

export async function heldPolls(ctx: BenchContext, cursors: Map<number, number>): Promise<void> {
  const { plan, report, server, log } = ctx
  const { pool, pinger } = ctx.population
  const top = Math.max(...plan.heldLevels)

  // A warm-up round, not measured: the first polls a process holds also pay for one-time
  // costs (code paths compiled, the database pool filled, buffers grown), several MB that
  // would otherwise be charged to the first level's polls.
  const warmup = new HeldPolls(server, { batch: plan.heldBatch, timeout: HELD_POLL_SECONDS, cursors, log, onMessages() {} })
  try {
    await warmup.open(pool.slice(0, Math.min(plan.heldLevels[0], 1000)), 60_000)
  } finally {
    await warmup.close()
  }

  for (const level of plan.heldLevels) {
    const { room, limit } = await descriptorRoom(server.pid)
    const planned = Math.min(level, room, pool.length)
    const capNote = planned < level ? `capped at ${planned} of ${level}: RLIMIT_NOFILE ${limit} per process` : undefined
    if (capNote) report.note(`held polls level ${level}: ${capNote}`)

    // Pings are recognised by their text; arrival times are kept per ping.
    const pingArrivals = new Map<string, number>()
    const pingWaiters = new Map<string, () => void>()
    const held = new HeldPolls(server, {
      batch: plan.heldBatch,
      timeout: HELD_POLL_SECONDS,
      cursors,
      log,
      onMessages(_user, messages, at) {
        for (const message of messages) {
          if (!message.text.startsWith('ping:')) continue
          pingArrivals.set(message.text, at)
          pingWaiters.get(message.text)?.()
        }
      },
    })
    try {
      await waitQuiet(10_000)
      const rssBefore = await rssAfterGcKb(server.pid, plan.gcSettleMs)
      const t0 = performance.now()
      const { opened } = await held.open(pool.slice(0, planned), 180_000)
      const openSeconds = (performance.now() - t0) / 1000
      log(`held polls: ${opened} opened in ${openSeconds.toFixed(1)} s`)
      await sleep(1000)
      const rssOpened = await rssKb(server.pid)
      const rssWith = await rssAfterGcKb(server.pid, plan.gcSettleMs)

      const last = held.lastOpened()
      const pings = last ? await ping(ctx, pinger, last, level, plan.heldPings, pingArrivals, pingWaiters) : []
      const { answered, errors } = held.stats()
      // answered_early: polls answered while held (a ping, or a hold that ran out) and opened
      // again at once, as a client would.
      // kb_per_poll_before_gc: the same growth read straight after opening, garbage included:
      // it moves with the collector's timing (9 to 21 KB between runs), so it is context only.
      const extra = {
        held: opened,
        open_seconds: +openSeconds.toFixed(1),
        rss_before_mb: +(rssBefore / 1024).toFixed(1),
        rss_with_mb: +(rssWith / 1024).toFixed(1),
        kb_per_poll_before_gc: opened > 0 ? +((rssOpened - rssBefore) / opened).toFixed(2) : null,
        answered_early: answered,
        errors,
      }
      report.add({
        figure: `held_polls_${level}_kb_per_poll`,
        value: opened > 0 ? (rssWith - rssBefore) / opened : Number.NaN,
        unit: 'KB',
        target: atMost(15, 'KB'),
        note: capNote,
        extra,
      })
      report.add({
        figure: `held_polls_${level}_last_poll_latency_ms`,
        value: pings.length === plan.heldPings ? median(pings) : Number.NaN,
        unit: 'ms',
        target: level === top ? below(20, 'ms') : undefined,
        note: pings.length < plan.heldPings ? `${plan.heldPings - pings.length} pings not answered` : capNote,
        extra: { pings: pings.map((p) => +p.toFixed(2)) },
      })
      report.add({ figure: `held_polls_${level}_held`, value: opened, unit: 'polls' })
    } finally {
      await held.close()
    }
  }
}

/** Times messages from `pinger` to `target` until they arrive in the target's held poll. */
async function ping(
  ctx: BenchContext,
  pinger: BenchUser,
  target: BenchUser,
  level: number,
  count: number,
  arrivals: Map<string, number>,
  waiters: Map<string, () => void>,
): Promise<number[]> {
  await ctx.seeder.befriend([[pinger, target]])
  const client = new HttpClient(ctx.server.base)
  const latencies: number[] = []
  try {
    await client.ok('whoami', {}, pinger.token) // the connection is open before the timing
    for (let i = 0; i < count; i++) {
      const text = `ping:${level}:${i}`
      const arrived = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), PING_TIMEOUT_MS)
        waiters.set(text, () => {
          clearTimeout(timer)
          resolve(true)
        })
      })
      const t0 = performance.now()
      const reply = await client.post('send_msg', { to_uid: target.uid, msg: text, client_msg_id: text }, pinger.token).catch(() => undefined)
      if (reply?.status === 200 && (await arrived)) latencies.push(arrivals.get(text)! - t0)
      waiters.delete(text)
      await sleep(200) // the target's next poll is held again
    }
  } finally {
    client.close()
  }
  return latencies
}
