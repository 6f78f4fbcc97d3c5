// For the knex CLI (`npx knex migrate:status`). The server and `npm run migrate` use
// src/database.ts directly; this file only points the CLI at the same settings.
import { createKnex } from './src/database.js'

const url = process.env.DATABASE_URL
if (!url) throw new Error('Set DATABASE_URL to use the knex CLI (the embedded database is started by npm start / npm run migrate)')

export default createKnex({ url, schema: process.env.DATABASE_SCHEMA || 'public' }).client.config
