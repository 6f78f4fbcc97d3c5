// The knex instance and migrations: one place that knows how to reach the database.
import knexFactory, { type Knex } from 'knex'
import pg from 'pg'
import { migrationSource } from '../migrations/index.js'

// BIGINT ids and positions stay below 2^53 (microsecond timestamps are ~2^51), so they are
// returned as JSON-exact numbers rather than strings.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value))

export interface DatabaseOptions {
  url: string
  schema: string
  poolMax?: number
}

export function createKnex({ url, schema, poolMax = 10 }: DatabaseOptions): Knex {
  return knexFactory({
    client: 'pg',
    connection: url,
    searchPath: [schema],
    pool: { min: 0, max: poolMax },
    migrations: { migrationSource, schemaName: schema, tableName: 'knex_migrations' },
  })
}

/** Creates the schema when needed and applies every pending migration. */
export async function migrate(knex: Knex, schema: string): Promise<string[]> {
  await knex.raw('CREATE SCHEMA IF NOT EXISTS ??', [schema])
  const [, applied] = (await knex.migrate.latest()) as [number, string[]]
  return applied
}
