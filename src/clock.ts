// The time the product's rules read and wait on: poll deadlines, session and token
// expiry, code expiry and resend limits, presence, call rings, the periodic jobs. Tests
// pass a ManualClock and move it instead of sleeping.
export interface ClockTimer {
  clear(): void
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number
  /** Calls `callback` once, `ms` from now on this clock. */
  setTimeout(callback: () => void, ms: number): ClockTimer
  /** Calls `callback` every `ms` on this clock; it never keeps the process alive. */
  setInterval(callback: () => void, ms: number): ClockTimer
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(callback, ms) {
    const timer = setTimeout(callback, ms)
    return { clear: () => clearTimeout(timer) }
  },
  setInterval(callback, ms) {
    const timer = setInterval(callback, ms)
    timer.unref()
    return { clear: () => clearInterval(timer) }
  },
}

interface ManualTimer {
  at: number
  every?: number
  callback: () => void
}

/** A clock that moves only when told to; its timers fire as it passes their time. */
export class ManualClock implements Clock {
  private readonly timers = new Set<ManualTimer>()

  constructor(private ms = Date.now()) {}

  now(): number {
    return this.ms
  }

  setTimeout(callback: () => void, ms: number): ClockTimer {
    return this.add({ at: this.ms + Math.max(0, ms), callback })
  }

  setInterval(callback: () => void, ms: number): ClockTimer {
    return this.add({ at: this.ms + ms, every: Math.max(1, ms), callback })
  }

  /** Moves the time forward, firing every timer due on the way, in time order. */
  advance(ms: number): void {
    const target = this.ms + ms
    for (;;) {
      const due = [...this.timers].filter((timer) => timer.at <= target).sort((a, b) => a.at - b.at)[0]
      if (!due) break
      this.ms = Math.max(this.ms, due.at)
      if (due.every === undefined) this.timers.delete(due)
      else due.at += due.every
      due.callback()
    }
    this.ms = target
  }

  private add(timer: ManualTimer): ClockTimer {
    this.timers.add(timer)
    return { clear: () => this.timers.delete(timer) }
  }
}
