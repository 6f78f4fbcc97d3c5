// The wiki dialect: POST / with {"request": "<command>", ...}, as the original desktop
// client sends every request (see the README). The command named in `request` checks the
// rest of the body (leniently: fields it does not know are ignored) and runs; errors are
// bare JSON strings (src/plugins/errors.ts, `dialect: 'wiki'`); a command's `wiki` adapter
// reshapes replies the client cannot read otherwise.
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import type { Command } from './command.js'
import { BadRequest } from '../src/errors.js'

export async function wikiRoute(app: FastifyInstance, { commands }: { commands: Command[] }) {
  const byName = new Map(commands.flatMap((command) => command.names.map((name) => [name, command] as const)))
  const Envelope = Type.Object(
    { request: Type.String({ maxLength: 64, description: 'The command: ' + [...byName.keys()].join(', ') }) },
    { additionalProperties: true, description: "The command's own body plus its name in `request`." },
  )

  app.post<{ Body: { request: string } }>(
    '/',
    {
      config: { dialect: 'wiki' },
      schema: {
        summary: 'Any command, wiki dialect',
        description:
          'The envelope of the original desktop client: the command named in `request`, with the same body as ' +
          'POST /<command> (fields the command does not know are ignored). Errors are a bare JSON string; an empty ' +
          'contact list is `null`.',
        tags: ['wiki dialect'],
        body: Envelope,
        response: {
          200: Type.Unknown({ description: "The command's reply." }),
          '4xx': Type.String({ description: 'The error message.' }),
        },
      },
    },
    async (request, reply) => {
      const command = byName.get(request.body.request)
      if (!command) throw new BadRequest(`Unknown request "${request.body.request}"`)
      return command.runWiki(request, reply, request.body)
    },
  )
}
