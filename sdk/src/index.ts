// The messenger's typed client, for browsers and Node 20+: it uses fetch, AbortSignal and
// Blob and nothing else, and has no dependencies.
//
// Every type comes from `paths` in ./api.ts, which openapi-typescript generates from the
// server's OpenAPI document (`npm run openapi` at the repository's root regenerates it; a
// test fails while it differs from the document the server serves). A command, its body
// and its reply therefore cannot disagree with the server without the compiler saying so.
//
// What it promises:
// - `client.<command>(body)` and `client.call('<command>', body)` POST /<command> with the
//   bearer token and resolve to the typed 200 reply; any other status throws an ApiError;
//   a network failure throws fetch's own error (a TypeError), for the caller to judge.
// - A reply that carries `session.token` (authorization, renew_token) sets `client.token`;
//   logout and logout_all clear it.
// - `client.updates()` is the long-poll as an async iterator: it keeps the cursor, waits
//   out Retry-After on 429 and 503, backs off on network failures, never yields a message
//   or an event twice, and ends on abort or `break`; see `updates` below.
import type { components, paths } from './api.js'

export type { paths } from './api.js'

// ---------------------------------------------------------------------------------------
// Types, all derived from `paths` (never from component names, which are the document's
// filing details).

type PathName<P> = P extends `/${infer Name}` ? Name : never
type PostOf<P> = P extends keyof paths ? NonNullable<paths[P]['post']> : never
type JsonReply<Operation> = Operation extends { responses: { 200: { content: { 'application/json': infer R } } } } ? R : never

/** The paths that take a JSON POST: the commands, and `/` (the wiki dialect's envelope). */
type JsonPostPath = {
  [P in keyof paths]: PostOf<P> extends { requestBody?: { content: { 'application/json': unknown } } } ? P : never
}[keyof paths]

/** A command: the name of its path (`send_msg` for POST /send_msg). */
export type CommandName = Exclude<PathName<JsonPostPath>, ''>

/** A command's JSON body. */
export type Body<N extends CommandName> = PostOf<`/${N}`> extends { requestBody?: { content: { 'application/json': infer B } } } ? B : never

/** A command's 200 reply. */
export type Reply<N extends CommandName> = JsonReply<PostOf<`/${N}`>>

type UpdateData = Reply<'update_data'>
/** A message as update_data delivers it (an item of `msg_array`). */
export type Message = UpdateData['msg_array'][number]
/** An event of the log (an item of `events_array`): a union to narrow on `type`. */
export type Event = UpdateData['events_array'][number]
/** Someone typing in a conversation of yours (an item of `typing`). */
export type TypingNotice = NonNullable<UpdateData['typing']>[number]
/** What a Web Push brings a service worker (decrypted by the browser): see push_subscribe. */
export type PushPayload = components['schemas']['PushPayload']

/**
 * One item of the long-poll. `cursor` is where to resume once this update is handled: the
 * previous poll's cursor for every update of a poll but its last, which carries the poll's
 * new cursor. A consumer that stores `update.cursor` after handling each update loses
 * nothing when it stops at any point.
 */
export type Update =
  | { kind: 'message'; message: Message; cursor: number }
  | { kind: 'event'; event: Event; cursor: number }
  | { kind: 'typing'; typing: TypingNotice[]; cursor: number }

/** POST /upload_file's reply: the stored file, to attach with `send_msg` `file_id`. */
export type UploadReply = JsonReply<NonNullable<paths['/upload_file']['post']>>
/** GET /get_user's reply. */
export type UserReply = JsonReply<NonNullable<paths['/get_user']['get']>>

export interface RequestOptions {
  /** Aborts the request (fetch then throws its AbortError). */
  signal?: AbortSignal
}

/** A command's arguments: its body (optional when every field is), then RequestOptions. */
type Args<N extends CommandName> = {} extends Body<N> ? [body?: Body<N>, options?: RequestOptions] : [body: Body<N>, options?: RequestOptions]

/** One method per command, named as its path. */
export type Commands = { [N in CommandName]: (...args: Args<N>) => Promise<Reply<N>> }

export interface ClientOptions {
  /** Where the server is, e.g. `http://127.0.0.1:3000` (no trailing path). */
  baseUrl: string
  /** A bearer token to start with (authorization's `session.token`). */
  token?: string
  /** The fetch to use; the global one unless given. */
  fetch?: typeof fetch
  /** How the long-poll waits (Retry-After, back-off): tests pass one that moves their own time. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>
}

export interface UpdatesOptions {
  /** Start after this cursor (authorization's reply has one); else from the position the server keeps. */
  cursor?: number
  /** Seconds the server may hold a poll when nothing is pending (the server's default is 25, its cap 60). */
  timeout?: number
  /** Ends the iteration (without an error) when aborted. */
  signal?: AbortSignal
}

