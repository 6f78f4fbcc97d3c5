// A command of the protocol: one definition, reachable two ways (PROTOCOL A.1):
// `POST /<command>` (the modern dialect, in the OpenAPI document: the body is checked
// strictly, an unknown field is a 400 naming it) and `POST /` with `{"request":
// "<command>"}` (the wiki dialect, routes/wiki.ts: fields it does not know are ignored, as
// the desktop client sends some). Both authenticate unless the command is public, count
// the command's rate limit, and run the same handler; `wiki` adapts the reply where the
// desktop client needs another shape.
//
// Each file of commands makes its definer once: `const command = commandsOf('rooms')`.
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchema } from 'fastify'
import type { Static, TObject, TSchema } from 'typebox'
import { CommandBody, ErrorBody, lenient, named, type SessionRef } from '../src/schemas/common.js'
import { BadRequest } from '../src/errors.js'
import type { AuthSession } from '../src/plugins/auth.js'
import type { NamedLimit } from '../src/plugins/rate-limit.js'
import type { RequestLogKind } from '../src/request-log.js'
import { compileBodyValidator, describeValidationErrors } from '../src/validation.js'

export interface CommandContext {
  app: FastifyInstance
  request: FastifyRequest
  reply: FastifyReply
  /** The caller's session (unset for public commands). */
  session: AuthSession
}

export interface CommandSpec<F extends TObject, R extends TSchema> {
  name: string
  /** Other spellings accepted for the same command (e.g. `authorisation`). */
  aliases?: string[]
  summary: string
  description?: string
  /** Needs no session (registration, authorization and the e-mail code commands). */
  public?: boolean
  /** The command's own fields (src/schemas/); the envelope is added here. */
  body: F
  reply: R
  /** A named rate limit the command counts against (src/plugins/rate-limit.ts). */
  limit?: NamedLimit
  /** Error statuses this command can answer besides 400, 401 (when authenticated), 413, 429 and 503. */
  errors?: number[]
  /** How its requests are logged (src/request-log.ts): `hot` and `held` at debug. */
  logAs?: RequestLogKind
  run(context: CommandContext, body: Static<F>): Promise<Static<R>>
  wiki?(reply: Static<R>): unknown
}

/** A defined command, as the routes register it. */
export interface Command {
  name: string
  /** Its name and aliases: the paths it answers on, and the `request` values it accepts. */
  names: string[]
  /** Registers `POST /<name>` for each name (aliases hidden from the document). */
  register(app: FastifyInstance): void
  /** Runs it for the wiki dialect: the body is checked leniently here, the reply adapted. */
  runWiki(request: FastifyRequest, reply: FastifyReply, body: unknown): Promise<unknown>
}

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Malformed request (`bad_request`)',
  401: 'Missing, invalid, expired or logged-out session (`unauthorized`)',
  403: 'Not allowed (`forbidden`, `not_friends`, `email_unverified`)',
  404: 'No such user, contact, room, message, call or file (`not_found`)',
  409: 'Conflicts with the current state (`login_taken`, `email_taken`, `already_contact`, `invalid_state`, `busy`)',
  410: 'The file\'s content is missing or damaged on the server (`file_unavailable`)',
  413: 'Body over BODY_LIMIT_BYTES, or a file over MAX_FILE_BYTES (`payload_too_large`)',
  416: 'The range lies outside the file (`range_not_satisfiable`)',
  429: 'Rate limited (`rate_limited`): retry after Retry-After seconds',
  503: 'Database unavailable (`unavailable`): retry after Retry-After seconds',
}

const RETRY_AFTER = { 'retry-after': { type: 'integer', minimum: 1, description: 'Seconds to wait before trying again.' } }

/** The documented error replies for these statuses: the Error shape, and Retry-After where it applies. */
export function errorResponses(statuses: number[]) {
  return Object.fromEntries(
    statuses.map((status) => [
      status,
      {
        ...named(ErrorBody),
        description: ERROR_DESCRIPTIONS[status],
        ...(status === 429 || status === 503 ? { headers: RETRY_AFTER } : {}),
      },
    ]),
  )
}

/** The definer of one file's commands: their tag set once, authenticated unless `public`. */
export function commandsOf(tag: string) {
  return function command<F extends TObject, R extends TSchema>(spec: CommandSpec<F, R>): Command {
    const names: [string, ...string[]] = [spec.name, ...(spec.aliases ?? [])]
    const body = CommandBody(names, spec.body)
    // The body is checked here, by validators that are also type guards: strictly for the
    // modern dialect, leniently for the wiki dialect's envelope.
    type Body = Static<F> & { session?: SessionRef }
    const strictBody = compileBodyValidator<Body>(body)
    const wikiBody = compileBodyValidator<Body>(lenient(body))
    const statuses = [400, ...(spec.public ? [] : [401]), ...(spec.errors ?? []), 413, 429, 503].sort((a, b) => a - b)
    const response = { 200: { description: 'Done.', ...spec.reply }, ...errorResponses(statuses) }

    async function run(request: FastifyRequest, reply: FastifyReply, fields: unknown, validate: typeof strictBody) {
      if (spec.logAs) request.logAs = spec.logAs
      if (!validate(fields)) throw new BadRequest(describeValidationErrors(validate.errors, 'body'))
      const app = request.server
      if (!spec.public) await app.authenticate(request, fields.session)
      if (spec.limit) await app.checkLimit(request, spec.limit)
      return spec.run({ app, request, reply, session: request.session! }, fields)
    }

    return {
      name: spec.name,
      names,
      register(app) {
        for (const name of names) {
          const schema: FastifySchema = {
            hide: name !== spec.name,
            operationId: spec.name,
            summary: spec.summary,
            description: spec.description,
            tags: [tag],
            body,
            security: spec.public ? [] : [{ bearer: [] }],
            response,
          }
          // The body is documented from `body` and checked in run(), by its validator that is
          // also its type guard; a command has no other part to check.
          app.post(`/${name}`, { schema, validatorCompiler: () => () => true }, (request, reply) => run(request, reply, request.body, strictBody))
        }
      },
      async runWiki(request, reply, fields) {
        const result = await run(request, reply, fields, wikiBody)
        return spec.wiki ? spec.wiki(result) : result
      },
    }
  }
}
