// Whether the database answers, as this process sees it, and the one place that says so
// in the log. The first error that means the database is away (isDatabaseUnavailable),
// from wherever it comes (a request, a sweep, the LISTEN connection), logs one warning and
// starts a probe; the probe's first answer logs one warning that it is back, with the
// outage's length. In between, the outage's expected failures are not logged again by
// whoever met them: `noteFailure` tells them so.
import { isDatabaseUnavailable } from './database.js'

export interface HealthLog {
  warn(obj: object, msg: string): void
}

export interface DatabaseHealthOptions {
  /** Resolves when the database answers (a cheap query with a short timeout). */
  probe(): Promise<unknown>
  log: HealthLog
  probeIntervalMs?: number
}

export function createDatabaseHealth({ probe, log, probeIntervalMs = 1000 }: DatabaseHealthOptions) {
  let downSince: number | undefined
  let timer: NodeJS.Timeout | undefined
  let closed = false

  function probeLater(): void {
    if (closed) return
    timer = setTimeout(() => {
      probe().then(
        () => {
          if (downSince === undefined) return
          log.warn({ outageMs: Math.round(performance.now() - downSince) }, 'database available again')
          downSince = undefined
        },
        probeLater,
      )
    }, probeIntervalMs)
    timer.unref()
  }

  return {
    get available(): boolean {
      return downSince === undefined
    },

    /**
     * Looks at a failure: when it means the database is away, the outage is noted (logged
     * once) and the answer is true, so the caller need not log it itself.
     */
    noteFailure(error: unknown): boolean {
      if (!isDatabaseUnavailable(error)) return false
      if (downSince === undefined) {
        downSince = performance.now()
        log.warn({ reason: (error as Error)?.message }, 'database unavailable')
        probeLater()
      }
      return true
    },

    close(): void {
      closed = true
      clearTimeout(timer)
    },
  }
}

export type DatabaseHealth = ReturnType<typeof createDatabaseHealth>
