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
  /**
   * Every statement with parameters (named, or a query's unnamed one) on its generic plan,
   * planned once per connection for a named one. For the hot path's big statements (a
   * direct send group, a group read), whose arrays made PostgreSQL plan each execution
   * anew at small sizes: 1 to 3 ms of planning against 0.3 to 2 ms of running. Not for the
   * pool at large: a prefix search (`LIKE $1`) needs its pattern planned to use its index.
   */
  genericPlans?: boolean
  /** Where knex's own messages go (a dropped connection, a failed acquire); default the console. */
  logger?: { debug(obj: object, msg: string): void; warn(obj: object, msg: string): void }
}

export function createKnex({ url, schema, poolMax = 10, genericPlans = false, logger }: DatabaseOptions): Knex {
  return knexFactory({
    client: 'pg',
    // No JIT: it compiles a plan whose estimated cost looks high (a room's 1,000-entry
    // append, a group send) and took 70 of that append's 143 ms measured; every statement
    // here is short and indexed, where compiling never pays back.
    connection: { connectionString: url, options: `-c jit=off${genericPlans ? ' -c plan_cache_mode=force_generic_plan' : ''}` },
    searchPath: [schema],
    pool: { min: 0, max: poolMax },
    // The pool's complaints while the database is away repeat what the requests' 503s
    // already say (src/database-health.ts logs the outage once): debug lines, as JSON.
    ...(logger && {
      log: {
        debug: (message: unknown) => logger.debug({ knex: String(message) }, 'knex'),
        warn: (message: unknown) => logger.debug({ knex: String(message) }, 'knex warning'),
        error: (message: unknown) => logger.warn({ knex: String(message) }, 'knex error'),
        deprecate: (method: unknown, alternative: unknown) => logger.warn({ knex: `${method} is deprecated; use ${alternative}` }, 'knex deprecation'),
        inspectionDepth: 3,
        enableColors: false,
      },
    }),
    migrations: { migrationSource, schemaName: schema, tableName: 'knex_migrations' },
  })
}

/** Creates the schema when needed and applies every pending migration. */
export async function migrate(knex: Knex, schema: string): Promise<string[]> {
  await knex.raw('CREATE SCHEMA IF NOT EXISTS ??', [schema])
  const [, applied] = (await knex.migrate.latest()) as [number, string[]]
  return applied
}

// Connection-level failures: the database is away, not the request at fault.
// pg reports a connection cut mid-query without a SQLSTATE; knex a full pool by message.
const DATABASE_DOWN_MESSAGE = /timeout acquiring a connection|Connection terminated|connection error and is not queryable|Client was closed and is not queryable/i
const DATABASE_DOWN = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', '57P01', '57P02', '57P03', '08000', '08003', '08006'])

/** The error says the database could not be reached or went away (answered as 503). */
export function isDatabaseUnavailable(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown }
  return (typeof code === 'string' && DATABASE_DOWN.has(code)) || (typeof message === 'string' && DATABASE_DOWN_MESSAGE.test(message))
}
