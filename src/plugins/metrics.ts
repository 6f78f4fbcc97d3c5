// Operations: GET /healthz (the process is up), GET /readyz (the database answers) and
// Prometheus metrics at GET /metrics: request rates and latencies per route, held polls,
// event-log delivery lag, the database pool, the grouping of direct sends, web pushes,
// plus Node's own (memory, CPU, event loop).
// Hidden from the OpenAPI document: they are for operators, not clients.
import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: { deliveryLag: Histogram }
  }
}

interface KnexPool {
  numUsed(): number
  numFree(): number
  numPendingAcquires(): number
}

const READY_TIMEOUT_MS = 2000

export default fp(
  async (app) => {
    const registry = new Registry()
    collectDefaultMetrics({ register: registry })

    const requests = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP requests by route, method and status, with their latency',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 60],
      registers: [registry],
    })
    const errors = new Counter({ name: 'http_errors_total', help: 'Error replies by stable code', labelNames: ['code'], registers: [registry] })
    new Gauge({
      name: 'messenger_held_polls',
      help: 'update_data requests held in this process',
      registers: [registry],
      collect() {
        this.set(app.eventLog.polls.size)
      },
    })
    new Gauge({
      name: 'messenger_db_pool_connections',
      help: "Database pool connections by pool (main, or the event log's hot path) and state",
      labelNames: ['pool', 'state'],
      registers: [registry],
      collect() {
        for (const [name, db] of [['main', app.db], ['hot', app.hotDb]] as const) {
          const pool = (db.client as { pool?: KnexPool }).pool
          if (!pool) continue
          this.set({ pool: name, state: 'used' }, pool.numUsed())
          this.set({ pool: name, state: 'free' }, pool.numFree())
          this.set({ pool: name, state: 'pending' }, pool.numPendingAcquires())
        }
      },
    })
    /** A counter kept by a service (a plain number), read at each scrape. */
    const serviceCounter = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers: [registry],
        collect() {
          this.reset()
          this.inc(read())
        },
      })
    const stats = () => app.eventLog.stats()
    serviceCounter(
      'messenger_direct_send_statements_total',
      'Statements that stored direct messages (each one commit for a group of concurrent sends)',
      () => stats().sends.batches,
    )
    serviceCounter(
      'messenger_direct_sends_total',
      'Direct messages handed to those statements; divided by the statements, the mean group size',
      () => stats().sends.items,
    )
    serviceCounter('messenger_log_reads_total', 'Event-log reads made by update_data polls', () => stats().reads.items)
    serviceCounter(
      'messenger_log_read_statements_total',
      'Statements that made those reads (the reads of polls woken together share one)',
      () => stats().reads.batches,
    )
    serviceCounter(
      'messenger_polls_answered_without_read_total',
      'Polls answered with the entries this process had just appended (no read of the log)',
      () => stats().handedOver,
    )
    serviceCounter(
      'messenger_log_reads_skipped_total',
      'Polls that waited without a first read: nothing after their cursor since the last wake-up',
      () => app.services.updates.skippedReads(),
    )
    serviceCounter(
      'messenger_presence_groups_total',
      'Transactions that recorded users as seen and turned the offline ones online, a group at a time',
      () => app.services.presence.stats().batches,
    )
    serviceCounter(
      'messenger_presence_seen_total',
      'Users recorded as seen by those groups; divided by the groups, the mean group size',
      () => app.services.presence.stats().items,
    )
    const pushes = () => app.services.push.stats()
    serviceCounter('messenger_push_lookups_total', 'Notices of news for users without a poll held here, whose push subscriptions were looked up', () => pushes().lookedUp)
    serviceCounter('messenger_push_lookup_statements_total', 'Statements that made those look-ups (notices waiting together share one)', () => pushes().lookupStatements)
    serviceCounter('messenger_pushes_sent_total', 'Web pushes the push services accepted', () => pushes().sent)
    serviceCounter('messenger_pushes_failed_total', 'Web pushes given up on (refused, or failing after PUSH_RETRIES retries)', () => pushes().failed)
    serviceCounter('messenger_pushes_dropped_total', 'Web pushes dropped unsent because PUSH_QUEUE_LIMIT were waiting', () => pushes().dropped)
    serviceCounter(
      'messenger_push_subscriptions_removed_total',
      'Push subscriptions removed because their push service answered 404 or 410',
      () => pushes().removed,
    )
    const deliveryLag = new Histogram({
      name: 'messenger_event_delivery_lag_seconds',
      help: 'Age of the newest log entry of an update_data reply when it was sent',
      buckets: [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 10, 60, 600],
      registers: [registry],
    })
    app.decorate('metrics', { deliveryLag })

    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched'
      requests.observe({ method: request.method, route, status: reply.statusCode }, reply.elapsedTime / 1000)
      if (reply.errorCode) errors.inc({ code: reply.errorCode })
    })

    const hide = { schema: { hide: true }, config: { rateLimit: false } }
    app.get('/healthz', hide, async () => ({ status: 'ok' }))
    app.get('/readyz', hide, async (_request, reply) => {
      try {
        await app.db.raw('SELECT 1').timeout(READY_TIMEOUT_MS, { cancel: true })
        return { status: 'ready' }
      } catch {
        return reply.code(503).header('retry-after', '1').send({ error: 'unavailable', message: 'The database does not answer' })
      }
    })
    app.get('/metrics', hide, async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()))
  },
  { name: 'metrics', dependencies: ['errors', 'database', 'event-log', 'services'] },
)
