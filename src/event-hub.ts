// Wake-ups for held long-polls. One LISTEN connection per process receives the NOTIFYs
// that writers queue inside their transactions (delivered at commit, from any process),
// and fans them out in memory to the polls held for that user.
//
// A wake-up carries no data: the woken poll re-reads the log. So a lost or duplicated
// wake-up costs one read at worst, and after a reconnect every poll is woken to re-read.
import pg from 'pg'

export type WakeReason = 'event' | 'timeout' | 'superseded' | 'revoked' | 'shutdown' | 'gone'

export interface Waiter {
  readonly userId: number
  readonly sessionId: number
  /**
   * Resolves when something may have arrived since the last wait (at once if a wake-up
   * came in the meantime), or after `ms`, or when the poll must end.
   */
  wait(ms: number): Promise<WakeReason>
  wake(reason: WakeReason): void
  close(): void
}

export interface EventHubOptions {
  connectionString: string
  channel: string
  maxWaitersPerUser: number
  log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void }
  /** First reconnect delay; doubles up to 5 s. */
  reconnectDelayMs?: number
  /** True when the failure is the database being away, already logged (src/database-health.ts). */
  noteFailure?(error: unknown): boolean
}

const FINAL: ReadonlySet<WakeReason> = new Set(['superseded', 'revoked', 'shutdown', 'gone'])

class HeldPoll implements Waiter {
  private pending: WakeReason | undefined
  private resolve: ((reason: WakeReason) => void) | undefined
  private timer: NodeJS.Timeout | undefined

  constructor(
    readonly userId: number,
    readonly sessionId: number,
    private readonly release: (waiter: HeldPoll) => void,
  ) {}

  wait(ms: number): Promise<WakeReason> {
    if (this.pending) {
      const reason = this.pending
      if (!FINAL.has(reason)) this.pending = undefined
      return Promise.resolve(reason)
    }
    return new Promise((resolve) => {
      this.resolve = resolve
      this.timer = setTimeout(() => this.settle('timeout'), ms)
    })
  }

  wake(reason: WakeReason): void {
    // A final reason sticks; an `event` never overrides one.
    if (this.pending && FINAL.has(this.pending)) return
    if (this.resolve) this.settle(reason)
    else this.pending = reason
  }

  private settle(reason: WakeReason): void {
    clearTimeout(this.timer)
    const resolve = this.resolve
    this.resolve = undefined
    if (FINAL.has(reason)) this.pending = reason
    resolve?.(reason)
  }

  close(): void {
    clearTimeout(this.timer)
    this.release(this)
  }
}

export class EventHub {
  private readonly byUser = new Map<number, Set<HeldPoll>>()
  private client: pg.Client | undefined
  private connecting: Promise<void> | undefined
  private closed = false
  private reconnectDelay: number

  constructor(private readonly options: EventHubOptions) {
    this.reconnectDelay = options.reconnectDelayMs ?? 100
  }

  /** Number of polls held in this process. */
  get size(): number {
    let n = 0
    for (const set of this.byUser.values()) n += set.size
    return n
  }

  /**
   * Registers a held poll for the user. Call before reading the log so that a commit
   * between the read and the wait still wakes it. A new poll from the same session ends
   * the older one; beyond the per-user cap the oldest poll of the user ends.
   */
  async subscribe(userId: number, sessionId: number): Promise<Waiter> {
    await this.listen()
    let set = this.byUser.get(userId)
    if (!set) this.byUser.set(userId, (set = new Set()))
    for (const other of set) if (other.sessionId === sessionId) other.wake('superseded')
    const live = [...set].filter((w) => w.sessionId !== sessionId)
    for (const oldest of live.slice(0, Math.max(0, live.length - this.options.maxWaitersPerUser + 1))) oldest.wake('superseded')
    const waiter = new HeldPoll(userId, sessionId, (w) => this.release(w))
    set.add(waiter)
    return waiter
  }

  private release(waiter: HeldPoll): void {
    const set = this.byUser.get(waiter.userId)
    if (!set) return
    set.delete(waiter)
    if (set.size === 0) this.byUser.delete(waiter.userId)
  }

  /** The users with at least one poll held in this process. */
  heldUserIds(): IterableIterator<number> {
    return this.byUser.keys()
  }

  holdsPollOf(userId: number): boolean {
    return this.byUser.has(userId)
  }

