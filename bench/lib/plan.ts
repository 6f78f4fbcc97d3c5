// How much of everything one run does. `--smoke` shrinks every count and duration so the
// whole run checks the machinery in well under a minute; the full plan stays under
// 10 minutes on 2 cores.

export interface Plan {
  smoke: boolean
  /** autocannon: per target (hello-world, then /whoami). */
  autocannonSeconds: number
  autocannonConnections: number
  /** The database ceiling: seconds per send-throughput level (half before, half after its sends), and single-client transactions timed. */
  dbSeconds: number
  dbLatencyTransactions: number
  /** Delivery latency: messages sent one at a time (plus untimed warm-up ones). */
  deliveryMessages: number
  deliveryWarmup: number
  /** Send throughput: concurrent senders per level, receivers shared by a level's senders. */
  throughputLevels: [number, number]
  throughputReceivers: number
  throughputSeconds: number
  /** How long to wait, after the last acknowledgement, for every message to arrive. */
  drainTimeoutMs: number
  /** Idle held polls per level, each level on its own seeded users; opened this many at a time. */
  heldLevels: number[]
  heldBatch: number
  /** Pings sent to the last-opened poll of a level (their median is the figure). */
  heldPings: number
  /** Wait after each full collection before memory is read (longer for larger heaps). */
  gcSettleMs: number
  /** Members of the fan-out room that hold polls (the sender comes on top). */
  roomMembers: number
  /** Growth: single operations timed per phase (after untimed warm-up ones). */
  growthOps: number
  growthWarmup: number
  growthUsers: number
  growthEvents: number
  /** Direct messages already stored (each with its log entry) before the server starts. */
  historyMessages: number
  /** Reconnect storm: offline users per run, and first polls in flight at once. */
  stormUsers: number
  stormConcurrency: number
  /** The whole run is abandoned (exit 1) past this. */
  hardLimitMs: number
}

export function makePlan(smoke: boolean): Plan {
  if (smoke) {
    return {
      smoke,
      autocannonSeconds: 1,
      autocannonConnections: 50,
      dbSeconds: 1,
      dbLatencyTransactions: 50,
      deliveryMessages: 50,
      deliveryWarmup: 5,
      throughputLevels: [16, 64],
      throughputReceivers: 16,
      throughputSeconds: 1,
      drainTimeoutMs: 5_000,
      heldLevels: [200],
      heldBatch: 200,
      heldPings: 3,
      gcSettleMs: 200,
      roomMembers: 100,
      growthOps: 50,
      growthWarmup: 10,
      growthUsers: 1000,
      growthEvents: 20_000,
      historyMessages: 1_000,
      stormUsers: 100,
      stormConcurrency: 20,
      hardLimitMs: 120_000,
    }
  }
  return {
    smoke,
    autocannonSeconds: 10,
    autocannonConnections: 50,
    dbSeconds: 10,
    dbLatencyTransactions: 200,
    deliveryMessages: 500,
    deliveryWarmup: 10,
    throughputLevels: [16, 64],
    throughputReceivers: 16,
    throughputSeconds: 10,
    drainTimeoutMs: 15_000,
    heldLevels: [1000, 5000, 20_000],
    heldBatch: 200,
    heldPings: 5,
    // A full collection of a heap holding 20,000 polls takes about 0.3 s here.
    gcSettleMs: 1000,
    roomMembers: 1000,
    growthOps: 200,
    growthWarmup: 20,
    growthUsers: 1000,
    growthEvents: 1_000_000,
    historyMessages: 200_000,
    stormUsers: 2000,
    stormConcurrency: 100,
    hardLimitMs: 14 * 60_000,
  }
}
