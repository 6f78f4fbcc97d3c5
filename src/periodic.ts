// Background jobs (presence sweep, call timeouts, upload clean-up): each runs every
// `everyMs` from start() until the returned stop is called, never two runs of one job at
// once. A run that fails is reported and the next one tries again.
export interface PeriodicJob {
  name: string
  everyMs: number
  run(): Promise<unknown>
}

export function startPeriodic(job: PeriodicJob, onFailure: (job: PeriodicJob, error: unknown) => void): () => void {
  let running: Promise<void> | undefined
  const timer = setInterval(() => {
    running ??= job
      .run()
      .then(
        () => {},
        (error) => onFailure(job, error),
      )
      .finally(() => (running = undefined))
  }, job.everyMs)
  timer.unref()
  return () => clearInterval(timer)
}
