// Wake-ups: how a commit reaches the polls it concerns, on every process.
//
// A writer queues a NOTIFY inside its transaction; PostgreSQL delivers it at commit, to
// every process. Its payload says whom to wake: `u:1,2,3` the polls of these users (their
// logs grew), `a:` every poll (a broadcast), `r:5,6` the polls of these sessions, which end
// (logged out). It carries no data: a woken poll reads the log. So a lost or repeated
// wake-up costs one read at worst, and after the LISTEN connection was lost every poll is
// woken to read again (`missed`).
//
// Each process has one LISTEN connection (WakeUpListener), which hands every wake-up to its
// subscribers: the polls held here (HeldPolls), what is known of the logs' ends (read.ts)
// and the session cache.
import pg from 'pg'
import type { Clock, ClockTimer } from '../clock.js'

/** A NOTIFY payload holds at most 8000 bytes: 400 ids of up to 16 digits and a comma fit. */
export const IDS_PER_NOTIFY = 400

export type WakeUp =
  | { kind: 'users'; userIds: number[] }
  | { kind: 'everyone' }
  | { kind: 'revoked'; sessionIds: number[] }
  /** The LISTEN connection was lost or restored: any wake-up may have been missed. */
  | { kind: 'missed' }

/** The LISTEN/NOTIFY channel of a schema's event log. */
export const channelOf = (schema: string) => `${schema}_events`

/** A statement waking the users in `column` of the rows of `source`, in NOTIFYs of IDS_PER_NOTIFY. */
export const wakeUsersSql = (channel: string, source: string, column: string) =>
  `SELECT pg_notify(${channel}, 'u:' || string_agg(user_id::text, ','))
     FROM (SELECT user_id, (row_number() OVER () - 1) / ${IDS_PER_NOTIFY} AS chunk
             FROM (SELECT DISTINCT ${column} AS user_id FROM ${source}) woken) numbered
    GROUP BY chunk`

/** An expression waking every poll. */
export const wakeEveryoneSql = (channel: string) => `pg_notify(${channel}, 'a:')`

/** The payloads ending the polls of these sessions. */
export function revocationPayloads(sessionIds: number[]): string[] {
  const payloads: string[] = []
  for (let i = 0; i < sessionIds.length; i += IDS_PER_NOTIFY) payloads.push(`r:${sessionIds.slice(i, i + IDS_PER_NOTIFY).join(',')}`)
  return payloads
}

function decode(payload: string): WakeUp | undefined {
  if (payload.startsWith('a:')) return { kind: 'everyone' }
  const ids = payload.slice(2).split(',').map(Number)
  if (payload.startsWith('u:')) return { kind: 'users', userIds: ids }
  if (payload.startsWith('r:')) return { kind: 'revoked', sessionIds: ids }
  return undefined
}

export interface ListenerOptions {
  connectionString: string
  channel: string
  log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void }
  /** True when the failure is the database being away, already logged (src/database-health.ts). */
  noteFailure?(error: unknown): boolean
  /** First reconnect delay; doubles up to 5 s. */
  reconnectDelayMs?: number
}

/** The process's LISTEN connection: connects on first use, reconnects by itself, hands wake-ups on. */
export class WakeUpListener {
  private client: pg.Client | undefined
  private connecting: Promise<void> | undefined
  private closed = false
  private reconnectDelay: number
  private readonly subscribers: ((wakeUp: WakeUp) => void)[] = []

  constructor(private readonly options: ListenerOptions) {
    this.reconnectDelay = options.reconnectDelayMs ?? 100
  }

  /** Every wake-up, from a NOTIFY or from this process, goes to `subscriber`. */
  subscribe(subscriber: (wakeUp: WakeUp) => void): void {
    this.subscribers.push(subscriber)
  }

  /** Hands a wake-up to the subscribers (this process's own, e.g. a logout here, at once). */
  dispatch(wakeUp: WakeUp): void {
    for (const subscriber of this.subscribers) subscriber(wakeUp)
  }

  /** True while NOTIFYs arrive: what the subscribers learnt since is then complete. */
  get listening(): boolean {
    return this.client !== undefined
  }

  /** Connects the LISTEN connection once; later calls share the same promise. */
  listen(): Promise<void> {
    if (this.client) return Promise.resolve()
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined))
    return this.connecting
  }

  private async connect(): Promise<void> {
    if (this.closed) throw new Error('the wake-up listener is closed')
    // TCP keepalive: a connection that died without closing is noticed (and reconnected)
    // rather than silently delivering no more wake-ups.
    const client = new pg.Client({ connectionString: this.options.connectionString, keepAlive: true, keepAliveInitialDelayMillis: 10_000 })
    client.on('notification', (message) => {
      const wakeUp = decode(message.payload ?? '')
      if (wakeUp) this.dispatch(wakeUp)
    })
    client.on('error', (error) => this.lost(client, error))
    client.on('end', () => this.lost(client, new Error('connection ended')))
    try {
      await client.connect()
      await client.query(`LISTEN ${pg.escapeIdentifier(this.options.channel)}`)
    } catch (error) {
      client.removeAllListeners('end')
      await client.end().catch(() => {})
      throw error
    }
    // Closed while connecting: this connection must not outlive the listener.
    if (this.closed) {
      client.removeAllListeners('end')
      await client.end().catch(() => {})
      throw new Error('the wake-up listener is closed')
    }
    this.client = client
    // Whatever was learnt before now may lack a wake-up: start afresh.
    this.dispatch({ kind: 'missed' })
    this.reconnectDelay = this.options.reconnectDelayMs ?? 100
  }

  private lost(client: pg.Client, error: Error): void {
    if (this.client !== client) return
    this.client = undefined
    client.removeAllListeners('end')
    client.end().catch(() => {})
    if (this.closed) return
    const outage = this.options.noteFailure?.(error) ?? false
    this.options.log[outage ? 'info' : 'warn']({ err: error }, 'event log: LISTEN connection lost; reconnecting')
    this.dispatch({ kind: 'missed' })
    this.scheduleReconnect()
  }

  private scheduleReconnect(): void {
    const delay = this.reconnectDelay
    this.reconnectDelay = Math.min(this.reconnectDelay * 2, 5000)
    setTimeout(() => {
      if (this.closed || this.client) return
      this.listen()
        .then(() => this.options.log.info({}, 'event log: LISTEN connection restored'))
        .catch(() => this.scheduleReconnect())
    }, delay).unref()
  }

  async close(): Promise<void> {
    this.closed = true
    await this.connecting?.catch(() => {})
    const client = this.client
    this.client = undefined
    await client?.end().catch(() => {})
  }
}

