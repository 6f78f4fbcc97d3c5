// Failed logins per login, kept in the database so the limit holds across processes.
import type { Knex } from 'knex'

/** Seconds until the login may be tried again, or 0 when it may be tried now. */
export async function loginRetryAfter(db: Knex, loginKey: string, maxFailures: number, windowSeconds: number): Promise<number> {
  const row = await db('login_failures')
    .select('failures', db.raw('ceil(extract(epoch FROM window_started_at + make_interval(secs => ?) - now()))::int AS remaining', [windowSeconds]))
    .where({ login_key: loginKey })
    .first()
  if (!row || row.remaining <= 0 || row.failures < maxFailures) return 0
  return row.remaining
}

/** Counts a failure; a window that has run out starts again at 1. */
export async function recordLoginFailure(db: Knex, loginKey: string, windowSeconds: number): Promise<void> {
  await db.raw(
    `INSERT INTO login_failures (login_key, failures, window_started_at) VALUES (?, 1, now())
     ON CONFLICT (login_key) DO UPDATE SET
       failures = CASE WHEN login_failures.window_started_at + make_interval(secs => ?) <= now() THEN 1 ELSE login_failures.failures + 1 END,
       window_started_at = CASE WHEN login_failures.window_started_at + make_interval(secs => ?) <= now() THEN now() ELSE login_failures.window_started_at END`,
    [loginKey, windowSeconds, windowSeconds],
  )
}

export async function clearLoginFailures(db: Knex, loginKey: string): Promise<void> {
  await db('login_failures').where({ login_key: loginKey }).delete()
}