  wakeUser(userId: number): void {
    for (const listener of this.wakeListeners) listener(userId)
    for (const waiter of this.byUser.get(userId) ?? []) waiter.wake('event')
  }

  /** Listeners told of every wake-up: a user's (their log may have grown) or everyone's. */
  private readonly wakeListeners = new Set<(userId: number | 'all') => void>()

  onWake(listener: (userId: number | 'all') => void): void {
    this.wakeListeners.add(listener)
  }

  /** Listeners told of every revoked session (a local logout or a NOTIFY), and of a lost LISTEN connection. */
  private readonly revocationListeners = new Set<(sessionId: number | 'all') => void>()

  onRevocation(listener: (sessionId: number | 'all') => void): void {
    this.revocationListeners.add(listener)
  }

  /** True while NOTIFYs arrive: revocations seen through this hub are then complete. */
  get listening(): boolean {
    return this.client !== undefined
  }

  revokeSession(sessionId: number): void {
    for (const listener of this.revocationListeners) listener(sessionId)
    for (const set of this.byUser.values()) for (const waiter of set) if (waiter.sessionId === sessionId) waiter.wake('revoked')
  }

  private wakeAll(reason: WakeReason): void {
    if (reason === 'event') for (const listener of this.wakeListeners) listener('all')
    for (const set of this.byUser.values()) for (const waiter of set) waiter.wake(reason)
  }

  /** Connects the LISTEN connection once; later calls share the same promise. */
  listen(): Promise<void> {
    if (this.client) return Promise.resolve()
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined))
    return this.connecting
  }

  private async connect(): Promise<void> {
    if (this.closed) throw new Error('event hub is closed')
    // TCP keepalive: a connection that died without closing is noticed (and reconnected)
    // rather than silently delivering no more wake-ups.
    const client = new pg.Client({ connectionString: this.options.connectionString, keepAlive: true, keepAliveInitialDelayMillis: 10_000 })
    client.on('notification', (message) => this.dispatch(message.payload ?? ''))
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
    // Closed while connecting: this connection must not outlive the hub.
    if (this.closed) {
      client.removeAllListeners('end')
      await client.end().catch(() => {})
      throw new Error('event hub is closed')
    }
    this.client = client
    // Whatever was looked up before now may have missed a revocation: start afresh.
    for (const listener of this.revocationListeners) listener('all')
    this.reconnectDelay = this.options.reconnectDelayMs ?? 100
  }

  /** `u:1,2,3` wakes those users' polls; `r:7` ends the polls of session 7; `a:` wakes every poll (a broadcast). */
  private dispatch(payload: string): void {
    if (payload.startsWith('a:')) return this.wakeAll('event')
    const ids = payload.slice(2).split(',').map(Number)
    if (payload.startsWith('u:')) for (const id of ids) this.wakeUser(id)
    else if (payload.startsWith('r:')) for (const id of ids) this.revokeSession(id)
  }

  private lost(client: pg.Client, error: Error): void {
    if (this.client !== client) return
    this.client = undefined
    client.removeAllListeners('end')
    client.end().catch(() => {})
    if (this.closed) return
    const outage = this.options.noteFailure?.(error) ?? false
    this.options.log[outage ? 'info' : 'warn']({ err: error }, 'event hub: LISTEN connection lost; reconnecting')
    for (const listener of this.revocationListeners) listener('all')
    // Notifications sent while disconnected are gone: every held poll re-reads the log.
    this.wakeAll('event')
    this.scheduleReconnect()
  }

  private scheduleReconnect(): void {
    const delay = this.reconnectDelay
    this.reconnectDelay = Math.min(this.reconnectDelay * 2, 5000)
    setTimeout(() => {
      if (this.closed || this.client) return
      this.listen()
        .then(() => {
          this.options.log.info({}, 'event hub: LISTEN connection restored')
          this.wakeAll('event')
        })
        .catch(() => this.scheduleReconnect())
    }, delay).unref()
  }

  /** Answers every held poll (they reply with what they have) and stops listening. */
  wakeAllForShutdown(): void {
    this.wakeAll('shutdown')
  }

  async close(): Promise<void> {
    this.closed = true
    this.wakeAll('shutdown')
    await this.connecting?.catch(() => {})
    const client = this.client
    this.client = undefined
    await client?.end().catch(() => {})
  }
}
