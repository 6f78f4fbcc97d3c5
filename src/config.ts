// Configuration: read from the environment once, validated at boot.
// Every limit of the product is named here with its default.
import { Ajv } from 'ajv'
import { Type, type Static } from 'typebox'
import { IceServer } from './schemas/calls.js'
import { isVapidPair, processVapidKeys, type VapidKeys } from './vapid.js'

export const DEFAULTS = {
  PORT: 3000,
  HOST: '127.0.0.1',
  DATA_DIR: './data',
  LOG_LEVEL: 'info',
  /**
   * Server processes sharing the port (node:cluster); each has its own database pool, and
   * without REDIS_URL its own rate-limit counters and /metrics.
   */
  WORKERS: 1,
  /** Session lifetime: a token expires this many seconds after it was issued. */
  SESSION_TTL_SECONDS: 30 * 24 * 3600,
  /** Requests per minute per client IP, across all routes. */
  RATE_LIMIT_PER_MINUTE: 6000,
  /** Messages (send_msg, broadcast) per user per minute, across processes with REDIS_URL. */
  SEND_RATE_PER_MINUTE: 600,
  /** Registrations per client IP per hour. */
  REGISTRATIONS_PER_IP_PER_HOUR: 30,
  /** Failed logins per login within the window before 429. */
  LOGIN_MAX_FAILURES: 5,
  LOGIN_FAILURE_WINDOW_SECONDS: 300,
  /** Request bodies larger than this are refused with 413. */
  BODY_LIMIT_BYTES: 1024 * 1024,
  /** Longest message text, in characters. */
  MAX_MESSAGE_CHARS: 4096,
  /** Long-poll: default and maximum hold time of update_data, in seconds. */
  POLL_DEFAULT_SECONDS: 25,
  POLL_MAX_SECONDS: 60,
  /** Longest reaction, in characters (an emoji with skin tone and joiners is several). */
  MAX_REACTION_CHARS: 16,
  /** Pinned messages per conversation (a direct chat, a room). */
  MAX_PINS_PER_CONVERSATION: 50,
  /** A typing notice lasts this long unless renewed. */
  TYPING_SECONDS: 6,
  /** Typing notices a user may send per minute (per process). */
  TYPING_PER_MINUTE: 60,
  /** Items (messages + events) in one update_data reply; the client polls again for more. */
  POLL_BATCH_LIMIT: 100,
  /** Held polls per user; a new one beyond this ends the oldest. */
  MAX_HELD_POLLS_PER_USER: 4,
  /** Idle keep-alive connections stay open this long (the desktop client reuses them for 60 s). */
  KEEP_ALIVE_TIMEOUT_MS: 76_000,
  /** On SIGTERM, the process exits after at most this long. */
  SHUTDOWN_GRACE_MS: 10_000,
  /** Registration sends a one-time code by e-mail; login waits for `verify`. */
  REQUIRE_EMAIL_VERIFICATION: false,
  /** Sender address of the product's mails. */
  MAIL_FROM: 'messenger@localhost',
  /** A one-time e-mail code expires after this long, and dies after this many wrong tries. */
  EMAIL_CODE_TTL_SECONDS: 600,
  EMAIL_CODE_MAX_ATTEMPTS: 5,
  /** Codes can be re-sent at most once per interval, and this many times per hour. */
  EMAIL_RESEND_INTERVAL_SECONDS: 60,
  EMAIL_MAX_SENDS_PER_HOUR: 5,
  /** A user is online while polling and for this long after the last poll ended. */
  PRESENCE_GRACE_SECONDS: 60,
  /** How often each process records its pollers as seen and turns silent users offline. */
  PRESENCE_SWEEP_SECONDS: 10,
  /** Public keys a user may publish. */
  MAX_PUBLIC_KEYS: 10,
  /** Largest upload, in bytes. */
  MAX_FILE_BYTES: 50 * 1024 * 1024,
  /** Uploads no message carries are removed after this long. */
  UPLOAD_TTL_SECONDS: 24 * 3600,
  /** An unanswered call times out after this long. */
  CALL_RING_SECONDS: 30,
  /** How often each process looks for calls to time out. */
  CALL_SWEEP_MS: 1000,
  /** Largest offer, answer or ICE candidate relayed, in bytes of JSON. */
  MAX_CALL_SIGNAL_BYTES: 16 * 1024,
  /** STUN/TURN servers handed to both sides of an accepted call: a JSON array of RTCIceServer. */
  ICE_SERVERS: '[]',
  /** Logins allowed to broadcast, comma-separated. */
  ADMIN_LOGINS: '',
  /**
   * Web origins (scheme://host[:port]) whose pages may call the API, comma-separated; `*`
   * allows any. The server's own pages need no entry.
   */
  CORS_ORIGINS: '',
  /** Web Push: whom push services may contact about this server (a mailto: or https: URL). */
  VAPID_SUBJECT: 'mailto:admin@localhost',
  /** Web Push subscriptions (browsers, devices) per user. */
  MAX_PUSH_SUBSCRIPTIONS_PER_USER: 10,
  /** How long a push service keeps a push for a device that is away. */
  PUSH_TTL_SECONDS: 24 * 3600,
  /** A push service's answer is awaited this long. */
  PUSH_TIMEOUT_MS: 10_000,
  /** A push that failed (5xx, 429, timeout, network) is tried again this many times, … */
  PUSH_RETRIES: 3,
  /** … first after this long, then twice as long each time. */
  PUSH_RETRY_BASE_MS: 1000,
  /** Pushes in flight at once, per process. */
  PUSH_CONCURRENCY: 16,
  /** Pushes waiting to be sent or tried again, per process; beyond this, new ones are dropped. */
  PUSH_QUEUE_LIMIT: 10_000,
} as const

