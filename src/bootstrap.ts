// What the launcher and the command-line tools share: the configuration from the
// environment, and a database (the embedded one when DATABASE_URL is unset).
import { randomBytes } from 'node:crypto'
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { ConfigError, configFromEnv, DEFAULTS, type Config } from './config.js'
import { claimDataDir, startEmbeddedDatabase } from './embedded-database.js'
import { generateVapidKeys, type VapidKeys } from './vapid.js'

/**
 * The content of DATA_DIR/`name`, made by `generate` the first time (mode 0600). Processes
 * sharing DATA_DIR share it: the file appears whole or not at all (written aside, then
 * linked into place), and a process that loses the race to create it reads the winner's.
 */
async function keptInDataDir(dataDir: string, name: string, generate: () => string): Promise<string> {
  const file = path.join(dataDir, name)
  try {
    return (await readFile(file, 'utf8')).trim()
  } catch {
    await mkdir(dataDir, { recursive: true })
    const aside = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`
    const content = generate()
    await writeFile(aside, content, { mode: 0o600 })
    try {
      await link(aside, file)
      return content
    } catch {
      return (await readFile(file, 'utf8')).trim() // another process made it first
    } finally {
      await rm(aside, { force: true })
    }
  }
}

/** JWT_SECRET, or a secret generated once and kept in DATA_DIR/jwt-secret. */
async function jwtSecretFor(env: NodeJS.ProcessEnv, dataDir: string): Promise<string> {
  return env.JWT_SECRET || keptInDataDir(dataDir, 'jwt-secret', () => randomBytes(48).toString('base64url'))
}

/** The VAPID pair kept in DATA_DIR/vapid-keys.json; none when the environment gives one. */
async function vapidKeysFor(env: NodeJS.ProcessEnv, dataDir: string): Promise<VapidKeys | undefined> {
  if (env.VAPID_PUBLIC_KEY || env.VAPID_PRIVATE_KEY) return undefined
  const kept = await keptInDataDir(dataDir, 'vapid-keys.json', () => JSON.stringify(generateVapidKeys()))
  const { publicKey, privateKey } = JSON.parse(kept) as Partial<VapidKeys>
  if (typeof publicKey !== 'string' || typeof privateKey !== 'string') throw new Error(`${path.join(dataDir, 'vapid-keys.json')} lacks publicKey or privateKey`)
  return { publicKey, privateKey }
}

export async function loadConfig(env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  const dataDir = env.DATA_DIR || DEFAULTS.DATA_DIR
  const [secret, vapidKeys] = await Promise.all([jwtSecretFor(env, dataDir), vapidKeysFor(env, dataDir)]).catch((error: Error) => {
    throw new ConfigError(
      `DATA_DIR ${path.resolve(dataDir)} cannot be used: ${error.message}. Choose another DATA_DIR, or set JWT_SECRET, VAPID_PUBLIC_KEY, VAPID_PRIVATE_KEY and DATABASE_URL.`,
    )
  })
  return configFromEnv(env, secret, vapidKeys)
}

/**
 * What the launcher warns of once at boot: settings that work here but not everywhere
 * (each `setting`, with what to do in `msg`).
 */
export function bootWarnings(config: Config): { setting: string; msg: string }[] {
  const warnings: { setting: string; msg: string }[] = []
  if (config.vapidSubject === DEFAULTS.VAPID_SUBJECT) {
    warnings.push({
      setting: 'VAPID_SUBJECT',
      msg:
        `VAPID_SUBJECT is ${DEFAULTS.VAPID_SUBJECT}, the default, which Apple's push service refuses (403 BadJwtToken): ` +
        'no push reaches Safari on a Mac, iPhone or iPad. Set it to a real mailto: address or https: URL of yours.',
    })
  }
  return warnings
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
