// The database: a knex pool, decorated as `app.db`, destroyed on close.
import fp from 'fastify-plugin'
import type { Knex } from 'knex'
import { createKnex } from '../database.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Knex
  }
}

export default fp(
  async (app) => {
    const { databaseUrl, databaseSchema } = app.config
    if (!databaseUrl) throw new Error('databaseUrl is required: the launcher resolves it (embedded database or DATABASE_URL)')
    const db = createKnex({ url: databaseUrl, schema: databaseSchema })
    app.decorate('db', db)
    app.addHook('onClose', () => db.destroy())
  },
  { name: 'database', dependencies: ['config'] },
)
