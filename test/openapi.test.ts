import { readFile } from 'node:fs/promises'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
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

interface Media {
  schema?: { $ref?: string; allOf?: { $ref?: string }[]; examples?: unknown[]; example?: unknown } & Record<string, unknown>
  example?: unknown
  examples?: Record<string, { value?: unknown }>
}

t.test('every command has a request and a reply example, each valid against its schema', async (t) => {
  const document = (await generateOpenApiDocument()) as {
    paths: Record<string, Record<string, { requestBody?: { content?: Record<string, Media> }; responses: Record<string, { content?: Record<string, Media> }> }>>
    components: { schemas: Record<string, Record<string, unknown>> }
  }
  const components = document.components.schemas
  // The document's schemas refer to its named shapes as `#/components/schemas/<name>`: each is
  // validated as the root of a schema that carries the components beside it.
  const ajv = new Ajv2020({ strict: false, allErrors: true })
  addFormats.default(ajv)
  ajv.addFormat('binary', true)

  /** A media type's examples: on the media type itself, else on the schema or the component it refers to. */
  function examplesOf(media: Media): unknown[] {
    if (media.example !== undefined) return [media.example]
    if (media.examples) return Object.values(media.examples).map((example) => example.value)
    const schema = media.schema ?? {}
    // A named shape as the whole reply is referred to through a one-item allOf.
    const ref = schema.$ref ?? (Array.isArray(schema.allOf) ? schema.allOf[0]?.$ref : undefined)
    const named = ref?.startsWith('#/components/schemas/') ? components[ref.slice('#/components/schemas/'.length)] : undefined
    for (const candidate of [schema, named]) {
      if (Array.isArray(candidate?.examples) && candidate.examples.length > 0) return candidate.examples
      if (candidate?.example !== undefined) return [candidate.example]
    }
    return []
  }

  const lacking: string[] = []
  function check(where: string, media: Media | undefined, isRequest: boolean) {
    const examples = media ? examplesOf(media) : []
    if (!media?.schema || examples.length === 0) {
      lacking.push(where)
      return
    }
    const validate = ajv.compile({ ...media.schema, components: { schemas: components } })
    for (const example of examples) {
      t.ok(validate(example), `${where}: the example fits its schema`, { example, errors: validate.errors })
      if (isRequest && example && typeof example === 'object') {
        t.notOk('request' in example || 'session' in example, `${where}: the example needs neither \`request\` nor \`session\``)
      }
    }
  }

  let operations = 0
  for (const [path, methods] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      // The wiki envelope carries any command, and a download's reply is the file's bytes.
      if ((method === 'post' && path === '/') || path === '/files/{file_id}') continue
      operations++
      const name = `${method.toUpperCase()} ${path}`
      // An upload's request body is the file itself; its reply is JSON like any other.
      if (method === 'post' && path !== '/upload_file') check(`${name} request`, operation.requestBody?.content?.['application/json'], true)
      check(`${name} 200 reply`, operation.responses['200']?.content?.['application/json'], false)
    }
  }
  t.ok(operations > 50, `checked ${operations} operations`)
  t.same(lacking, [], `operations lacking an example: ${lacking.join(', ') || 'none'}`)
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
