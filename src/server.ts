// The launcher: configuration, the database (embedded unless DATABASE_URL is set),
// migrations, the listening socket, and a graceful shutdown on SIGTERM/SIGINT.
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { loadConfig, openDatabase, type OpenedDatabase } from './bootstrap.js'
import { ConfigError } from './config.js'
import { createKnex, migrate } from './database.js'
import { EmbeddedDatabaseError } from './embedded-database.js'

const startedAt = performance.now()
let database: OpenedDatabase | undefined

async function main() {
  const config = await loadConfig()
  database = await openDatabase(config, () => {})
  const opened = database
  const runtimeConfig = { ...config, databaseUrl: opened.url }

  const knex = createKnex({ url: opened.url, schema: config.databaseSchema, poolMax: 1 })
  try {
    await migrate(knex, config.databaseSchema)
  } finally {
    await knex.destroy()
  }

  const app = await buildApp(runtimeConfig)
  closeWithGrace({ delay: config.shutdownGraceMs }, async ({ signal, err }) => {
    if (err) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await app.close() // answers held polls, finishes in-flight requests
    await opened.close()
  })
  await app.listen({ port: config.port, host: config.host })
  app.log.info(
    { database: opened.embedded ? `embedded (${opened.location})` : 'DATABASE_URL', startupMs: Math.round(performance.now() - startedAt) },
    'messenger ready',
  )
}

main().catch(async (error) => {
  // What the user can act on is said in one message; anything else keeps its stack.
  if (error instanceof ConfigError || error instanceof EmbeddedDatabaseError) console.error(error.message)
  else console.error('Failed to start:', error)
  await database?.close().catch(() => {})
  process.exit(1)
})
