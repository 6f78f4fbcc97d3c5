// Background jobs (presence sweep, call timeouts, upload clean-up): each runs every
// `everyMs` on the app's clock from start until the returned stop is called, never two
// runs of one job at once. A run that fails is reported and the next one tries again.
import type { Clock } from './clock.js'

export interface PeriodicJob {
  name: string
  everyMs: number
  run(): Promise<unknown>
}

export function startPeriodic(clock: Clock, job: PeriodicJob, onFailure: (job: PeriodicJob, error: unknown) => void): () => void {
  let running: Promise<void> | undefined
  const timer = clock.setInterval(() => {
    running ??= job
      .run()
      .then(
        () => {},
        (error) => onFailure(job, error),
      )
      .finally(() => (running = undefined))
  }, job.everyMs)
  return () => timer.clear()
}
