// The bench's HTTP client: an undici pool of keep-alive connections, as long-polling
// clients hold theirs (one connection per request in flight, as many as needed). undici
// rather than node:http: it takes about half the CPU per request, and on a small machine
// the load generator shares the cores with the server it measures. Every request has a
// timeout, so no loop can hang on it.
import { Client, Pool } from 'undici'

export interface Reply {
  status: number
  body: any
  /** performance.now() once the whole reply was read and parsed. */
  at: number
}

export interface RequestOptions {
  signal?: AbortSignal
  /** Inactivity limit for this request; defaults to 30 s. */
  timeoutMs?: number
}

const KEEP_ALIVE = { pipelining: 1, keepAliveTimeout: 120_000, keepAliveMaxTimeout: 120_000 }

export class HttpClient {
  private readonly pool: Pool | Client

  /**
   * `oneConnection`: every request on one keep-alive connection, one at a time, as a
   * long-polling client holds its own. A shared pool would open a new connection for a
   * poll sent straight after the previous reply, before the pool has taken that reply's
   * connection back: a thousand members answered at once would then reconnect at once.
   */
  constructor(readonly base: string, { oneConnection = false } = {}) {
    this.pool = oneConnection ? new Client(base, KEEP_ALIVE) : new Pool(base, { connections: null, ...KEEP_ALIVE })
  }

  /** POST /<command> with a JSON body and, when given, a bearer token. */
  async post(command: string, body: unknown, token?: string, options: RequestOptions = {}): Promise<Reply> {
    const timeoutMs = options.timeoutMs ?? 30_000
    const response = await this.pool.request({
      path: `/${command}`,
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
      signal: options.signal,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    })
    const text = await response.body.text()
    let parsed: unknown = text
    try {
      parsed = text ? JSON.parse(text) : null
    } catch {
      // not JSON: keep the text for the error message
    }
    return { status: response.statusCode, body: parsed, at: performance.now() }
  }

  /** POST that must answer 200; anything else throws with the reply in the message. */
  async ok(command: string, body: unknown, token?: string, options?: RequestOptions): Promise<Reply> {
    const reply = await this.post(command, body, token, options)
    if (reply.status !== 200) throw new Error(`${command} answered ${reply.status}: ${JSON.stringify(reply.body)}`)
    return reply
  }

  /** Closes every socket, in-flight requests included (they fail). */
  close(): void {
    this.pool.destroy().catch(() => {})
  }
}

/** Errors that mean this process (or the server) ran out of file descriptors or ports. */
export function isResourceExhaustion(error: unknown): boolean {
  const failure = error as (NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException }) | undefined
  const code = failure?.code ?? failure?.cause?.code
  return code === 'EMFILE' || code === 'ENFILE' || code === 'EADDRNOTAVAIL'
}
