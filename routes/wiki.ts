// The wiki dialect: POST / with {"request": "<command>", ...}, as the original desktop
// client sends every request (see the README). The command's own schema validates the
// envelope; errors are bare JSON strings (src/plugins/errors.ts, `dialect: 'wiki'`);
// `wiki` adapters reshape replies the client cannot read otherwise.
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { commandNames, runCommand, type Command } from './command.js'
import { BadRequest } from '../src/errors.js'

export async function wikiRoute(app: FastifyInstance, { commands }: { commands: Command[] }) {
  const byName = new Map(commands.flatMap((command) => commandNames(command).map((name) => [name, command] as const)))
  const Envelope = Type.Object(
    { request: Type.String({ maxLength: 64, description: 'The command: ' + [...byName.keys()].join(', ') }) },
    { additionalProperties: true, description: "The command's own body plus its name in `request`." },
  )

  app.post(
    '/',
    {
      config: { dialect: 'wiki' },
      schema: {
        summary: 'Any command, wiki dialect',
        description:
          'The envelope of the original desktop client: the command named in `request`, with the same body as ' +
          'POST /<command>. Errors are a bare JSON string; an empty contact list is `null`.',
        tags: ['wiki dialect'],
        body: Envelope,
        response: { 200: Type.Unknown({ description: "The command's reply." }), '4xx': Type.String({ description: 'The error message.' }) },
      },
    },
    async (request, reply) => {
      const body = request.body as Record<string, unknown> & { request: string }
      const command = byName.get(body.request)
      if (!command) throw new BadRequest(`Unknown request "${body.request}"`)
      const validate = request.compileValidationSchema(command.body as object, 'body')
      if (!validate(body)) {
        const first = validate.errors?.[0]
        throw new BadRequest(`body${first?.instancePath ?? ''} ${first?.message ?? 'is invalid'}`)
      }
      const result = await runCommand(command, request, reply, body)
      return command.wiki ? command.wiki(result) : result
    },
  )
}
