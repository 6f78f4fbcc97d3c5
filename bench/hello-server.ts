// The hello-world baseline: a bare Fastify app in its own process, one POST route that
// parses a JSON body and answers JSON, the same work minus the messenger's logic. Given a
// database (DATABASE_URL, DATABASE_SCHEMA), also the least a durable send can be: a route
// that commits one row and its NOTIFY in one statement before it answers.
import Fastify from 'fastify'
import pg from 'pg'

const app = Fastify({ logger: false })
app.post('/hello', async () => ({ hello: 'world' }))
app.get('/', async () => ({ ready: true }))

const { DATABASE_URL: url, DATABASE_SCHEMA: schema } = process.env
const database = url && schema ? new pg.Client({ connectionString: url }) : undefined
if (database && schema) {
  await database.connect()
  const table = `"${schema}".bench_durable_hello`
  await database.query(`CREATE TABLE IF NOT EXISTS ${table} (id bigserial PRIMARY KEY, payload jsonb NOT NULL)`)
  app.post('/durable', async () => {
    const { rows } = await database.query<{ id: string }>({
      name: 'durable_hello',
      text: `WITH appended AS (INSERT INTO ${table} (payload) VALUES ($1) RETURNING id) SELECT id FROM appended, pg_notify('bench_hello', 'x')`,
      values: ['{"msg":"bench"}'],
    })
    return { id: Number(rows[0].id) }
  })
}
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })

const close = () => app.close().then(() => database?.end()).then(() => process.exit(0))
process.once('SIGTERM', close)
process.once('SIGINT', close)
