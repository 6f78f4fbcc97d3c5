// The OpenAPI document as the app generates it. Building the app connects to nothing
// (knex and the LISTEN connection are lazy), so no database is needed here.
import { buildApp } from './app.js'
import { defaultConfig } from './config.js'

export async function generateOpenApiDocument(): Promise<unknown> {
  const app = await buildApp(
    defaultConfig({ jwtSecret: 'unused-unused-unused-unused-unused-unused', databaseUrl: 'postgres://unused/unused', logLevel: 'silent' }),
  )
  try {
    await app.ready()
    return app.swagger()
  } finally {
    await app.close()
  }
}

export function formatDocument(document: unknown): string {
  return JSON.stringify(document, null, 2) + '\n'
}
