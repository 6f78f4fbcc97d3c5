// The bench's PostgreSQL: DATABASE_URL when set, else an embedded cluster in a temp dir
// with PostgreSQL's default durability (fsync and synchronous commit on: the database
// ceiling and every send figure include a real WAL flush). The run gets a fresh schema
// that is dropped at the end.
import { randomBytes } from 'node:crypto'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { Knex } from 'knex'
import { createKnex, migrate } from '../../src/database.js'
import { startEmbeddedDatabase, type EmbeddedDatabase } from '../../src/embedded-database.js'

export interface BenchDatabase {
  url: string
  schema: string
  embedded: boolean
  knex: Knex
}

/**
 * `defer` receives each undo step as soon as there is something to undo (the cluster once
 * started, the schema once created), so a run stopped half-way leaves nothing behind.
 */
export async function openBenchDatabase(log: (line: string) => void, defer: (undo: () => Promise<void>) => void): Promise<BenchDatabase> {
  let cluster: EmbeddedDatabase | undefined
  let root: string | undefined
  let url = process.env.DATABASE_URL
  if (!url) {
    root = await mkdtemp(path.join(os.tmpdir(), 'messenger-bench-db-'))
    await chmod(root, 0o755) // as root, PostgreSQL runs as the postgres user and must reach it
    log(`starting an embedded PostgreSQL (default durability) in ${root}`)
    const dir = root
    defer(() => rm(dir, { recursive: true, force: true }))
    cluster = await startEmbeddedDatabase({ clusterDir: path.join(root, 'postgres') })
    const started = cluster
    defer(() => started.stop().catch((error) => log(`stopping the embedded PostgreSQL: ${(error as Error).message}`)))
    url = cluster.url
  } else {
    log('using DATABASE_URL')
  }

  const schema = `bench_${randomBytes(5).toString('hex')}`
  const knex = createKnex({ url, schema, poolMax: 4 })
  defer(async () => {
    try {
      await knex.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [schema])
    } catch (error) {
      log(`could not drop schema ${schema}: ${(error as Error).message}`)
    }
    await knex.destroy().catch(() => {})
  })
  await migrate(knex, schema)
  log(`schema ${schema} migrated`)
  return { url, schema, embedded: cluster !== undefined, knex }
}