/** The long-poll's iterator: `for await (const update of client.updates())`. */
export interface Updates extends AsyncIterable<Update> {
  /**
   * The cursor of the latest reply: where its next poll starts. It runs ahead of the updates
   * not yet yielded from that reply; to resume after a stop mid-reply without losing any,
   * keep the last handled `update.cursor` instead. Unset before the first reply when
   * started without one.
   */
  readonly cursor: number | undefined
  next(): Promise<IteratorResult<Update, undefined>>
  /** Stops it: a poll in flight is aborted. */
  return(): Promise<IteratorResult<Update, undefined>>
}

interface ClientMethods {
  /** The bearer token sent with every request. */
  token: string | undefined
  readonly baseUrl: string
  /** A command by name: `client.call('send_msg', { to_uid: 2, msg: 'hi' })`. */
  call<N extends CommandName>(name: N, ...args: Args<N>): Promise<Reply<N>>
  /** The `call` command itself (a voice or video call): `client.call({ to_uid, offer })`. */
  call(...args: Args<'call'>): Promise<Reply<'call'>>
  /** POST /upload_file: the bytes as the body, `name` in the query string, `type` as Content-Type. */
  uploadFile(data: Blob | ArrayBuffer | Uint8Array, options: { name: string; type?: string; signal?: AbortSignal }): Promise<UploadReply>
  /** GET /files/{file_id}: the Response (200, or 206 for a `range` such as `bytes=0-99`), its body unread. */
  downloadFile(fileId: number, options?: { range?: string; signal?: AbortSignal }): Promise<Response>
  /** GET /get_user?id=. */
  getUser(id: number, options?: RequestOptions): Promise<UserReply>
  /** The long-poll over POST /update_data as an async iterator. */
  updates(options?: UpdatesOptions): Updates
}

export type Client = Omit<Commands, keyof ClientMethods> & ClientMethods

// ---------------------------------------------------------------------------------------
// Errors

/** A reply other than 2xx. */
export class ApiError extends Error {
  override readonly name = 'ApiError'
  /** The HTTP status. */
  readonly status: number
  /** The body's stable `error` code (`not_found`, `rate_limited`, ...); `http_<status>` when the body has none. */
  readonly code: string
  /** Seconds to wait before trying again (Retry-After), when the server said. */
  readonly retryAfter?: number
  /** The body: parsed JSON, or the text when it was not JSON. */
  readonly body: unknown
  /** The request's path, e.g. `/send_msg`. */
  readonly path: string

  constructor(init: { status: number; code: string; message: string; body: unknown; path: string; retryAfter?: number }) {
    super(init.message)
    this.status = init.status
    this.code = init.code
    this.body = init.body
    this.path = init.path
    if (init.retryAfter !== undefined) this.retryAfter = init.retryAfter
  }

  static async from(response: Response, path: string): Promise<ApiError> {
    const text = await response.text().catch(() => '')
    let body: unknown = text
    try {
      body = JSON.parse(text)
    } catch {
      // not JSON: a proxy's page, say; kept as text
    }
    const fields = isRecord(body) ? body : {}
    return new ApiError({
      status: response.status,
      code: typeof fields.error === 'string' ? fields.error : `http_${response.status}`,
      message: typeof fields.message === 'string' ? fields.message : `${path} answered ${response.status}`,
      body,
      path,
      retryAfter: retryAfterSeconds(response.headers.get('retry-after')),
    })
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null
}

/** Retry-After in seconds: a number of seconds, or an HTTP date. */
function retryAfterSeconds(header: string | null): number | undefined {
  if (header === null || header.trim() === '') return undefined
  if (/^\s*\d+\s*$/.test(header)) return Number(header)
  const at = Date.parse(header)
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000))
}

// ---------------------------------------------------------------------------------------
// The long-poll's limits

/** The first wait after a network failure; doubled per failure in a row, up to BACKOFF_MAX_MS. */
export const BACKOFF_FIRST_MS = 500
export const BACKOFF_MAX_MS = 30_000
/** How long a poll may take beyond the hold it asked for before it counts as a network failure. */
export const POLL_GRACE_MS = 30_000
/** The server's default hold (update_data without `timeout`). */
const DEFAULT_POLL_SECONDS = 25
/** Message and event ids remembered per iterator to drop repeats. */
const REMEMBERED_IDS = 10_000

/** The wait before retry number `failures` (0 first): half of the doubled delay, plus up to as much again at random. */
function backoffMs(failures: number): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(failures, 30))
  return ceiling / 2 + Math.random() * (ceiling / 2)
}

