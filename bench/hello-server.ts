// The hello-world baseline: a bare Fastify app in its own process, one POST route that
// parses a JSON body and answers JSON, the same work minus the messenger's logic. Given a
// database (DATABASE_URL, DATABASE_SCHEMA), also the least a durable send and its delivery
// can be: a route that commits one row and its NOTIFY in one statement before it answers,
// and a long poll that a LISTEN connection answers when such a NOTIFY arrives (the
// messenger's own path from a commit to a held poll, without its logic).
import Fastify from 'fastify'
import pg from 'pg'

const app = Fastify({ logger: false })
app.post('/hello', async () => ({ hello: 'world' }))
app.get('/', async () => ({ ready: true }))

/** A long poll with nothing to answer ends empty after this long. */
const WAIT_HOLD_MS = 25_000

const { DATABASE_URL: url, DATABASE_SCHEMA: schema } = process.env
const database = url && schema ? new pg.Client({ connectionString: url }) : undefined
if (database && schema) {
  await database.connect()
  const table = `"${schema}".bench_durable_hello`
  const channel = `${schema}_hello` // the run's own: another run on the same server is not heard
  await database.query(`CREATE TABLE IF NOT EXISTS ${table} (id bigserial PRIMARY KEY, payload jsonb NOT NULL)`)
  app.post('/durable', async () => {
    const { rows } = await database.query<{ id: string }>({
      name: 'durable_hello',
      text: `WITH appended AS (INSERT INTO ${table} (payload) VALUES ($1) RETURNING id) SELECT id, pg_notify($2, id::text) FROM appended`,
      values: ['{"msg":"bench"}', channel],
    })
    return { id: Number(rows[0].id) }
  })

  // The long poll: `after` is the newest row id the caller has heard of, a cursor. It
  // answers at once when a newer row's NOTIFY arrived since, else with the next one (or
  // unchanged after WAIT_HOLD_MS), with the newest id heard.
  const listener = new pg.Client({ connectionString: url })
  listener.on('error', (error) => {
    console.error(`hello-server: the LISTEN connection failed: ${error.message}`)
    process.exit(1)
  })
  await listener.connect()
  let newest = 0
  const waiters = new Set<() => void>()
  listener.on('notification', ({ payload }) => {
    newest = Math.max(newest, Number(payload))
    for (const wake of [...waiters]) wake()
  })
  await listener.query(`LISTEN "${channel}"`)
  app.post<{ Body: { after?: number } }>('/wait', async (request) => {
    const after = Number(request.body?.after ?? 0)
    if (newest <= after) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer)
          waiters.delete(done)
          resolve()
        }
        const timer = setTimeout(done, WAIT_HOLD_MS)
        waiters.add(done)
      })
    }
    return { newest }
  })
  app.addHook('preClose', async () => {
    for (const wake of [...waiters]) wake()
  })
  app.addHook('onClose', async () => {
    await listener.end()
  })
}
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })

const close = () => app.close().then(() => database?.end()).then(() => process.exit(0))
process.once('SIGTERM', close)
process.once('SIGINT', close)