const LogLevel = Type.Enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])

export const ConfigSchema = Type.Object({
  port: Type.Integer({ minimum: 0, maximum: 65535 }),
  host: Type.String({ minLength: 1 }),
  databaseUrl: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  /** PostgreSQL schema holding the tables; lets several instances (or test runs) share a database. */
  databaseSchema: Type.String({ pattern: '^[a-z_][a-z0-9_]{0,62}$' }),
  dataDir: Type.String({ minLength: 1 }),
  jwtSecret: Type.String({ minLength: 32 }),
  logLevel: LogLevel,
  workers: Type.Integer({ minimum: 1, maximum: 256 }),
  sessionTtlSeconds: Type.Integer({ minimum: 60 }),
  rateLimitPerMinute: Type.Integer({ minimum: 1 }),
  sendRatePerMinute: Type.Integer({ minimum: 1 }),
  registrationsPerIpPerHour: Type.Integer({ minimum: 1 }),
  /** Rate-limit counters live here when set (shared by every process), else in memory. */
  redisUrl: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  loginMaxFailures: Type.Integer({ minimum: 1 }),
  loginFailureWindowSeconds: Type.Integer({ minimum: 1 }),
  bodyLimitBytes: Type.Integer({ minimum: 1024 }),
  maxMessageChars: Type.Integer({ minimum: 1 }),
  maxReactionChars: Type.Integer({ minimum: 1, maximum: 64 }),
  maxPinsPerConversation: Type.Integer({ minimum: 1 }),
  typingSeconds: Type.Integer({ minimum: 1, maximum: 60 }),
  typingPerMinute: Type.Integer({ minimum: 1 }),
  pollDefaultSeconds: Type.Number({ minimum: 0 }),
  pollMaxSeconds: Type.Number({ minimum: 0 }),
  pollBatchLimit: Type.Integer({ minimum: 1, maximum: 10_000 }),
  maxHeldPollsPerUser: Type.Integer({ minimum: 1 }),
  keepAliveTimeoutMs: Type.Integer({ minimum: 0 }),
  shutdownGraceMs: Type.Integer({ minimum: 0 }),
  requireEmailVerification: Type.Boolean(),
  /** Unset: mails are written to DATA_DIR/outbox instead of sent. */
  smtpUrl: Type.Optional(Type.String({ pattern: '^smtps?://' })),
  mailFrom: Type.String({ minLength: 3 }),
  emailCodeTtlSeconds: Type.Integer({ minimum: 1 }),
  emailCodeMaxAttempts: Type.Integer({ minimum: 1 }),
  emailResendIntervalSeconds: Type.Integer({ minimum: 0 }),
  emailMaxSendsPerHour: Type.Integer({ minimum: 1 }),
  presenceGraceSeconds: Type.Integer({ minimum: 1 }),
  presenceSweepSeconds: Type.Number({ exclusiveMinimum: 0 }),
  maxPublicKeys: Type.Integer({ minimum: 1 }),
  maxFileBytes: Type.Integer({ minimum: 1 }),
  uploadTtlSeconds: Type.Integer({ minimum: 1 }),
  callRingSeconds: Type.Number({ exclusiveMinimum: 0 }),
  callSweepMs: Type.Integer({ minimum: 10 }),
  maxCallSignalBytes: Type.Integer({ minimum: 64 }),
  iceServers: Type.Array(IceServer, { maxItems: 16 }),
  /** Lower-cased. */
  adminLogins: Type.Array(Type.String({ minLength: 1 })),
  /** Exact origins, or `*` alone. */
  corsOrigins: Type.Array(Type.String({ pattern: '^(\\*|https?://[^/?#\\s]+)$' }), { maxItems: 100 }),
  /** VAPID key pair, base64url: an uncompressed P-256 point (65 bytes) and its private key (32 bytes). */
  vapidPublicKey: Type.String({ pattern: '^B[A-Za-z0-9_-]{86}$' }),
  vapidPrivateKey: Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' }),
  vapidSubject: Type.String({ pattern: '^(mailto:[^\\s@]+@[^\\s@]+|https://[^\\s/]+\\S*)$' }),
  maxPushSubscriptionsPerUser: Type.Integer({ minimum: 1, maximum: 1000 }),
  /** RFC 8030 caps nothing; push services keep at most four weeks. */
  pushTtlSeconds: Type.Integer({ minimum: 0, maximum: 28 * 24 * 3600 }),
  pushTimeoutMs: Type.Integer({ minimum: 1 }),
  pushRetries: Type.Integer({ minimum: 0, maximum: 10 }),
  pushRetryBaseMs: Type.Integer({ minimum: 1 }),
  pushConcurrency: Type.Integer({ minimum: 1, maximum: 1000 }),
  pushQueueLimit: Type.Integer({ minimum: 1 }),
})
export type Config = Static<typeof ConfigSchema>

