// npm run migrate: applies pending migrations to DATABASE_URL, or to the embedded database.
import { loadConfig, openDatabase } from '../bootstrap.js'
import { createKnex, migrate } from '../database.js'

const config = await loadConfig()
const database = await openDatabase(config, () => {})
const knex = createKnex({ url: database.url, schema: config.databaseSchema, poolMax: 1 })
try {
  const applied = await migrate(knex, config.databaseSchema)
  console.log(applied.length ? `Applied: ${applied.join(', ')}` : 'Already up to date')
} finally {
  await knex.destroy()
  await database.close()
}
