// npm test: runs the tap suite against DATABASE_URL when set, else against a throwaway
// embedded PostgreSQL started for this run and removed after it. Arguments go to tap
// (e.g. `npm test -- test/contacts.test.ts`, `npm test -- --jobs=1`).
import { spawn } from 'node:child_process'
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { EmbeddedDatabaseError, startEmbeddedDatabase, type EmbeddedDatabase } from '../src/embedded-database.js'
import { FailureRecorder } from './failure-recorder.js'

let cluster: EmbeddedDatabase | undefined
let root: string | undefined
const env = { ...process.env }
if (!env.DATABASE_URL) {
  root = await mkdtemp(path.join(os.tmpdir(), 'messenger-test-'))
  await chmod(root, 0o755) // as root, PostgreSQL runs as the postgres user and must reach it
  try {
    cluster = await startEmbeddedDatabase({
      clusterDir: path.join(root, 'postgres'),
      // A throwaway cluster: durability buys nothing here.
      settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' },
    })
  } catch (error) {
    await rm(root, { recursive: true, force: true })
    // The same one-message failure as npm start's.
    console.error(error instanceof EmbeddedDatabaseError ? error.message : error)
    process.exit(1)
  }
  env.DATABASE_URL = cluster.url
  console.log(`# tests on an embedded PostgreSQL in ${root}`)
} else {
  console.log('# tests on DATABASE_URL')
}

// A fresh install's tap has its default plugin set built in, TypeScript's included; package.json
// leaves that plugin out (tsx loads the tests). tap rebuilds the set only inside its first run,
// after it chose the test processes' loaders, so each process of that run would still load
// TypeScript beside tsx (a second per process). Build it first when it is stale (5 s, once).
const builtPlugins = await readFile('node_modules/@tapjs/test/test-built/dist/esm/index.js', 'utf8').catch(() => '')
if (builtPlugins.includes('@tapjs/typescript')) {
  const build = spawn(process.execPath, [path.resolve('node_modules/tap/dist/esm/run.mjs'), 'build'], { stdio: 'ignore', env })
  await new Promise((resolve) => build.on('exit', resolve))
}

// One test file more than there are cores: a file spends about a third of its time waiting
// on the database, sockets and timers, so with one file per core the cores idle.
const args = process.argv.slice(2)
const jobs = args.some((arg) => arg.startsWith('--jobs') || arg.startsWith('-j')) ? [] : [`--jobs=${os.availableParallelism() + 1}`]
// On a terminal tap draws its own report, failures last; into a log it writes TAP, which
// passes through here so that what failed is repeated at the end: a long run's log is
// often read from its tail only.
const terminal = process.stdout.isTTY === true
const tap = spawn(process.execPath, [path.resolve('node_modules/tap/dist/esm/run.mjs'), ...jobs, ...args], {
  stdio: ['inherit', terminal ? 'inherit' : 'pipe', 'inherit'],
  env,
})
const failures = new FailureRecorder()
tap.stdout?.setEncoding('utf8').on('data', (text: string) => {
  process.stdout.write(text)
  failures.write(text)
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => tap.kill(signal))
const code: number = await new Promise((resolve) => tap.on('close', (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0))))
const summary = failures.summary()
if (summary) console.log(summary)
await cluster?.stop()
if (root) await rm(root, { recursive: true, force: true })
process.exit(code)
