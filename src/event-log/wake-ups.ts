// Wake-ups: how a commit reaches the polls it concerns, on every process.
//
// A writer queues a NOTIFY inside its transaction; PostgreSQL delivers it at commit, to
// every process. Its payload says whom to wake: `u:1@p,2@q` the polls of these users, whose
// logs grew up to those positions, `a:` every poll (a broadcast), `r:5,6` the polls of these
// sessions, which end (logged out); `p:1,2` wakes no poll: these users' profiles changed (for
// the caches of src/notified-cache.ts); `y:<notice>|1,2` hands these users' held polls an
// ephemeral typing notice (JSON), which is never stored and moves no cursor. It carries no entries: a woken poll reads the log (a poll
// already past the position has nothing to read). So a lost or repeated wake-up costs one
// read at worst, and after the LISTEN connection was lost every poll is woken to read again
// (`missed`).
//
// The writer's own process does better, once the append committed and its NOTIFY arrived:
// it hands the appended entries to its held polls (`entries`), each with the log's head
// before them. A poll whose cursor is that head has exactly these entries after its
// cursor, and answers with them without reading (why: src/event-log/index.ts).
//
// Each process has one LISTEN connection (WakeUpListener), which hands every wake-up to its
// subscribers: the polls held here (HeldPolls), what is known of the logs' ends (read.ts)
// and the session cache.
import pg from 'pg'
import type { Clock, ClockTimer } from '../clock.js'
import type { LogEntry } from './read.js'

/** A NOTIFY payload holds at most 8000 bytes: 250 ids and positions of up to 16 digits fit. */
export const IDS_PER_NOTIFY = 250

/** What one commit appended to one user's log, for the polls held in the writer's process. */
export interface Appended {
  userId: number
  /** The log's head before these entries. */
  prev: number
  /** The entries, in log order, as a read renders them. */
  entries: LogEntry[]
}

/** Someone is typing in a conversation of the receiver's, until `expires_at` (UNIX ms). */
export interface TypingNotice {
  uid: number
  login: string
  /** In a direct chat: the typist's uid, as the receiver names the chat. */
  to_uid?: number
  room_id?: number
  expires_at: number
}

export type WakeUp =
  /** These users' logs grew, up to `ends` (positions, in the same order; Infinity: not said). */
  | { kind: 'users'; userIds: number[]; ends: number[] }
  | { kind: 'entries'; appended: Appended[] }
  | { kind: 'everyone' }
  | { kind: 'revoked'; sessionIds: number[] }
  /** These users' own profiles changed (wakes no poll). */
  | { kind: 'profiles'; userIds: number[] }
  /** An ephemeral typing notice for these users' held polls. */
  | { kind: 'typing'; userIds: number[]; notice: TypingNotice }
  /** The LISTEN connection was lost or restored: any wake-up may have been missed. */
  | { kind: 'missed' }

/** The LISTEN/NOTIFY channel of a schema's event log. */
export const channelOf = (schema: string) => `${schema}_events`

/**
 * A statement waking the users in `userColumn` of the rows of `source` up to their newest
 * `posColumn`, in NOTIFYs of IDS_PER_NOTIFY users.
 */
export const wakeUsersSql = (channel: string, source: string, userColumn: string, posColumn: string) =>
  `SELECT pg_notify(${channel}, 'u:' || string_agg(user_id || '@' || pos, ','))
     FROM (SELECT user_id, pos, (row_number() OVER () - 1) / ${IDS_PER_NOTIFY} AS chunk
             FROM (SELECT ${userColumn} AS user_id, max(${posColumn}) AS pos FROM ${source} GROUP BY ${userColumn}) woken) numbered
    GROUP BY chunk`

/** An expression waking every poll. */
export const wakeEveryoneSql = (channel: string) => `pg_notify(${channel}, 'a:')`

/** The payloads naming these ids under a prefix, IDS_PER_NOTIFY per NOTIFY. */
function idPayloads(prefix: 'r:' | 'p:', ids: number[]): string[] {
  const payloads: string[] = []
  for (let i = 0; i < ids.length; i += IDS_PER_NOTIFY) payloads.push(prefix + ids.slice(i, i + IDS_PER_NOTIFY).join(','))
  return payloads
}

/** The payloads ending the polls of these sessions. */
export const revocationPayloads = (sessionIds: number[]) => idPayloads('r:', sessionIds)

/** The payloads saying these users' profiles changed. */
export const profileChangePayloads = (userIds: number[]) => idPayloads('p:', userIds)

/** The payloads handing a typing notice to these users' polls (the notice is small: ids fit beside it). */
export const typingPayloads = (notice: TypingNotice, userIds: number[]) =>
  idPayloads('p:', userIds).map((ids) => `y:${JSON.stringify(notice)}|${ids.slice(2)}`)