function sleepWithTimers(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const done = () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}

/** Ids seen lately: true the first time one is added. */
class RecentIds {
  private readonly ids = new Set<number>()

  add(id: number): boolean {
    if (this.ids.has(id)) return false
    this.ids.add(id)
    for (const oldest of this.ids) {
      if (this.ids.size <= REMEMBERED_IDS) break
      this.ids.delete(oldest)
    }
    return true
  }
}

/**
 * A poll's entries in one sequence: the reply keeps messages and events in two arrays, each
 * in log order; they are merged by their `time` (seconds), messages first within a second.
 */
function entriesOf(reply: UpdateData): ({ kind: 'message'; message: Message } | { kind: 'event'; event: Event })[] {
  const merged: ({ kind: 'message'; message: Message } | { kind: 'event'; event: Event })[] = []
  let m = 0
  let e = 0
  while (m < reply.msg_array.length || e < reply.events_array.length) {
    const message = reply.msg_array[m]
    const event = reply.events_array[e]
    if (message !== undefined && (event === undefined || message.time <= event.time)) {
      merged.push({ kind: 'message', message })
      m++
    } else if (event !== undefined) {
      merged.push({ kind: 'event', event })
      e++
    }
  }
  return merged
}

/** The same bytes as a view fetch accepts: of an ArrayBuffer (a SharedArrayBuffer's are copied). */
function sendable(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const { buffer } = bytes
  return buffer instanceof ArrayBuffer ? new Uint8Array(buffer, bytes.byteOffset, bytes.byteLength) : bytes.slice()
}

class UpdateStream implements Updates {
  constructor(
    private readonly generator: AsyncGenerator<Update, undefined>,
    private readonly state: { cursor: number | undefined },
    private readonly stop: AbortController,
  ) {}

  get cursor(): number | undefined {
    return this.state.cursor
  }

  next(): Promise<IteratorResult<Update, undefined>> {
    return this.generator.next()
  }

  return(): Promise<IteratorResult<Update, undefined>> {
    this.stop.abort()
    return this.generator.return(undefined)
  }

  [Symbol.asyncIterator](): this {
    return this
  }
}

// ---------------------------------------------------------------------------------------
// The client