export type WakeReason = 'event' | 'timeout' | 'superseded' | 'revoked' | 'shutdown' | 'gone'

/** Reasons that end a poll: once given, they stick. */
const FINAL: ReadonlySet<WakeReason> = new Set(['superseded', 'revoked', 'shutdown', 'gone'])

export interface Waiter {
  readonly userId: number
  readonly sessionId: number
  /**
   * Resolves when something may have arrived since the last wait (at once if a wake-up
   * came in the meantime), after `ms` on the app's clock, or when the poll must end.
   */
  wait(ms: number): Promise<WakeReason>
  wake(reason: WakeReason): void
  close(): void
}

class HeldPoll implements Waiter {
  private pending: WakeReason | undefined
  private resolve: ((reason: WakeReason) => void) | undefined
  private timer: ClockTimer | undefined

  constructor(
    readonly userId: number,
    readonly sessionId: number,
    private readonly clock: Clock,
    private readonly release: (poll: HeldPoll) => void,
  ) {}

  wait(ms: number): Promise<WakeReason> {
    if (this.pending) {
      const reason = this.pending
      if (!FINAL.has(reason)) this.pending = undefined
      return Promise.resolve(reason)
    }
    return new Promise((resolve) => {
      this.resolve = resolve
      this.timer = this.clock.setTimeout(() => this.settle('timeout'), ms)
    })
  }

  wake(reason: WakeReason): void {
    // A final reason sticks; an `event` never overrides one.
    if (this.pending && FINAL.has(this.pending)) return
    if (this.resolve) this.settle(reason)
    else this.pending = reason
  }

  private settle(reason: WakeReason): void {
    this.timer?.clear()
    const resolve = this.resolve
    this.resolve = undefined
    if (FINAL.has(reason)) this.pending = reason
    resolve?.(reason)
  }

  close(): void {
    this.timer?.clear()
    this.release(this)
  }
}

/** The polls this process holds, by user: woken by wake-ups, capped per user. */
export class HeldPolls {
  private readonly byUser = new Map<number, Set<HeldPoll>>()

  constructor(
    private readonly maxPerUser: number,
    private readonly clock: Clock,
  ) {}

  /** Number of polls held in this process. */
  get size(): number {
    let n = 0
    for (const polls of this.byUser.values()) n += polls.size
    return n
  }

  /**
   * Registers a held poll for the user. Call before reading the log so that a commit
   * between the read and the wait still wakes it. A new poll from the same session ends
   * the older one; beyond the per-user cap the oldest poll of the user ends.
   */
  subscribe(userId: number, sessionId: number): Waiter {
    let polls = this.byUser.get(userId)
    if (!polls) this.byUser.set(userId, (polls = new Set()))
    for (const other of polls) if (other.sessionId === sessionId) other.wake('superseded')
    const live = [...polls].filter((poll) => poll.sessionId !== sessionId)
    for (const oldest of live.slice(0, Math.max(0, live.length - this.maxPerUser + 1))) oldest.wake('superseded')
    const poll = new HeldPoll(userId, sessionId, this.clock, (done) => this.release(done))
    polls.add(poll)
    return poll
  }

  private release(poll: HeldPoll): void {
    const polls = this.byUser.get(poll.userId)
    if (!polls) return
    polls.delete(poll)
    if (polls.size === 0) this.byUser.delete(poll.userId)
  }

  /** The users with at least one poll held in this process. */
  heldUserIds(): IterableIterator<number> {
    return this.byUser.keys()
  }

  holdsPollOf(userId: number): boolean {
    return this.byUser.has(userId)
  }

  /** What a wake-up means for the polls held here. */
  handle(wakeUp: WakeUp): void {
    switch (wakeUp.kind) {
      case 'users':
        for (const userId of wakeUp.userIds) for (const poll of this.byUser.get(userId) ?? []) poll.wake('event')
        return
      case 'revoked': {
        const ended = new Set(wakeUp.sessionIds)
        for (const polls of this.byUser.values()) for (const poll of polls) if (ended.has(poll.sessionId)) poll.wake('revoked')
        return
      }
      default:
        this.wakeAll('event')
    }
  }

  /** Wakes every poll held here: they read and answer (`shutdown`) or read again (`event`). */
  wakeAll(reason: WakeReason): void {
    for (const polls of this.byUser.values()) for (const poll of polls) poll.wake(reason)
  }
}
