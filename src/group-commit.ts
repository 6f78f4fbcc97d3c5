// Group commit: concurrent callers' items are written together, one statement and one
// commit for many, instead of one each. An item goes out at once when the database is
// idle (no added latency at light load); while `maxInFlight` batches are being written,
// new items wait and leave together, up to `maxBatch`, as soon as one batch is done. So a
// batch grows with the load, and every caller is answered only after its batch committed.
// If a batch fails, its items are written again one after another, so one bad item fails
// only its own caller.
export interface GroupCommitOptions {
  maxBatch: number
  maxInFlight: number
}

interface Waiting<Item, Result> {
  item: Item
  resolve: (result: Result) => void
  reject: (error: unknown) => void
}

export function createGroupCommit<Item, Result>(write: (items: Item[]) => Promise<Result[]>, { maxBatch, maxInFlight }: GroupCommitOptions) {
  const queue: Waiting<Item, Result>[] = []
  let inFlight = 0
  let flushScheduled = false
  /** Statements written and items they carried (their ratio is the mean batch size). */
  const stats = { batches: 0, items: 0 }

  async function writeBatch(batch: Waiting<Item, Result>[]): Promise<void> {
    try {
      stats.batches++
      stats.items += batch.length
      const results = await write(batch.map((waiting) => waiting.item))
      batch.forEach((waiting, i) => waiting.resolve(results[i]))
    } catch (error) {
      if (batch.length === 1) return batch[0].reject(error)
      for (const waiting of batch) await writeBatch([waiting])
    }
  }

  function flush(): void {
    flushScheduled = false
    while (inFlight < maxInFlight && queue.length > 0) {
      inFlight++
      void writeBatch(queue.splice(0, maxBatch)).finally(() => {
        inFlight--
        flush()
      })
    }
  }

  return {
    stats: stats as Readonly<typeof stats>,

    /** Resolves with the item's result once its batch committed. */
    submit(item: Item): Promise<Result> {
      return new Promise<Result>((resolve, reject) => {
        queue.push({ item, resolve, reject })
        // Items that arrive in the same turn of the event loop leave together.
        if (!flushScheduled) {
          flushScheduled = true
          setImmediate(flush)
        }
      })
    },
  }
}

export type GroupCommit<Item, Result> = ReturnType<typeof createGroupCommit<Item, Result>>
