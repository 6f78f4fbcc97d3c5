// The benchmark's machinery, end to end: `npm run bench -- --smoke` (tiny counts) against
// the test database must finish, print every figure as a JSON line with a number, and
// find every acknowledged message delivered exactly once. The figures' values are not
// judged here: this machine's speed is not the suite's business.
import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { testDatabaseUrl } from './helper.js'
import { serverEnv } from './processes.js'

const PROJECT_ROOT = path.resolve(fileURLToPath(new URL('..', import.meta.url)))
// Well under tap's per-file timeout (180 s); a smoke run takes 35–40 s alone, up to 80 s beside the other test files.
const KILL_AFTER_MS = 150_000

const EXPECTED = [
  'hello_rps',
  'hello_rtt_ms',
  'whoami_rps',
  'db_tx_ms',
  'db_stmt_ms',
  'light_load_floor_ms',
  'light_load_floor_p99_ms',
  'delivery_floor_ms',
  'delivery_floor_p99_ms',
  'db_tps_16',
  'db_tps_64',
  'server_rss_idle_mb',
  'delivery_p50_ms',
  'delivery_p95_ms',
  'delivery_p99_ms',
  'send_ack_p50_ms',
  'delivery_max_ms',
  'delivery_lost',
  'delivery_duplicated',
  'delivery_reordered',
  ...[16, 64].flatMap((n) => [
    `sends_per_s_${n}`,
    `db_tps_${n}_cpu_machine_ms_per_tx`,
    ...[
      ...['errors', 'delivery_p50_ms', 'delivery_p99_ms', 'drain_ms', 'lost', 'duplicated', 'reordered'],
      ...['cpu_server_ms_per_send', 'cpu_bench_ms_per_send', 'cpu_machine_ms_per_send', 'busy_cores', 'cores_at_ceiling'],
    ].map((what) => `sends_${n}_${what}`),
  ]),
  'poll_ms_empty',
  'send_ms_empty',
  'poll_ms_1m',
  'send_ms_1m',
  'whoami_ms_empty',
  'whoami_ms_1m',
  'held_polls_200_kb_per_poll',
  'held_polls_200_last_poll_latency_ms',
  'held_polls_200_held',
  'room_fanout_last_ms',
  'room_fanout_p50_ms',
  'room_fanout_ack_ms',
  'room_fanout_lost',
  ...['alone', 'shared_friend'].flatMap((variant) => [`storm_${variant}_opens_per_s`, `storm_${variant}_lock_waits`]),
  'whoami_rps_2_workers',
  'sends_per_s_16_2_workers',
  ...['errors', 'lost', 'duplicated', 'reordered'].map((what) => `sends_16_2_workers_${what}`),
  ...['p50_ms', 'p99_ms', 'lost', 'duplicated', 'reordered'].map((what) => `delivery_across_processes_${what}`),
  'foreign_cpu_pct',
  'wall_time_s',
]

t.test('npm run bench -- --smoke', async (t) => {
  // Its own process group, so that a run over time is stopped whole (npm, the bench, the
  // server it started), by that group's id.
  const child = spawn('npm', ['run', '--silent', 'bench', '--', '--smoke'], {
    cwd: PROJECT_ROOT,
    env: serverEnv({ DATABASE_URL: testDatabaseUrl() }),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  const timer = setTimeout(() => {
    process.kill(-child.pid!, 'SIGINT')
    setTimeout(() => child.exitCode === null && process.kill(-child.pid!, 'SIGKILL'), 10_000).unref()
  }, KILL_AFTER_MS)
  const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)))
  clearTimeout(timer)

  t.equal(code, 0, 'the run completed', { stderr: stderr.slice(-4000), stdout: stdout.slice(-4000) })
  const figures = new Map<string, unknown>()
  const lines = new Map<string, Record<string, unknown>>()
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue
    const parsed = JSON.parse(line) as { figure?: string; value?: unknown }
    if (parsed.figure) {
      figures.set(parsed.figure, parsed.value)
      lines.set(parsed.figure, parsed)
    }
  }
  // Memory per held poll is read after collections the server runs on SIGWINCH (it must
  // survive them: the figures after it are checked above); the raw reading rides along.
  const held = lines.get('held_polls_200_kb_per_poll')
  t.equal(typeof held?.kb_per_poll_before_gc, 'number', 'the held-poll line also has the reading taken before collecting')
  // The server's work per group, from its /metrics: the sends went through group statements.
  t.match(stderr, /send throughput, 16 senders: requests: [^\n]*\/send_msg \d+[^\n]*direct sends [1-9]\d* in [1-9]\d* statements/, 'the work line of a throughput group')
  for (const name of EXPECTED) {
    t.ok(typeof figures.get(name) === 'number' && Number.isFinite(figures.get(name)), `${name} is a finite number`, { got: figures.get(name) })
  }
  for (const [name, value] of figures) {
    if (/_(lost|duplicated)$/.test(name)) t.equal(value, 0, `${name} = 0`)
  }
})
