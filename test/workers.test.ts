// WORKERS: one launcher forks that many server processes sharing the port (node:cluster).
// Connections are spread over the workers; a worker that dies is replaced while the others
// keep serving; SIGTERM to the launcher answers the held polls and stops every worker and
// the launcher with code 0.
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { createTestSchema, eventually } from './helper.js'
import { befriend, currentCursor, holdPoll, post, signUp, spawnServerOnFreePort, type ServerProcess } from './processes.js'

const WORKERS = 2

/** The pids of the workers that said they listen, in order. */
function listeningPids(server: ServerProcess): number[] {
  return server.lines.map((line) => JSON.parse(line)).filter((entry) => entry.msg?.startsWith('Server listening')).map((entry) => entry.pid)
}

/** The pids that logged a request to `url`. */
function servingPids(server: ServerProcess, url: string): Set<number> {
  const entries = server.lines.map((line) => JSON.parse(line))
  return new Set(entries.filter((entry) => entry.req?.url === url).map((entry) => entry.pid))
}

async function startLauncher(t: Test) {
  const { schema } = await createTestSchema(t)
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'messenger-workers-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  return spawnServerOnFreePort(t, schema, dataDir, { WORKERS: String(WORKERS) })
}

t.test(`WORKERS=${WORKERS}: workers share the port, a dead one is replaced, SIGTERM stops them all after answering held polls`, async (t) => {
  const server = await startLauncher(t)
  const ready = server.lines.map((line) => JSON.parse(line)).find((entry) => entry.msg === 'messenger ready')
  t.equal(ready.workers, WORKERS, 'the ready line names the workers')
  // Each worker writes its own log line to the shared output: the launcher's ready line may
  // come out before a worker's "listening" line does.
  await eventually(() => new Set(listeningPids(server)).size === WORKERS, { what: 'every worker to log that it listens', timeoutMs: 5000 })
  const workers = listeningPids(server)
  t.equal(new Set(workers).size, WORKERS, `${WORKERS} worker processes listen`)
  t.notOk(workers.includes(server.pid), 'none of them is the launcher')

  // Each request on a new connection: the connections are spread over the workers.
  for (let i = 0; i < 20; i++) await fetch(`${server.base}/healthz`, { headers: { connection: 'close' } })
  await eventually(() => servingPids(server, '/healthz').size === WORKERS, { what: 'both workers to serve', timeoutMs: 5000 })
  t.pass('requests are served by every worker')

  // A message through one connection reaches a poll held on another, whichever worker has it.
  const alice = await signUp(server)
  const bob = await signUp(server)
  await befriend(server, alice, bob)
  const cursor = await currentCursor(server, bob)
  const held = holdPoll(server, { cursor, timeout: 10 }, bob.token)
  t.equal((await post(server, 'send_msg', { to_uid: bob.uid, msg: 'across workers' }, alice.token)).status, 200)
  const delivered = await held.promise
  t.equal(delivered.body.msg_array?.[0]?.text, 'across workers', 'the held poll gets the message')

  // A worker that dies is replaced; the service goes on.
  process.kill(workers[0], 'SIGKILL')
  await eventually(() => listeningPids(server).length === WORKERS + 1, { what: 'a replacement worker', timeoutMs: 20_000 })
  t.ok(server.lines.some((line) => line.includes('a worker died; starting another')), 'the launcher logs the death')
  t.equal((await post(server, 'get_data', {}, alice.token)).status, 200, 'requests are still served')

  // SIGTERM to the launcher: held polls answered, every process gone, exit code 0.
  const last = holdPoll(server, { cursor: delivered.body.cursor, timeout: 10 }, bob.token)
  // /metrics is one worker's; new connections take turns, so both are asked.
  const metricsText = () => fetch(`${server.base}/metrics`, { headers: { connection: 'close' } }).then((r) => r.text())
  await eventually(async () => (await metricsText()).includes('messenger_held_polls 1'), { what: 'the poll to be held', timeoutMs: 5000 })
  const signalledAt = performance.now()
  process.kill(server.pid, 'SIGTERM')
  const answer = await last.promise
  t.equal(answer.status, 200, 'the held poll is answered 200')
  t.ok(answer.at - signalledAt < 2000, 'at shutdown, not at its timeout')
  t.strictSame(await server.exited, { code: 0, signal: null }, 'the launcher exits 0')
  for (const pid of listeningPids(server)) {
    t.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `worker ${pid} is gone`)
  }
})
