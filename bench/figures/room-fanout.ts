// Room fan-out: one message to a room whose members all hold a poll. The send appends to
// every member's log in one statement and wakes them all; the figure is how long until the
// last member has read it (and the median member), timed from just before the send. An
// untimed message goes first, as the delivery figure's warm-up ones do: the first room send
// of the run is otherwise the first time the server's code renders a thousand entries at
// once, and the figure would time V8 compiling it.
import { HeldPolls } from '../lib/held-polls.js'
import { HttpClient } from '../lib/http.js'
import { waitQuiet } from '../lib/processes.js'
import { below, zero } from '../lib/report.js'
import { maximum, percentile, sleep } from '../lib/stats.js'
import type { BenchContext } from '../lib/context.js'

const ARRIVAL_TIMEOUT_MS = 15_000

export async function roomFanout(ctx: BenchContext, cursors: Map<number, number>): Promise<void> {
  const { plan, report, server, log } = ctx
  const { pool, roomOwner, roomId } = ctx.population
  const members = pool.slice(0, plan.roomMembers)
  // The message being waited for, and when each member's poll brought it (member uid → arrival).
  let text = ''
  let arrivals = new Map<number, number>()
  let allArrived: () => void = () => {}

  const held = new HeldPolls(server, {
    batch: plan.heldBatch,
    timeout: 60,
    cursors,
    log,
    onMessages(user, messages, at) {
      if (!messages.some((m) => m.room_id === roomId && m.text === text) || arrivals.has(user.uid)) return
      arrivals.set(user.uid, at)
      if (arrivals.size === members.length) allArrived()
    },
  })
  const client = new HttpClient(server.base)
  /** Sends `message` to the room and waits (bounded) for every member to have it. */
  const fanOut = async (message: string) => {
    text = message
    arrivals = new Map()
    const everyone = new Promise<void>((resolve) => (allArrived = resolve))
    await sleep(500)
    await client.ok('whoami', {}, roomOwner.token)
    const t0 = performance.now()
    const reply = await client.ok('send_msg', { room_id: roomId, msg: message, client_msg_id: message }, roomOwner.token)
    await Promise.race([everyone, sleep(ARRIVAL_TIMEOUT_MS)])
    return { t0, reply, arrivals }
  }
  try {
    const { opened } = await held.open(members, 120_000)
    if (opened < members.length) throw new Error(`room fan-out: only ${opened} of ${members.length} member polls opened`)
    const warmUp = await fanOut('room:warm-up')
    if (warmUp.arrivals.size < members.length) log(`room fan-out: the warm-up message reached ${warmUp.arrivals.size} of ${members.length} members`)
    // The members' next polls taken and the server quiet, so the timed message starts alone.
    await waitQuiet(10_000)
    const { t0, reply, arrivals } = await fanOut('room:fanout')
    const latencies = [...arrivals.values()].map((at) => at - t0)
    const lost = members.length - arrivals.size
    report.add({
      figure: 'room_fanout_last_ms',
      value: lost === 0 ? maximum(latencies) : Number.NaN,
      unit: 'ms',
      target: below(300, 'ms'),
      extra: { members: members.length },
    })
    report.add({ figure: 'room_fanout_p50_ms', value: percentile(latencies, 50), unit: 'ms' })
    report.add({ figure: 'room_fanout_ack_ms', value: reply.at - t0, unit: 'ms', note: 'the send itself' })
    report.add({ figure: 'room_fanout_lost', value: lost, unit: 'members', target: zero })
  } finally {
    client.close()
    await held.close()
  }
}
