// Many idle long-polls held at once, one per user, opened gradually: a batch at a time,
// the next batch only once the server has accepted the previous one's connections and
// the server and PostgreSQL have gone quiet (done with them), so the figure
// measures holding polls, not a connection storm. A poll the server answers (its 60 s
// hold ran out, or a message came) is followed at once by the next, as a client would,
// on the same keep-alive connection (each user's polls have one of their own).
// "Quiet" is read from the CPU time of the bench's own processes (server, database), so
// other load on the machine neither hurries nor stalls the opening.
import { HttpClient, isResourceExhaustion } from './http.js'
import { PollLoop, type MessageItem } from './poller.js'
import { openFds, treeBusyCores, waitQuiet, type NodeProcess } from './processes.js'
import type { BenchUser } from '../seed.js'
import { sleep } from './stats.js'

export interface HeldPollsOptions {
  batch: number
  /** Seconds the server may hold each poll. */
  timeout: number
  /** Where each user's log was read up to (kept across groups of held polls). */
  cursors: Map<number, number>
  onMessages(user: BenchUser, messages: MessageItem[], at: number): void
  log(line: string): void
}

const BATCH_SETTLE_MS = 10_000
// Descriptors the server may open or close meanwhile (its database pool grows and shrinks).
const FD_SLACK = 16

export class HeldPolls {
  private readonly connections: HttpClient[] = []
  private readonly loops: PollLoop[] = []
  private exhausted: unknown
  private serverFdsBefore = 0

  constructor(
    private readonly server: NodeProcess,
    private readonly options: HeldPollsOptions,
  ) {}

  /** Opens one poll per user; returns how many were opened (fewer when descriptors ran out). */
  async open(users: BenchUser[], maxMs: number): Promise<{ opened: number; exhausted?: unknown }> {
    const { batch, timeout, cursors, onMessages, log } = this.options
    const deadline = performance.now() + maxMs
    this.serverFdsBefore = await openFds(this.server.pid)
    for (let i = 0; i < users.length && this.exhausted === undefined && performance.now() < deadline; i += batch) {
      for (const user of users.slice(i, i + batch)) {
        const connection = new HttpClient(this.server.base, { oneConnection: true })
        this.connections.push(connection)
        const loop = new PollLoop(connection, user, cursors.get(user.uid) ?? 0, {
          timeout,
          // Held throughout the level; bounded all the same.
          deadline: performance.now() + 600_000,
          maxPolls: 50,
          onMessages: (messages, at) => onMessages(user, messages, at),
          onExhausted: (error) => (this.exhausted ??= error),
        })
        this.loops.push(loop.start())
      }
      await this.settle(this.serverFdsBefore + this.loops.length)
      if (this.loops.length % 5000 === 0 && this.loops.length < users.length) {
        log(`held polls: ${this.loops.length} opened, ${this.stats().answered} answered so far`)
      }
    }
    if (this.exhausted !== undefined) log(`held polls: stopped opening at ${this.loops.length}: ${(this.exhausted as Error).message}`)
    await waitQuiet(15_000)
    const failed = this.loops.filter((l) => l.errors > 0 && isResourceExhaustion(l.lastError)).length
    return { opened: this.loops.length - failed, exhausted: this.exhausted }
  }

  private async settle(wantFds: number): Promise<void> {
    const until = performance.now() + BATCH_SETTLE_MS
    while (performance.now() < until && this.exhausted === undefined) {
      const fds = await openFds(this.server.pid)
      const busy = await treeBusyCores(100)
      if (fds >= wantFds - FD_SLACK && busy < 0.2) return
    }
  }

  /** The user whose poll was opened last among those that got a connection. */
  lastOpened(): BenchUser | undefined {
    for (let i = this.loops.length - 1; i >= 0; i--) if (!isResourceExhaustion(this.loops[i].lastError)) return this.loops[i].user
    return undefined
  }

  /** Polls answered before close (timeouts, messages) and failed polls, for the report. */
  stats() {
    return {
      answered: this.loops.reduce((n, l) => n + l.answered, 0),
      errors: this.loops.reduce((n, l) => n + l.errors, 0),
    }
  }

  /** Cuts every poll off, then waits (bounded) until the server has let go of the sockets. */
  async close(): Promise<void> {
    const stopping = this.loops.map((loop) => loop.stop(false))
    for (const connection of this.connections) connection.close()
    await Promise.all(stopping)
    for (const loop of this.loops) this.options.cursors.set(loop.user.uid, loop.cursor)
    const until = performance.now() + 30_000
    while (performance.now() < until && (await openFds(this.server.pid)) > this.serverFdsBefore + FD_SLACK) await sleep(100)
  }
}
