// The OpenAPI document, generated from the routes' TypeBox schemas: served at
// GET /openapi.json, browsable at /docs, committed as openapi/openapi.json.
import fp from 'fastify-plugin'
import { PushPayload } from '../schemas/push.js'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'

export const OPENAPI_INFO = {
  title: 'Messenger API',
  version: '1.0.0',
  description:
    'Accounts, contacts, direct and room messages and a long-poll event log. Every command is `POST /<command>` ' +
    'with a JSON body; the same commands are reachable in the wiki dialect as `POST /` with ' +
    '`{"request": "<command>", ...}` (see the README).',
}

export default fp(
  async (app) => {
    await app.register(swagger, {
      // Shared shapes (schemas with an `$id`: Message, Room, Error, the events, …) are
      // listed once in components.schemas under that name, and referred to.
      refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
      openapi: {
        openapi: '3.1.0',
        info: OPENAPI_INFO,
        components: {
          securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
          // Shapes no route carries, named so that clients generate their types too: what a
          // Web Push brings the service worker.
          schemas: { PushPayload },
        },
      },
    })
    await app.register(swaggerUi, { routePrefix: '/docs' })
    app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
  },
  { name: 'openapi' },
)
