// A long-polling client: `update_data {cursor, timeout}` in a loop, each reply's cursor
// sent back in the next poll, the way a modern client follows its log. Bounded by a
// deadline and a number of polls; `stop()` ends it (the request in flight is aborted,
// which the server sees as the client going away).
import { HttpClient, isResourceExhaustion } from './http.js'
import type { BenchUser } from '../seed.js'
import { sleep } from './stats.js'

export interface MessageItem {
  msg_id: number
  sender_uid: number
  text: string
  room_id?: number
}

export interface PollLoopOptions {
  /** Seconds the server may hold each poll. */
  timeout: number
  /** performance.now() after which no new poll starts. */
  deadline: number
  maxPolls: number
  onMessages(messages: MessageItem[], at: number): void
  /** Called with the first failure that stopped the loop from starting polls (EMFILE and such). */
  onExhausted?(error: unknown): void
}

export class PollLoop {
  polls = 0
  /** Polls answered before `stop()` (a timeout, or a message). */
  answered = 0
  errors = 0
  lastError: unknown
  private stopped = false
  /** One per loop, not per poll: the load generator's own allocations are work the server's figures wait on. */
  private readonly controller = new AbortController()
  private running: Promise<void> | undefined

  constructor(
    private readonly client: HttpClient,
    readonly user: BenchUser,
    public cursor: number,
    private readonly options: PollLoopOptions,
  ) {}

  start(): this {
    this.running ??= this.run()
    return this
  }

  private async run(): Promise<void> {
    const { timeout, deadline, maxPolls, onMessages } = this.options
    while (!this.stopped && this.polls < maxPolls && performance.now() < deadline) {
      this.polls++
      try {
        const reply = await this.client.post('update_data', { cursor: this.cursor, timeout }, this.user.token, {
          signal: this.controller.signal,
          timeoutMs: (timeout + 15) * 1000,
        })
        if (this.stopped) break
        if (reply.status !== 200) {
          this.errors++
          this.lastError = new Error(`update_data ${reply.status}: ${JSON.stringify(reply.body)}`)
          await sleep(100)
          continue
        }
        this.answered++
        this.cursor = reply.body.cursor
        if (reply.body.msg_array.length > 0) onMessages(reply.body.msg_array, reply.at)
      } catch (error) {
        if (this.stopped) break
        this.errors++
        this.lastError = error
        if (isResourceExhaustion(error)) {
          this.options.onExhausted?.(error)
          break
        }
        await sleep(100)
      }
    }
  }

  /** Ends the loop; with `abort`, the poll in flight is cut off too. */
  async stop(abort = true): Promise<void> {
    this.stopped = true
    if (abort) this.controller.abort()
    await this.running
  }
}

/** Reads the user's log to its end (timeout 0 polls, at most `maxPolls`) and returns the cursor. */
export async function catchUp(client: HttpClient, user: BenchUser, cursor = 0, maxPolls = 1000): Promise<number> {
  for (let i = 0; i < maxPolls; i++) {
    const reply = await client.ok('update_data', { cursor, timeout: 0 }, user.token)
    cursor = reply.body.cursor
    if (reply.body.msg_array.length === 0 && reply.body.events_array.length === 0) return cursor
  }
  throw new Error(`log of user ${user.uid} not read to its end in ${maxPolls} polls`)
}
