// A per-process cache of rows that change rarely, kept right across processes by the
// wake-ups (src/event-log/wake-ups.ts): a key leaves when a wake-up names it, and every key
// leaves when the LISTEN connection is lost or (re)made; while it is down, every lookup goes
// to the database. A load that raced an invalidation or a reconnect is not kept (the
// generation moved), so a changed row is never remembered as it was.
import type { WakeUp, WakeUpListener } from './event-log/wake-ups.js'

export class NotifiedCache<Value> {
  private readonly entries = new Map<number, Value>()
  private generation = 0

  /**
   * @param namedBy the keys a wake-up invalidates (undefined: none)
   * @param maxEntries bounds memory: beyond this many keys the cache starts over
   */
  constructor(
    private readonly listener: WakeUpListener,
    namedBy: (wakeUp: WakeUp) => number[] | undefined,
    private readonly maxEntries: number,
  ) {
    listener.subscribe((wakeUp) => {
      const keys = wakeUp.kind === 'missed' ? undefined : namedBy(wakeUp)
      if (wakeUp.kind === 'missed') this.entries.clear()
      else if (!keys) return
      this.generation++
      for (const key of keys ?? []) this.entries.delete(key)
    })
  }

  /** The cached value while `fresh`, else what `load` finds (kept when it was read while wake-ups were heard). */
  async get(key: number, load: () => Promise<Value | undefined>, fresh: (value: Value) => boolean = () => true): Promise<Value | undefined> {
    const cached = this.entries.get(key)
    if (cached !== undefined && fresh(cached)) return cached
    const listening = this.listener.listening
    if (!listening) this.listener.listen().catch(() => {})
    const generation = this.generation
    const value = await load()
    if (value !== undefined && listening && this.listener.listening && generation === this.generation) {
      if (this.entries.size >= this.maxEntries) this.entries.clear()
      this.entries.set(key, value)
    }
    return value
  }
}
