// The launcher: configuration, the database (embedded unless DATABASE_URL is set),
// migrations, the listening socket, and a graceful shutdown on SIGTERM/SIGINT.
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { loadConfig, openDatabase } from './bootstrap.js'
import { ConfigError } from './config.js'
import { createKnex, migrate } from './database.js'
import { DataDirError } from './embedded-database.js'

const startedAt = performance.now()

async function main() {
  const config = await loadConfig()
  const database = await openDatabase(config, () => {})
  const runtimeConfig = { ...config, databaseUrl: database.url }

  const knex = createKnex({ url: database.url, schema: config.databaseSchema, poolMax: 1 })
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
    await database.close()
  })
  await app.listen({ port: config.port, host: config.host })
  app.log.info(
    { database: database.embedded ? `embedded (${config.dataDir}/postgres)` : 'DATABASE_URL', startupMs: Math.round(performance.now() - startedAt) },
    'messenger ready',
  )
}

main().catch((error) => {
  if (error instanceof ConfigError || error instanceof DataDirError) {
    console.error(error.message)
  } else {
    console.error('Failed to start:', error)
  }
  process.exit(1)
})
