// Batching of concurrent database work: callers' items go to the database together, one
// statement for many, instead of one each. Direct sends use it as group commit (one
// statement and one commit for a group of sends, src/services/messages.ts), polls as
// group reads (one statement for the logs of the polls one commit woke,
// src/services/updates.ts).
//
// An item goes out at once when the database is idle (no added latency at light load);
// while `maxInFlight` batches run, new items wait and leave together, up to `maxBatch`,
// as soon as one batch is done. So a batch grows with the load, and every caller is
// answered only once its batch is done (for a write: committed). A batch may free its
// place earlier, once the database is done with it (`release`): the next batch then goes
// to the database before this one's callers are answered, instead of after. If a batch
// fails before that, its items run again one after another, so one bad item fails only
// its own caller; unless the failure is not an item's (`failsEveryItem`: the database is
// away), when all of them get it at once rather than one timeout after another.
export interface BatcherOptions {
  maxBatch: number
  maxInFlight: number
  failsEveryItem?: (error: unknown) => boolean
}

interface Waiting<Item, Result> {
  item: Item
  resolve: (result: Result) => void
  reject: (error: unknown) => void
}

/**
 * Frees the batch's place among those in flight and starts the next batch, if items wait:
 * true if one started. For a batch whose remaining work can no longer fail; later calls
 * do nothing.
 */
export type Release = () => boolean

export function createBatcher<Item, Result>(
  run: (items: Item[], release: Release) => Promise<Result[]>,
  { maxBatch, maxInFlight, failsEveryItem = () => false }: BatcherOptions,
) {
  const queue: Waiting<Item, Result>[] = []
  let inFlight = 0
  let flushScheduled = false
  /** Statements run and items they carried (their ratio is the mean batch size). */
  const stats = { batches: 0, items: 0 }

  async function runBatch(batch: Waiting<Item, Result>[], release: Release): Promise<void> {
    let released = false
    const releaseHere: Release = () => {
      released = true
      return release()
    }
    try {
      stats.batches++
      stats.items += batch.length
      const results = await run(batch.map((waiting) => waiting.item), releaseHere)
      batch.forEach((waiting, i) => waiting.resolve(results[i]))
    } catch (error) {
      // Released, the batch's database work was done (a write committed): running its
      // items again would do it twice.
      if (batch.length === 1 || released || failsEveryItem(error)) return batch.forEach((waiting) => waiting.reject(error))
      // One at a time, in the place this batch holds.
      for (const waiting of batch) await runBatch([waiting], () => false)
    }
  }

  /** Starts batches while places are free; true if it started one. */
  function flush(): boolean {
    flushScheduled = false
    let started = false
    while (inFlight < maxInFlight && queue.length > 0) {
      inFlight++
      started = true
      let holding = true
      const release: Release = () => {
        if (!holding) return false
        holding = false
        inFlight--
        return flush()
      }
      void runBatch(queue.splice(0, maxBatch), release).finally(release)
    }
    return started
  }

  return {
    stats: stats as Readonly<typeof stats>,

    /** Resolves with the item's result once its batch is done. */
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

export type Batcher<Item, Result> = ReturnType<typeof createBatcher<Item, Result>>