export function createClient(options: ClientOptions): Client {
  const baseUrl = options.baseUrl.replace(/\/+$/, '')
  // Called as a plain function: a browser's fetch refuses to run as another object's method.
  const fetchImpl: typeof fetch = options.fetch ?? ((input, init) => fetch(input, init))
  const sleep = options.sleep ?? sleepWithTimers
  let token = options.token

  /** A request with the bearer token; the response when 2xx, else an ApiError. */
  async function send(path: string, init: RequestInit): Promise<Response> {
    const headers = new Headers(init.headers)
    if (token !== undefined) headers.set('authorization', `Bearer ${token}`)
    const response = await fetchImpl(`${baseUrl}${path}`, { ...init, headers })
    if (!response.ok) throw await ApiError.from(response, path)
    return response
  }

  async function command(name: string, body: unknown = {}, requestOptions: RequestOptions = {}): Promise<unknown> {
    const response = await send(`/${name}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: requestOptions.signal,
    })
    const reply: unknown = await response.json()
    if (name === 'logout' || name === 'logout_all') token = undefined
    else if (isRecord(reply) && isRecord(reply.session) && typeof reply.session.token === 'string') token = reply.session.token
    return reply
  }

  /** One update_data, aborted with `stop` or once it outlives its hold by POLL_GRACE_MS. */
  async function poll(body: { cursor?: number; timeout?: number }, stop: AbortSignal): Promise<UpdateData> {
    const deadline = new AbortController()
    const onStop = () => deadline.abort()
    stop.addEventListener('abort', onStop, { once: true })
    const timer = setTimeout(() => deadline.abort(), (body.timeout ?? DEFAULT_POLL_SECONDS) * 1000 + POLL_GRACE_MS)
    try {
      // update_data answers UpdateData: the document says so, and the tests check the types against the server.
      return (await command('update_data', body, { signal: deadline.signal })) as UpdateData
    } finally {
      clearTimeout(timer)
      stop.removeEventListener('abort', onStop)
    }
  }

  /**
   * The long-poll. Starts after `options.cursor`, or without one (the server then reads
   * from the position it keeps for the user, and the client follows its reply's cursor).
   * 429 and 503 wait Retry-After, then retry the same poll; a network failure (or a poll
   * that outlives its hold by POLL_GRACE_MS, or a 5xx without Retry-After) backs off from
   * BACKOFF_FIRST_MS doubling to BACKOFF_MAX_MS with jitter, reset by a reply; 401 and
   * other 4xx end the iteration by throwing their ApiError. A reply's items are yielded
   * once (entriesOf's order, then its typing notices as one update): the next poll asks
   * for what comes after that reply's cursor. Without a starting
   * cursor, the first reply's updates but its last carry cursor 0 (the server does not say
   * where it started): resuming from there reads the log again rather than losing a part.
   */
  async function* run(options: UpdatesOptions, state: { cursor: number | undefined }, stopper: AbortController): AsyncGenerator<Update, undefined> {
    const stop = stopper.signal
    const onAbort = () => stopper.abort()
    options.signal?.addEventListener('abort', onAbort, { once: true })
    if (options.signal?.aborted) stopper.abort()
    try {
      yield* follow(options, state, stop)
    } finally {
      options.signal?.removeEventListener('abort', onAbort)
    }
    return undefined
  }

  async function* follow(options: UpdatesOptions, state: { cursor: number | undefined }, stop: AbortSignal): AsyncGenerator<Update, undefined> {
    const seenMessages = new RecentIds()
    const seenEvents = new RecentIds()
    let failures = 0
    while (!stop.aborted) {
      let reply: UpdateData
      try {
        reply = await poll({ cursor: state.cursor, timeout: options.timeout }, stop)
        failures = 0
      } catch (error) {
        if (stop.aborted) return undefined
        if (error instanceof ApiError && error.status < 500 && error.status !== 429) throw error
        const waitMs =
          error instanceof ApiError && (error.status === 429 || error.status === 503) && error.retryAfter !== undefined
            ? error.retryAfter * 1000
            : backoffMs(failures++)
        try {
          await sleep(waitMs, stop)
        } catch (sleepError) {
          if (!stop.aborted) throw sleepError
        }
        continue
      }
      const previous = state.cursor ?? 0
      state.cursor = reply.cursor
      const fresh: Update[] = []
      for (const entry of entriesOf(reply)) {
        const isNew = entry.kind === 'message' ? seenMessages.add(entry.message.msg_id) : seenEvents.add(entry.event.eid)
        if (isNew) fresh.push({ ...entry, cursor: previous })
      }
      if (reply.typing !== undefined && reply.typing.length > 0) fresh.push({ kind: 'typing', typing: reply.typing, cursor: previous })
      const last = fresh.at(-1)
      if (last) last.cursor = reply.cursor
      for (const update of fresh) {
        if (stop.aborted) return undefined
        yield update
      }
    }
    return undefined
  }

  const methods = {
    get token(): string | undefined {
      return token
    },
    set token(value: string | undefined) {
      token = value
    },
    baseUrl,
    call(...args: unknown[]): Promise<unknown> {
      const [first, second, third] = args
      if (typeof first === 'string') return command(first, second, isRecord(third) ? third : undefined)
      return command('call', first, isRecord(second) ? second : undefined)
    },
    async uploadFile(data: Blob | ArrayBuffer | Uint8Array, { name, type, signal }: { name: string; type?: string; signal?: AbortSignal }): Promise<unknown> {
      const contentType = type ?? (data instanceof Blob && data.type !== '' ? data.type : 'application/octet-stream')
      const response = await send(`/upload_file?name=${encodeURIComponent(name)}`, {
        method: 'POST',
        headers: { 'content-type': contentType },
        body: data instanceof Uint8Array ? sendable(data) : data,
        signal,
      })
      return response.json()
    },
    downloadFile(fileId: number, { range, signal }: { range?: string; signal?: AbortSignal } = {}): Promise<Response> {
      return send(`/files/${encodeURIComponent(fileId)}`, { method: 'GET', headers: range === undefined ? {} : { range }, signal })
    },
    async getUser(id: number, { signal }: RequestOptions = {}): Promise<unknown> {
      return (await send(`/get_user?id=${encodeURIComponent(id)}`, { method: 'GET', signal })).json()
    },
    updates(updatesOptions: UpdatesOptions = {}): Updates {
      const stop = new AbortController()
      const state = { cursor: updatesOptions.cursor }
      return new UpdateStream(run(updatesOptions, state, stop), state, stop)
    },
  }

  // Any other name is a command: POST /<name>. Names the document does not have are
  // refused by the compiler, and by the server (404) when called anyway.
  const client = new Proxy(methods, {
    get(target, property, receiver) {
      if (typeof property !== 'string' || property in target || property === 'then' || !/^[a-z][a-z0-9_]*$/.test(property)) {
        return Reflect.get(target, property, receiver)
      }
      return (body?: unknown, requestOptions?: RequestOptions) => command(property, body, requestOptions)
    },
  })
  // The proxy answers every command name of the document: the type says which, and what
  // each takes and returns (the methods above return `unknown` where the type says more).
  return client as unknown as Client
}
