import { readFile } from 'node:fs/promises'
import t from 'tap'
import { formatDocument, generateOpenApiDocument } from '../src/openapi-document.js'
import { build } from './helper.js'

interface Operation {
  summary?: string
  operationId?: string
  requestBody?: unknown
  responses: Record<string, { description?: string }>
}

t.test('the committed openapi/openapi.json is current (run `npm run openapi` when this fails)', async (t) => {
  const committed = await readFile('openapi/openapi.json', 'utf8')
  t.equal(committed, formatDocument(await generateOpenApiDocument()))
})

t.test('every operation has a summary, a documented request body and every response status', async (t) => {
  const document = (await generateOpenApiDocument()) as { paths: Record<string, Record<string, Operation>> }
  const commands = ['registration', 'authorization', 'logout', 'get_data', 'add_contact_request', 'add_contact_reply', 'del_contact', 'send_msg', 'update_data']
  for (const command of commands) t.ok(document.paths[`/${command}`]?.post, `POST /${command} is documented`)
  t.notOk(document.paths['/authorisation'], 'the spelling alias is served but not documented twice')
  for (const [path, methods] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      t.ok(operation.summary, `${method} ${path} has a summary`)
      t.ok(operation.responses['200'], `${method} ${path} documents 200`)
      if (method === 'post') t.ok(operation.requestBody, `${method} ${path} documents its body`)
      for (const [status, response] of Object.entries(operation.responses)) t.ok(response.description, `${method} ${path} ${status} has a description`)
    }
  }
  const sendMsg = document.paths['/send_msg'].post
  for (const status of ['400', '401', '403', '429']) t.ok(sendMsg.responses[status], `send_msg documents ${status}`)
})

t.test('the document is served at /openapi.json and browsable at /docs', async (t) => {
  const app = await build(t)
  const served = await app.inject({ method: 'GET', url: '/openapi.json' })
  t.equal(served.statusCode, 200)
  t.same(served.json(), JSON.parse(formatDocument(await generateOpenApiDocument())))
  const docs = await app.inject({ method: 'GET', url: '/docs/' })
  t.equal(docs.statusCode, 200)
  t.match(docs.headers['content-type'], /text\/html/)
})
