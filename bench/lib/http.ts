// The bench's HTTP client: node:http over one keep-alive agent, as a long-polling client
// would hold its connections. Every request has a timeout, so no loop can hang on it.
import http from 'node:http'

export interface Reply {
  status: number
  body: any
  /** performance.now() once the whole reply was read and parsed. */
  at: number
}

export interface RequestOptions {
  signal?: AbortSignal
  /** Socket inactivity limit for this request; defaults to 30 s. */
  timeoutMs?: number
}

export class HttpClient {
  readonly agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 100_000 })
  private readonly host: string
  private readonly port: number

  constructor(readonly base: string) {
    const url = new URL(base)
    this.host = url.hostname
    this.port = Number(url.port)
  }

  /** POST /<command> with a JSON body and, when given, a bearer token. */
  post(command: string, body: unknown, token?: string, options: RequestOptions = {}): Promise<Reply> {
    const payload = Buffer.from(JSON.stringify(body))
    return new Promise((resolve, reject) => {
      const request = http.request(
        {
          host: this.host,
          port: this.port,
          path: `/${command}`,
          method: 'POST',
          agent: this.agent,
          signal: options.signal,
          headers: {
            'content-type': 'application/json',
            'content-length': payload.length,
            ...(token ? { authorization: `Bearer ${token}` } : {}),
          },
        },
        (response) => {
          const chunks: Buffer[] = []
          let ended = false
          response.on('data', (chunk: Buffer) => chunks.push(chunk))
          response.on('end', () => {
            ended = true
            const text = Buffer.concat(chunks).toString('utf8')
            let parsed: unknown = text
            try {
              parsed = text ? JSON.parse(text) : null
            } catch {
              // not JSON: keep the text for the error message
            }
            resolve({ status: response.statusCode ?? 0, body: parsed, at: performance.now() })
          })
          response.on('error', reject)
          response.on('close', () => {
            if (!ended) reject(new Error(`${command}: connection closed mid-reply`))
          })
        },
      )
      request.on('error', reject)
      const timeoutMs = options.timeoutMs ?? 30_000
      request.setTimeout(timeoutMs, () => request.destroy(new Error(`${command}: no reply within ${timeoutMs} ms`)))
      request.end(payload)
    })
  }

  /** POST that must answer 200; anything else throws with the reply in the message. */
  async ok(command: string, body: unknown, token?: string, options?: RequestOptions): Promise<Reply> {
    const reply = await this.post(command, body, token, options)
    if (reply.status !== 200) throw new Error(`${command} answered ${reply.status}: ${JSON.stringify(reply.body)}`)
    return reply
  }

  /** Closes every socket, in-flight requests included (they fail with a reset). */
  close(): void {
    this.agent.destroy()
  }
}

/** Errors that mean this process (or the server) ran out of file descriptors or ports. */
export function isResourceExhaustion(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  return code === 'EMFILE' || code === 'ENFILE' || code === 'EADDRNOTAVAIL'
}
