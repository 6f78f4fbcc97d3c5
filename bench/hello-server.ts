// The hello-world baseline: a bare Fastify app in its own process, one POST route that
// parses a JSON body and answers JSON, the same work minus the messenger's logic.
import Fastify from 'fastify'

const app = Fastify({ logger: false })
app.post('/hello', async () => ({ hello: 'world' }))
app.get('/', async () => ({ ready: true }))
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })

const close = () => app.close().then(() => process.exit(0))
process.once('SIGTERM', close)
process.once('SIGINT', close)
