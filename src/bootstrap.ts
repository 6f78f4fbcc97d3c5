// What the launcher and the command-line tools share: the configuration from the
// environment, and a database (the embedded one when DATABASE_URL is unset).
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { ConfigError, configFromEnv, DEFAULTS, type Config } from './config.js'
import { claimDataDir, startEmbeddedDatabase } from './embedded-database.js'

/** JWT_SECRET, or a secret generated once and kept in DATA_DIR (processes sharing DATA_DIR share it). */
async function jwtSecretFor(env: NodeJS.ProcessEnv, dataDir: string): Promise<string> {
  if (env.JWT_SECRET) return env.JWT_SECRET
  const file = path.join(dataDir, 'jwt-secret')
  try {
    return (await readFile(file, 'utf8')).trim()
  } catch {
    await mkdir(dataDir, { recursive: true })
    const secret = randomBytes(48).toString('base64url')
    try {
      await writeFile(file, secret, { mode: 0o600, flag: 'wx' })
      return secret
    } catch {
      return (await readFile(file, 'utf8')).trim() // another process wrote it first
    }
  }
}

export async function loadConfig(env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  const dataDir = env.DATA_DIR || DEFAULTS.DATA_DIR
  const secret = await jwtSecretFor(env, dataDir).catch((error: Error) => {
    throw new ConfigError(`DATA_DIR ${path.resolve(dataDir)} cannot be used: ${error.message}. Choose another DATA_DIR, or set JWT_SECRET and DATABASE_URL.`)
  })
  return configFromEnv(env, secret)
}

export interface OpenedDatabase {
  url: string
  embedded: boolean
  /** The embedded cluster's directory. */
  location?: string
  close(): Promise<void>
}

/** The configured database, or the embedded one in DATA_DIR/postgres (claiming DATA_DIR). */
export async function openDatabase(config: Config, log: (line: string) => void): Promise<OpenedDatabase> {
  if (config.databaseUrl) return { url: config.databaseUrl, embedded: false, close: async () => {} }
  const release = await claimDataDir(config.dataDir)
  try {
    const cluster = await startEmbeddedDatabase({ clusterDir: path.join(config.dataDir, 'postgres'), log })
    return {
      url: cluster.url,
      embedded: true,
      location: cluster.clusterDir,
      close: async () => {
        await cluster.stop()
        await release()
      },
    }
  } catch (error) {
    await release()
    throw error
  }
}
