// A command of the protocol: one schema, one handler, reachable two ways (PROTOCOL A.1):
// `POST /<command>` (modern dialect, in the OpenAPI document) and `POST /` with
// `{"request": "<command>"}` (wiki dialect, routes/wiki.ts). `wiki` adapts the reply
// where the desktop client needs another shape.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Type, type Static, type TSchema } from 'typebox'
import { ErrorBody } from '../src/schemas/common.js'
import { BadRequest } from '../src/errors.js'
import type { AuthSession } from '../src/plugins/auth.js'
import type { NamedLimit } from '../src/plugins/rate-limit.js'

export interface CommandContext {
  app: FastifyInstance
  request: FastifyRequest
  reply: FastifyReply
  /** Set for authenticated commands. */
  session: AuthSession
}

export interface Command<B extends TSchema = TSchema, R extends TSchema = TSchema> {
  name: string
  /** Other spellings accepted for the same command (e.g. `authorisation`). */
  aliases?: string[]
  summary: string
  description?: string
  tags: string[]
  /** False only for registration and authorization. */
  authenticated: boolean
  body: B
  reply: R
  /** A named rate limit the command counts against (src/plugins/rate-limit.ts). */
  limit?: NamedLimit
  /** Error statuses this command can answer besides 400, 401 (when authenticated) and 429. */
  errors?: number[]
  run(context: CommandContext, body: Static<B>): Promise<Static<R>>
  wiki?(reply: Static<R>): unknown
}

/** Keeps each command's body and reply types tied to its schemas. */
export function defineCommand<B extends TSchema, R extends TSchema>(command: Command<B, R>): Command {
  return command as unknown as Command
}

export function commandNames(command: Command): string[] {
  return [command.name, ...(command.aliases ?? [])]
}

export function errorResponses(statuses: number[]) {
  const descriptions: Record<number, string> = {
    400: 'Malformed request (`bad_request`)',
    401: 'Missing, invalid, expired or logged-out session (`unauthorized`)',
    403: 'Not allowed (`forbidden`, `not_friends`)',
    404: 'No such user, contact, room or message (`not_found`)',
    409: 'Conflicts with the current state (`login_taken`, `already_contact`, `invalid_state`)',
    413: 'Body over 1 MiB (`payload_too_large`)',
    429: 'Rate limited (`rate_limited`), see Retry-After',
    503: 'Database unavailable (`unavailable`), see Retry-After',
  }
  return Object.fromEntries(statuses.map((s) => [s, Type.Object(ErrorBody.properties, { description: descriptions[s] })]))
}

/** Runs a command for either dialect: checks `request`, authenticates, calls the handler. */
export async function runCommand(command: Command, request: FastifyRequest, reply: FastifyReply, body: Record<string, unknown>) {
  if (body.request !== undefined && !commandNames(command).includes(String(body.request))) {
    throw new BadRequest(`"request" is "${String(body.request)}" but the command is ${command.name}`)
  }
  if (command.authenticated) await request.server.authenticate(request)
  if (command.limit) await request.server.checkLimit(request, command.limit)
  return command.run({ app: request.server, request, reply, session: request.session! }, body)
}