function decode(payload: string): WakeUp | undefined {
  if (payload.startsWith('a:')) return { kind: 'everyone' }
  if (payload.startsWith('y:')) {
    const bar = payload.lastIndexOf('|')
    return { kind: 'typing', notice: JSON.parse(payload.slice(2, bar)) as TypingNotice, userIds: payload.slice(bar + 1).split(',').map(Number) }
  }
  const items = payload.slice(2).split(',')
  if (payload.startsWith('u:')) {
    const pairs = items.map((item) => item.split('@').map(Number))
    return { kind: 'users', userIds: pairs.map(([id]) => id), ends: pairs.map(([, end]) => end ?? Number.POSITIVE_INFINITY) }
  }
  if (payload.startsWith('r:')) return { kind: 'revoked', sessionIds: items.map(Number) }
  if (payload.startsWith('p:')) return { kind: 'profiles', userIds: items.map(Number) }
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

export type WakeReason = 'event' | 'timeout' | 'superseded' | 'revoked' | 'shutdown' | 'gone' | 'typing'

/** Reasons that end a poll: once given, they stick. */
const FINAL: ReadonlySet<WakeReason> = new Set(['superseded', 'revoked', 'shutdown', 'gone'])

/** Why a wait ended: a reason, or entries appended to the log, handed over by this process. */
export type Wake = { reason: WakeReason } | { reason: 'entries'; appended: Appended }

export interface Waiter {
  readonly userId: number
  readonly sessionId: number
  /**
   * Resolves when something may have arrived after `cursor` since the last wait (at once if
   * a wake-up came in the meantime), after `ms` on the app's clock, or when the poll must end.
   */
  wait(ms: number, cursor: number): Promise<Wake>
  wake(reason: WakeReason): void
  /** The typing notices handed to this poll and not yet expired (each typist's latest per conversation); clears them. */
  takeTyping(): TypingNotice[]
  close(): void
}

class HeldPoll implements Waiter {
  private pending: WakeReason | undefined
  /** Typing notices for this poll's answer, by typist and conversation. */
  private readonly typing = new Map<string, TypingNotice>()
  private resolve: ((wake: Wake) => void) | undefined
  private timer: ClockTimer | undefined
  /** While waiting: the position the poll has read to. */
  private cursor = 0

  constructor(
    readonly userId: number,
    readonly sessionId: number,
    private readonly clock: Clock,
    private readonly release: (poll: HeldPoll) => void,
    /** Whether this poll's answer can carry typing notices (the wiki dialect's cannot). */
    private readonly acceptsTyping: boolean,
  ) {}

  /** A typing notice: kept for the answer, and the waiting poll answers now. */
  offerTyping(notice: TypingNotice): void {
    if (!this.acceptsTyping) return
    this.typing.set(`${notice.uid}:${notice.room_id ?? 0}`, notice)
    this.wake('typing')
  }

  takeTyping(): TypingNotice[] {
    const now = this.clock.now()
    const notices = [...this.typing.values()].filter((notice) => notice.expires_at > now)
    this.typing.clear()
    return notices
  }

  wait(ms: number, cursor: number): Promise<Wake> {
    if (this.pending) {
      const reason = this.pending
      if (!FINAL.has(reason)) this.pending = undefined
      return Promise.resolve({ reason })
    }
    this.cursor = cursor
    return new Promise((resolve) => {
      this.resolve = resolve
      this.timer = this.clock.setTimeout(() => this.settle({ reason: 'timeout' }), ms)
    })
  }

  wake(reason: WakeReason): void {
    // A final reason sticks; an `event` never overrides one.
    if (this.pending && FINAL.has(this.pending)) return
    if (this.resolve) this.settle({ reason })
    else this.pending = reason
  }

  /** The log grew up to `end`: news unless the poll, waiting, has read that far. */
  grewTo(end: number): void {
    if (this.resolve && this.cursor >= end) return
    this.wake('event')
  }

  /** Entries this process appended: taken by a waiting poll (which decides), else a reason to read again. */
  offer(appended: Appended): void {
    if (this.resolve && this.cursor >= appended.entries[appended.entries.length - 1].pos) return // read already
    if (this.resolve && !this.pending) this.settle({ reason: 'entries', appended })
    else this.wake('event')
  }

  private settle(wake: Wake): void {
    this.timer?.clear()
    const resolve = this.resolve
    this.resolve = undefined
    if (wake.reason !== 'entries' && FINAL.has(wake.reason)) this.pending = wake.reason
    resolve?.(wake)
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
  subscribe(userId: number, sessionId: number, acceptsTyping = false): Waiter {
    let polls = this.byUser.get(userId)
    if (!polls) this.byUser.set(userId, (polls = new Set()))
    for (const other of polls) if (other.sessionId === sessionId) other.wake('superseded')
    const live = [...polls].filter((poll) => poll.sessionId !== sessionId)
    for (const oldest of live.slice(0, Math.max(0, live.length - this.maxPerUser + 1))) oldest.wake('superseded')
    const poll = new HeldPoll(userId, sessionId, this.clock, (done) => this.release(done), acceptsTyping)
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
        wakeUp.userIds.forEach((userId, i) => {
          for (const poll of this.byUser.get(userId) ?? []) poll.grewTo(wakeUp.ends[i])
        })
        return
      case 'entries':
        for (const appended of wakeUp.appended) for (const poll of this.byUser.get(appended.userId) ?? []) poll.offer(appended)
        return
      case 'revoked': {
        const ended = new Set(wakeUp.sessionIds)
        for (const polls of this.byUser.values()) for (const poll of polls) if (ended.has(poll.sessionId)) poll.wake('revoked')
        return
      }
      case 'profiles':
        return // no log grew
      case 'typing':
        for (const userId of wakeUp.userIds) for (const poll of this.byUser.get(userId) ?? []) poll.offerTyping(wakeUp.notice)
        return
      case 'everyone':
      case 'missed':
        this.wakeAll('event')
    }
  }

  /** Wakes every poll held here: they read and answer (`shutdown`) or read again (`event`). */
  wakeAll(reason: WakeReason): void {
    for (const polls of this.byUser.values()) for (const poll of polls) poll.wake(reason)
  }
}

/**
 * Orders what this process appended with the NOTIFYs of every commit. A commit's own
 * entries go to the polls held here only once its NOTIFY has arrived: PostgreSQL delivers
 * NOTIFYs in commit order, so every commit before it (a broadcast, another process's
 * append) has been told to the polls by then. And the NOTIFY of an append in flight here,
 * which often arrives before the append's result, waits for its entries rather than wake
 * the polls to read what they are about to be given. Hand-overs not matched by a NOTIFY are
 * dropped when the LISTEN connection is lost (every poll reads then) or beyond a bound.
 */
export class HandOverGate {
  private readonly inFlight = new Map<number, number>()
  /** NOTIFY ends for users with an append in flight here: the furthest one each. */
  private readonly heardEarly = new Map<number, number>()
  /** Entries appended here, waiting for their NOTIFY. */
  private readonly waiting = new Map<number, Appended[]>()
  private waitingCount = 0

  constructor(
    private readonly deliver: (wakeUp: WakeUp) => void,
    private readonly maxWaiting = 10_000,
  ) {}

  /** Appends to these users' logs are in flight here. */
  begin(userIds: Iterable<number>): void {
    for (const userId of userIds) this.inFlight.set(userId, (this.inFlight.get(userId) ?? 0) + 1)
  }

  /** Those appends are done, with what they appended (nothing if they failed). */
  end(userIds: Iterable<number>, appended: Appended[] = []): void {
    const ready: Appended[] = []
    for (const log of appended) {
      if ((this.heardEarly.get(log.userId) ?? -1) >= lastPosition(log)) ready.push(log)
      else this.wait(log)
    }
    if (ready.length > 0) this.deliver({ kind: 'entries', appended: ready })
    const handedThrough = new Map(ready.map((log) => [log.userId, lastPosition(log)]))
    const released: number[] = []
    const ends: number[] = []
    for (const userId of userIds) {
      const count = (this.inFlight.get(userId) ?? 1) - 1
      const heard = this.heardEarly.get(userId)
      if (count > 0) {
        this.inFlight.set(userId, count)
        // Another append to this log is in flight (back-to-back send groups can keep one in
        // flight for long): a NOTIFY these entries do not cover is passed on now, and kept
        // for that append's entries, which may be what it announced.
        if (heard !== undefined && (handedThrough.get(userId) ?? -1) < heard) {
          released.push(userId)
          ends.push(heard)
        }
      } else {
        this.inFlight.delete(userId)
        if (heard !== undefined) {
          released.push(userId)
          ends.push(heard)
          this.heardEarly.delete(userId)
        }
      }
    }
    if (released.length > 0) this.deliver({ kind: 'users', userIds: released, ends })
  }

  /** A wake-up from the LISTEN connection (or this process), in commit order. */
  pass(wakeUp: WakeUp): void {
    if (wakeUp.kind === 'missed') this.dropWaiting()
    if (wakeUp.kind !== 'users') return this.deliver(wakeUp)
    const ready: Appended[] = []
    const userIds: number[] = []
    const ends: number[] = []
    wakeUp.userIds.forEach((userId, i) => {
      const end = wakeUp.ends[i]
      const logs = this.waiting.get(userId)
      if (logs) {
        const matched = logs.filter((log) => lastPosition(log) <= end)
        ready.push(...matched)
        this.waitingCount -= matched.length
        if (matched.length === logs.length) this.waiting.delete(userId)
        else this.waiting.set(userId, logs.filter((log) => lastPosition(log) > end))
      }
      if (this.inFlight.has(userId)) this.heardEarly.set(userId, Math.max(this.heardEarly.get(userId) ?? -1, end))
      else {
        userIds.push(userId)
        ends.push(end)
      }
    })
    if (ready.length > 0) this.deliver({ kind: 'entries', appended: ready })
    if (userIds.length > 0) this.deliver({ kind: 'users', userIds, ends })
  }

  private wait(log: Appended): void {
    if (this.waitingCount >= this.maxWaiting) this.dropWaiting()
    this.waiting.set(log.userId, [...(this.waiting.get(log.userId) ?? []), log])
    this.waitingCount++
  }

  private dropWaiting(): void {
    this.waiting.clear()
    this.waitingCount = 0
  }
}

const lastPosition = (log: Appended) => log.entries[log.entries.length - 1].pos
