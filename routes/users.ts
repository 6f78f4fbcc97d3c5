// GET /get_user?id=<uid>: the public look-up of a user (PROTOCOL A.7): `uid` and
// `username` as the wiki has them, plus the public profile. Needs a session.
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { UserQuery, UserReply } from '../src/schemas/accounts.js'
import { errorResponses } from './command.js'

export async function getUser(app: FastifyInstance) {
  app.withTypeProvider<TypeBoxTypeProvider>().get(
    '/get_user',
    {
      schema: {
        operationId: 'get_user',
        summary: 'Look up a user by id',
        tags: ['users'],
        querystring: UserQuery,
        security: [{ bearer: [] }],
        response: { 200: UserReply, ...errorResponses([400, 401, 404, 429]) },
      },
      preHandler: (request) => app.authenticate(request),
    },
    async (request) => ({ user: await app.services.profiles.publicProfile(request.query.id) }),
  )
}
