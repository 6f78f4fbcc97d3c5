// What this process knows about the end of users' logs: "nothing after position p", learnt
// from a log read that reached the end, and forgotten at the next wake-up that names the
// user (or everyone: a broadcast, a lost or restored LISTEN connection). A poll whose
// cursor is at or past that position has nothing to read: it waits for the wake-up without
// asking the database. That is the poll a client sends right after each reply, so under
// load it saves half of all log reads.
//
// Why it is safe: an end is recorded only if the read started while NOTIFYs were being
// heard and no wake-up for the user came since it started. Then every commit the read's
// snapshot missed sends a wake-up that arrives after the read started, and that wake-up
// either prevented the record or deletes it; a poll that skipped its read is subscribed
// before it looks here, so the same wake-up also ends its wait.
//
// Bounded: an entry not used for two periods of ROTATE_MS is dropped (a poll then reads).
import type { EventHub } from './event-hub.js'

const ROTATE_MS = 60_000

interface Tail {
  /** The latest read of this log that started; only it may record the end. */
  reading: number
  /** No entry after this position (as of the last wake-up). */
  end?: number
}

export class LogTails {
  private current = new Map<number, Tail>()
  private previous = new Map<number, Tail>()
  private rotatedAt = Date.now()
  private reads = 0

  constructor(private readonly hub: EventHub) {
    hub.onWake((userId) => {
      if (userId === 'all') {
        this.current.clear()
        this.previous.clear()
      } else {
        this.current.delete(userId)
        this.previous.delete(userId)
      }
    })
  }

  /** True when the user's log has nothing after `position` (as far as this process knows). */
  nothingAfter(userId: number, position: number): boolean {
    const end = this.find(userId)?.end
    return end !== undefined && position >= end
  }

  /** Call right before reading the user's log; pass the token to `readEnded`. */
  readStarting(userId: number): number {
    if (!this.hub.listening) return 0
    let tail = this.find(userId)
    if (!tail) this.current.set(userId, (tail = { reading: 0 }))
    tail.reading = ++this.reads
    return tail.reading
  }

  /** The read of `token` reached the end of the log at `end`. */
  readEnded(userId: number, token: number, end: number): void {
    const tail = this.find(userId)
    if (token !== 0 && tail?.reading === token) tail.end = end
  }

  private find(userId: number): Tail | undefined {
    if (Date.now() - this.rotatedAt > ROTATE_MS) {
      this.previous = this.current
      this.current = new Map()
      this.rotatedAt = Date.now()
    }
    const tail = this.current.get(userId)
    if (tail) return tail
    const old = this.previous.get(userId)
    if (old) {
      this.previous.delete(userId)
      this.current.set(userId, old)
    }
    return old
  }
}