export class ConfigError extends Error {
  override name = 'ConfigError'
}

type Env = Record<string, string | undefined>

function integer(env: Env, name: keyof typeof DEFAULTS): number {
  const raw = env[name]
  if (raw === undefined || raw === '') return DEFAULTS[name] as number
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${name} must be an integer, got "${raw}"`)
  return Number(raw)
}

function flag(env: Env, name: keyof typeof DEFAULTS): boolean {
  const raw = env[name]?.trim().toLowerCase()
  if (raw === undefined || raw === '') return DEFAULTS[name] as boolean
  if (['true', '1', 'yes'].includes(raw)) return true
  if (['false', '0', 'no'].includes(raw)) return false
  throw new ConfigError(`${name} must be true or false, got "${env[name]}"`)
}

function json(env: Env, name: keyof typeof DEFAULTS): unknown {
  try {
    return JSON.parse(text(env, name))
  } catch {
    throw new ConfigError(`${name} must be JSON, got "${env[name]}"`)
  }
}

function text(env: Env, name: keyof typeof DEFAULTS): string {
  const raw = env[name]
  return raw === undefined || raw === '' ? String(DEFAULTS[name]) : raw
}

function list(env: Env, name: keyof typeof DEFAULTS): string[] {
  return text(env, name)
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean)
}

/** VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY, set together; else `kept`. */
function vapidKeys(env: Env, kept: VapidKeys): Pick<Config, 'vapidPublicKey' | 'vapidPrivateKey'> {
  const publicKey = env.VAPID_PUBLIC_KEY || undefined
  const privateKey = env.VAPID_PRIVATE_KEY || undefined
  if ((publicKey === undefined) !== (privateKey === undefined)) throw new ConfigError('VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY are set together, or neither')
  return { vapidPublicKey: publicKey ?? kept.publicKey, vapidPrivateKey: privateKey ?? kept.privateKey }
}

/**
 * Builds the configuration from environment variables. `jwtSecret` and `kept` (the VAPID
 * pair) are passed in because, when JWT_SECRET and the VAPID keys are unset, the launcher
 * keeps generated ones in DATA_DIR; without `kept`, a pair of this process's own.
 */
export function configFromEnv(env: Env, jwtSecret: string, kept: VapidKeys = processVapidKeys()): Config {
  const config: Config = {
    port: integer(env, 'PORT'),
    host: text(env, 'HOST'),
    databaseUrl: env.DATABASE_URL || undefined,
    databaseSchema: env.DATABASE_SCHEMA || 'public',
    dataDir: text(env, 'DATA_DIR'),
    jwtSecret,
    logLevel: text(env, 'LOG_LEVEL') as Config['logLevel'],
    workers: integer(env, 'WORKERS'),
    sessionTtlSeconds: integer(env, 'SESSION_TTL_SECONDS'),
    rateLimitPerMinute: integer(env, 'RATE_LIMIT_PER_MINUTE'),
    sendRatePerMinute: integer(env, 'SEND_RATE_PER_MINUTE'),
    registrationsPerIpPerHour: integer(env, 'REGISTRATIONS_PER_IP_PER_HOUR'),
    redisUrl: env.REDIS_URL || undefined,
    loginMaxFailures: integer(env, 'LOGIN_MAX_FAILURES'),
    loginFailureWindowSeconds: integer(env, 'LOGIN_FAILURE_WINDOW_SECONDS'),
    bodyLimitBytes: integer(env, 'BODY_LIMIT_BYTES'),
    maxMessageChars: integer(env, 'MAX_MESSAGE_CHARS'),
    maxReactionChars: integer(env, 'MAX_REACTION_CHARS'),
    maxPinsPerConversation: integer(env, 'MAX_PINS_PER_CONVERSATION'),
    typingSeconds: integer(env, 'TYPING_SECONDS'),
    typingPerMinute: integer(env, 'TYPING_PER_MINUTE'),
    pollDefaultSeconds: integer(env, 'POLL_DEFAULT_SECONDS'),
    pollMaxSeconds: integer(env, 'POLL_MAX_SECONDS'),
    pollBatchLimit: integer(env, 'POLL_BATCH_LIMIT'),
    maxHeldPollsPerUser: integer(env, 'MAX_HELD_POLLS_PER_USER'),
    keepAliveTimeoutMs: integer(env, 'KEEP_ALIVE_TIMEOUT_MS'),
    shutdownGraceMs: integer(env, 'SHUTDOWN_GRACE_MS'),
    requireEmailVerification: flag(env, 'REQUIRE_EMAIL_VERIFICATION'),
    smtpUrl: env.SMTP_URL || undefined,
    mailFrom: text(env, 'MAIL_FROM'),
    emailCodeTtlSeconds: integer(env, 'EMAIL_CODE_TTL_SECONDS'),
    emailCodeMaxAttempts: integer(env, 'EMAIL_CODE_MAX_ATTEMPTS'),
    emailResendIntervalSeconds: integer(env, 'EMAIL_RESEND_INTERVAL_SECONDS'),
    emailMaxSendsPerHour: integer(env, 'EMAIL_MAX_SENDS_PER_HOUR'),
    presenceGraceSeconds: integer(env, 'PRESENCE_GRACE_SECONDS'),
    presenceSweepSeconds: integer(env, 'PRESENCE_SWEEP_SECONDS'),
    maxPublicKeys: integer(env, 'MAX_PUBLIC_KEYS'),
    maxFileBytes: integer(env, 'MAX_FILE_BYTES'),
    uploadTtlSeconds: integer(env, 'UPLOAD_TTL_SECONDS'),
    callRingSeconds: integer(env, 'CALL_RING_SECONDS'),
    callSweepMs: integer(env, 'CALL_SWEEP_MS'),
    maxCallSignalBytes: integer(env, 'MAX_CALL_SIGNAL_BYTES'),
    iceServers: json(env, 'ICE_SERVERS') as Config['iceServers'],
    adminLogins: list(env, 'ADMIN_LOGINS').map((login) => login.toLowerCase()),
    // Browsers send the Origin header's scheme and host in lower case.
    corsOrigins: list(env, 'CORS_ORIGINS').map((origin) => origin.replace(/\/$/, '').toLowerCase()),
    ...vapidKeys(env, kept),
    vapidSubject: text(env, 'VAPID_SUBJECT'),
    maxPushSubscriptionsPerUser: integer(env, 'MAX_PUSH_SUBSCRIPTIONS_PER_USER'),
    pushTtlSeconds: integer(env, 'PUSH_TTL_SECONDS'),
    pushTimeoutMs: integer(env, 'PUSH_TIMEOUT_MS'),
    pushRetries: integer(env, 'PUSH_RETRIES'),
    pushRetryBaseMs: integer(env, 'PUSH_RETRY_BASE_MS'),
    pushConcurrency: integer(env, 'PUSH_CONCURRENCY'),
    pushQueueLimit: integer(env, 'PUSH_QUEUE_LIMIT'),
  }
  return validateConfig(config)
}

/** Defaults for everything but the secret: what tests and tools start from. */
export function defaultConfig(overrides: Partial<Config> & { jwtSecret: string }): Config {
  return validateConfig({ ...configFromEnv({}, overrides.jwtSecret), ...overrides })
}

// Checked with ajv, as requests are, listing every error at once; typebox/value would
// add a few hundred modules to every start.
const configErrors = new Ajv({ allErrors: true, strict: false }).compile(ConfigSchema)

export function validateConfig(config: Config): Config {
  if (!configErrors(config)) {
    const lines = (configErrors.errors ?? []).map((e) => `  ${e.instancePath || '/'}: ${e.message}`)
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`)
  }
  if (config.pollDefaultSeconds > config.pollMaxSeconds) {
    throw new ConfigError('POLL_DEFAULT_SECONDS must not exceed POLL_MAX_SECONDS')
  }
  if (!isVapidPair({ publicKey: config.vapidPublicKey, privateKey: config.vapidPrivateKey })) {
    throw new ConfigError('VAPID_PUBLIC_KEY is not the public key of VAPID_PRIVATE_KEY')
  }
  if (config.corsOrigins.includes('*') && config.corsOrigins.length > 1) {
    throw new ConfigError('CORS_ORIGINS is either * or a list of origins, not both')
  }
  if (config.presenceSweepSeconds * 2 > config.presenceGraceSeconds) {
    // Else a user polling through another process could be swept offline between two records.
    throw new ConfigError('PRESENCE_SWEEP_SECONDS must be at most half of PRESENCE_GRACE_SECONDS')
  }
  return config
}
