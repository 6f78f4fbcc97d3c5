// Bodies as the schemas state them: in the modern dialect a field the command does not know
// is a 400 naming it, `request` must be the command's own name, and of two alternatives
// (to_uid or room_id, login or email, contact_uid or login) exactly one is given. The wiki
// dialect ignores fields it does not know, as the desktop client sends some. The document
// describes the headers clients rely on.
import t from 'tap'
import { generateOpenApiDocument } from '../src/openapi-document.js'
import { befriend, build, call, signUp, wiki } from './helper.js'

t.test('an unknown field is a 400 that names it (modern dialect); the wiki dialect ignores it', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)

  const misspelt = await call(app, 'send_msg', { to_uid: bob.uid, msg: 'hi', client_msgid: 'm-1' }, alice.token)
  t.equal(misspelt.status, 400)
  t.same(misspelt.body, { error: 'bad_request', message: 'body has an unknown field "client_msgid"' })

  const viaWiki = await wiki(app, 'send_msg', { to_uid: bob.uid, msg: 'hi', client_msgid: 'm-1' }, alice)
  t.equal(viaWiki.status, 200, 'the wiki dialect ignores it and sends')

  const wrongName = await call(app, 'send_msg', { to_uid: bob.uid, msg: 'hi', request: 'get_data' }, alice.token)
  t.equal(wrongName.status, 400)
  t.match(wrongName.body.message, 'body/request must be "send_msg"')
  const alias = await call(app, 'authorization', { login: alice.login, password: 'secret1', request: 'authorisation' })
  t.equal(alias.status, 200, 'an alias of the command is its own name too')
})

t.test('alternatives: exactly one of the two fields', async (t) => {
  const app = await build(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)
  const room = (await call(app, 'create_room', { name: 'R', type: 'public' }, alice.token)).body.room

  const both = await call(app, 'get_history', { to_uid: bob.uid, room_id: room.room_id }, alice.token)
  t.same(both.body, { error: 'bad_request', message: 'body must have exactly one of to_uid, room_id' })
  const neither = await call(app, 'get_history', {}, alice.token)
  t.same(neither.body, { error: 'bad_request', message: 'body must have exactly one of to_uid, room_id' })
  t.equal((await call(app, 'get_history', { room_id: room.room_id }, alice.token)).status, 200)

  const login = await call(app, 'authorization', { login: alice.login, email: 'a@example.com', password: 'secret1' })
  t.same(login.body, { error: 'bad_request', message: 'body must have exactly one of login, email' })
  const contact = await call(app, 'del_contact', {}, alice.token)
  t.same(contact.body, { error: 'bad_request', message: 'body must have exactly one of contact_uid, login' })
})

t.test('the document declares alternatives, the envelope once, headers and the Range parameter', async (t) => {
  type Schema = { oneOf?: { required: string[] }[]; properties?: Record<string, { $ref?: string; enum?: string[] }>; additionalProperties?: boolean }
  type Operation = {
    requestBody?: { content: Record<string, { schema: Schema }> }
    parameters?: { in: string; name: string }[]
    responses: Record<string, { headers?: Record<string, unknown> }>
  }
  const document = (await generateOpenApiDocument()) as { paths: Record<string, Record<string, Operation>> }
  const body = (path: string) => document.paths[path].post.requestBody!.content['application/json'].schema
  t.same(body('/send_msg').oneOf?.map((branch) => branch.required), [['to_uid'], ['room_id']], 'send_msg: to_uid or room_id')
  t.same(body('/authorization').oneOf?.map((branch) => branch.required), [['login'], ['email']], 'authorization: login or email')
  t.equal(body('/send_msg').additionalProperties, false, 'unknown fields are refused')
  t.same(body('/send_msg').properties?.request?.enum, ['send_msg'], '`request` is the command itself')
  t.equal(body('/send_msg').properties?.session?.$ref, '#/components/schemas/SessionRef', '`session` is one named shape')

  const download = document.paths['/files/{file_id}'].get
  t.ok(download.parameters?.some((p) => p.in === 'header' && p.name === 'range'), 'Range is a declared parameter')
  t.ok(download.responses['200'].headers?.['content-disposition'], 'Content-Disposition documented')
  t.ok(download.responses['200'].headers?.etag, 'ETag documented')
  t.ok(download.responses['206'].headers?.['content-range'], 'Content-Range documented')
  t.ok(document.paths['/send_msg'].post.responses['429'].headers?.['retry-after'], 'Retry-After documented on 429')
  t.ok(document.paths['/send_msg'].post.responses['503'].headers?.['retry-after'], 'and on 503')
})
