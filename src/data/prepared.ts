// Named prepared statements for the hot paths (a direct send, a log read). PostgreSQL
// then parses and plans each statement once per connection instead of at every call,
// which is most of the database's CPU for these short, CTE-heavy statements. The
// connection comes from knex's pool, with its search_path.
import type { Knex } from 'knex'
import type pg from 'pg'

export async function preparedQuery<Row>(db: Knex, name: string, text: string, values: unknown[]): Promise<Row[]> {
  const connection: pg.Client = await db.client.acquireConnection()
  try {
    const result = await connection.query<Row & pg.QueryResultRow>({ name, text, values })
    return result.rows
  } finally {
    await db.client.releaseConnection(connection)
  }
}
