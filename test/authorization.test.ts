// Authorization across users: a stranger never reaches another user's content by naming
// its ids. User A has a friend C, a private room, direct and room messages, an upload
// attached to a message, a published key, a running call with C, two sessions and an
// e-mail given at registration. User B is a stranger to both, with an accomplice D (B's
// friend) and a room of B's own.
//
// The operations under test are generated from openapi/openapi.json: every operation whose
// body, path or query takes an id-like field (msg_id, room_id, to_uid, uid, contact_uid,
// session_key, file_id, call_id, key_id, id, client_msg_id and any new `*_id`, `*_uid`,
// `*_key`) is called as B, in both dialects, with each of A's ids in that field (the other
// fields holding B's own valid ids or nothing). Every attempt must be 403, 404 or 409, or a
// 2xx whose serialized reply contains none of A's secrets (message texts, file bytes, room
// name and description, key, call offer, e-mail, tokens). A new route with an id field is
// covered without touching this file; a field this file cannot fill fails the test unless
// SAFE names it with a reason. Afterwards A's data is intact (no attempt changed it) and
// nothing of A's reached B or D by any other way (their logs, dialogs, rooms, downloads).
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import type { App } from '../src/app.js'
import { befriend, build, call, signUp, uniqueLogin, wiki, type TestSession } from './helper.js'

type Json = Record<string, any>

interface Schema {
  type?: string
  properties?: Record<string, Schema>
  required?: string[]
  oneOf?: Schema[]
  enum?: unknown[]
  minimum?: number
  minLength?: number
  maxLength?: number
  pattern?: string
  format?: string
}

interface Operation {
  operationId?: string
  requestBody?: { content: Record<string, { schema: Schema; example?: unknown }> }
  parameters?: { name: string; in: string; schema: Schema }[]
  security?: unknown[]
}

const document = JSON.parse(await readFile(new URL('../openapi/openapi.json', import.meta.url), 'utf8')) as {
  paths: Record<string, Record<string, Operation>>
}

/** Field names that name something: the listed ones and any `*_id`, `*_uid`, `*_key`. */
const ID_FIELDS = ['msg_id', 'room_id', 'to_uid', 'uid', 'contact_uid', 'session_key', 'file_id', 'call_id', 'key_id', 'id']
const isIdField = (name: string) => ID_FIELDS.includes(name) || /(_id|_uid|_key)$/.test(name)

/**
 * Id fields this file deliberately does not attack, as `operation.field` → why that is safe.
 * Empty today: every id field of every operation is exercised. A new id field that the
 * attacker below cannot fill with one of A's values must be attacked or listed here.
 */
const SAFE: Record<string, string> = {}

interface IdOperation {
  id: string
  method: string
  route: string
  /** Id fields and where they are: the JSON body, the query or the path. */
  fields: { name: string; in: 'body' | 'query' | 'path'; required: boolean }[]
  schema?: Schema
}

function idOperations(): IdOperation[] {
  const operations: IdOperation[] = []
  for (const [route, methods] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      if (route === '/') continue // the wiki envelope: every command below is also attacked through it
      const schema = operation.requestBody?.content['application/json']?.schema
      const fields: IdOperation['fields'] = []
      for (const [name] of Object.entries(schema?.properties ?? {})) {
        if (name !== 'session' && isIdField(name)) fields.push({ name, in: 'body', required: (schema!.required ?? []).includes(name) })
      }
      for (const parameter of operation.parameters ?? []) {
        if (isIdField(parameter.name)) fields.push({ name: parameter.name, in: parameter.in as 'query' | 'path', required: true })
      }
      if (fields.length > 0) operations.push({ id: operation.operationId ?? `${method} ${route}`, method, route, fields, schema })
    }
  }
  return operations
}

// ---------------------------------------------------------------------------------------

interface World {
  app: App
  a: TestSession
  a2: TestSession
  b: TestSession
  c: TestSession
  d: TestSession
  /** A's values for each id field: what B tries. */
  victim: Record<string, unknown[]>
  /** B's own values for each id field: what fills the other fields. */
  own: Record<string, unknown[]>
  /** Strings that must never reach B or D. */
  secrets: string[]
  messageIds: number[]
  texts: string[]
  room: number
  roomName: string
  fileId: number
  fileContent: string
  keyText: string
  callId: number
}

async function upload(app: App, token: string, name: string, content: string) {
  const response = await app.inject({
    method: 'POST',
    url: `/upload_file?name=${encodeURIComponent(name)}`,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' },
    payload: content,
  })
  if (response.statusCode !== 200) throw new Error(`upload failed: ${response.body}`)
  return response.json().file_id as number
}

async function ok(response: Promise<{ status: number; body: any }>, what: string) {
  const reply = await response
  if (reply.status !== 200) throw new Error(`${what}: ${reply.status} ${JSON.stringify(reply.body)}`)
  return reply.body
}

async function buildWorld(app: App): Promise<World> {
  const tag = randomBytes(4).toString('hex')
  const secret = (what: string) => `SECRET${what}${tag}`
  const email = `alice.${tag}@secret-example.com`
  const aLogin = uniqueLogin('alice')
  await ok(call(app, 'registration', { login: aLogin, password: 'secret1', email }), 'registration with e-mail')
  const login = async (name: string) => {
    const body = await ok(call(app, 'authorization', { login: name, password: 'secret1' }), 'authorization')
    return { uid: body.session.uid, session_key: body.session.session_key, token: body.session.token, login: name } as TestSession
  }
  const a = await login(aLogin)
  const a2 = await login(aLogin)
  const c = await signUp(app)
  const b = await signUp(app)
  const d = await signUp(app)
  await befriend(app, a, c)
  await befriend(app, b, d)

  const texts = [secret('direct'), secret('reply'), secret('room'), secret('roomreply'), secret('caption')]
  const roomName = secret('roomname')
  const roomDescription = secret('roomdescription')
  const room = (await ok(call(app, 'create_room', { name: roomName, type: 'private', description: roomDescription }, a.token), 'create_room')).room.room_id
  await ok(call(app, 'invite_to_room', { room_id: room, uid: c.uid }, a.token), 'invite C')
  const clientMsgId = `cmid-${tag}`
  const m1 = (await ok(call(app, 'send_msg', { to_uid: c.uid, msg: texts[0], client_msg_id: clientMsgId }, a.token), 'A to C')).msg_id
  const m2 = (await ok(call(app, 'send_msg', { to_uid: a.uid, msg: texts[1] }, c.token), 'C to A')).msg_id
  const m3 = (await ok(call(app, 'send_msg', { room_id: room, msg: texts[2] }, a.token), 'A in the room')).msg_id
  const m4 = (await ok(call(app, 'send_msg', { room_id: room, msg: texts[3] }, c.token), 'C in the room')).msg_id
  const fileContent = secret('filebytes')
  const fileId = await upload(app, a.token, `${secret('filename')}.txt`, fileContent)
  const m5 = (await ok(call(app, 'send_msg', { to_uid: c.uid, msg: texts[4], file_id: fileId }, a.token), 'A sends the file')).msg_id
  const keyText = secret('publickey')
  await ok(call(app, 'publish_key', { key_id: 'a-device-1', key: keyText, algorithm: 'x25519' }, a.token), 'publish_key')
  // C polls (so is online), A calls, C answers: a running call.
  await ok(call(app, 'update_data', { cursor: 0, timeout: 0 }, c.token), 'C polls')
  const placed = await ok(call(app, 'call', { to_uid: c.uid, offer: { sdp: secret('offer') } }, a.token), 'call')
  if (placed.status !== 'ringing') throw new Error(`the call is ${placed.status}`)
  await ok(call(app, 'accept_call', { call_id: placed.call_id, answer: { sdp: secret('answer') } }, c.token), 'accept_call')

  // B's own things, to fill the fields not under attack.
  const bRoom = (await ok(call(app, 'create_room', { name: `b room ${tag}`, type: 'public' }, b.token), 'B room')).room.room_id
  const bMsg = (await ok(call(app, 'send_msg', { to_uid: d.uid, msg: 'b to d' }, b.token), 'B to D')).msg_id
  const bFile = await upload(app, b.token, 'b.txt', 'b file')

  return {
    app,
    a,
    a2,
    b,
    c,
    d,
    victim: {
      msg_id: [m1, m2, m3, m4, m5],
      room_id: [room],
      to_uid: [a.uid, c.uid],
      uid: [a.uid, c.uid],
      contact_uid: [a.uid, c.uid],
      id: [a.uid, c.uid],
      session_key: [a.session_key, a2.session_key, c.session_key],
      file_id: [fileId],
      call_id: [placed.call_id],
      key_id: ['a-device-1'],
      client_msg_id: [clientMsgId],
    },
    own: {
      msg_id: [bMsg],
      room_id: [bRoom],
      to_uid: [d.uid],
      uid: [d.uid],
      contact_uid: [d.uid],
      id: [b.uid],
      file_id: [bFile],
      key_id: ['b-device-1'],
      client_msg_id: [`b-${tag}`],
    },
    secrets: [...texts, roomName, roomDescription, fileContent, `${secret('filename')}.txt`, keyText, secret('offer'), secret('answer'), email, a.token, a2.token, c.token],
    messageIds: [m1, m2, m3, m4, m5],
    texts,
    room,
    roomName,
    fileId,
    fileContent,
    keyText,
    callId: placed.call_id,
  }
}

/** A value for a required field that is not an id. */
function filler(name: string, schema: Schema): unknown {
  if (schema.enum) return schema.enum[0]
  switch (schema.type) {
    case 'integer':
    case 'number':
      return name === 'status' ? 1 : Math.max(schema.minimum ?? 0, 1)
    case 'boolean':
      return false
    case 'object':
      return {}
    case 'array':
      return []
    case 'string':
      if (name === 'query' || name === 'prefix') return 'secret'
      if (name === 'emoji') return '👍' // a valid one: the attempt is about the ids
      if (schema.format === 'email') return 'nobody@example.com'
      if (schema.pattern?.includes('[0-9]{6}')) return '123456'
      if (/password/.test(name)) return 'secret1'
      return 'attempt'.slice(0, schema.maxLength ?? 7).padEnd(schema.minLength ?? 0, 'x')
    default:
      return { sdp: 'attempt' }
  }
}

interface Attempt {
  operation: IdOperation
  field: string
  body: Json
  note: string
}

/** Every body that puts one of A's values into one id field of the operation. */
function attempts(operation: IdOperation, world: World): { attempts: Attempt[]; uncovered: string[] } {
  const result: Attempt[] = []
  const uncovered: string[] = []
  const required: Json = {}
  for (const [name, property] of Object.entries(operation.schema?.properties ?? {})) {
    if ((operation.schema!.required ?? []).includes(name) && !isIdField(name)) required[name] = filler(name, property)
  }
  const conversation = ['to_uid', 'room_id'].filter((name) => operation.fields.some((f) => f.name === name))
  for (const target of operation.fields) {
    const values = world.victim[target.name]
    if (!values || values.length === 0) {
      uncovered.push(`${operation.id}.${target.name}`)
      continue
    }
    const others = operation.fields.filter((f) => f.name !== target.name)
    // The other fields: B's own values, or A's, or absent when optional; to_uid and room_id
    // are alternatives, so at most one of them is set.
    const variants: Json[] = [{}]
    for (const other of others) {
      const choices: unknown[] = [...(world.own[other.name] ?? []), world.victim[other.name]?.[0]].filter((v) => v !== undefined)
      if (!other.required) choices.push(undefined)
      const next: Json[] = []
      for (const variant of variants) for (const choice of choices) next.push(choice === undefined ? variant : { ...variant, [other.name]: choice })
      variants.splice(0, variants.length, ...next.slice(0, 12))
    }
    for (const value of values) {
      for (const variant of variants) {
        const body: Json = { ...required, ...variant, [target.name]: value }
        if (conversation.length === 2 && body.to_uid !== undefined && body.room_id !== undefined) {
          if (target.name === 'to_uid') delete body.room_id
          else if (target.name === 'room_id') delete body.to_uid
          else continue
        }
        // Commands with to_uid and room_id name exactly one conversation.
        if (conversation.length === 2 && body.to_uid === undefined && body.room_id === undefined) continue
        result.push({ operation, field: target.name, body, note: JSON.stringify(body) })
      }
    }
  }
  return { attempts: result, uncovered }
}

interface Reply {
  status: number
  text: string
  body: unknown
}

async function perform(world: World, attempt: Attempt, dialect: 'modern' | 'wiki'): Promise<Reply> {
  const { app, b } = world
  const { operation, body } = attempt
  if (operation.method === 'get') {
    let url = operation.route
    const query: string[] = []
    for (const field of operation.fields) {
      if (field.in === 'path') url = url.replace(`{${field.name}}`, String(body[field.name]))
      else query.push(`${field.name}=${encodeURIComponent(String(body[field.name]))}`)
    }
    if (query.length) url += `?${query.join('&')}`
    const response = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${b.token}` } })
    return { status: response.statusCode, text: response.body, body: undefined }
  }
  const command = operation.route.slice(1)
  const reply = dialect === 'wiki' ? await wiki(app, command, body, b) : await call(app, command, body, b.token)
  return { status: reply.status, text: JSON.stringify(reply.body), body: reply.body }
}

function leaks(world: World, text: string): string[] {
  return world.secrets.filter((secret) => text.includes(secret))
}

// ---------------------------------------------------------------------------------------

t.test('a stranger never reaches another user\'s content through an id', async (t) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'messenger-authz-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const app = await build(t, { dataDir })
  const world = await buildWorld(app)
  const operations = idOperations()

  t.test('the id-taking operations are generated from the OpenAPI document', async (t) => {
    const ids = operations.map((o) => o.id)
    t.comment(`${ids.length} operations take ids: ${ids.join(', ')}`)
    for (const known of ['send_msg', 'get_history', 'edit_msg', 'room_members', 'logout_session', 'get_keys', 'call_signal', 'get_user', 'download_file']) {
      t.ok(ids.includes(known), `${known} is among them`)
    }
    for (const entry of Object.keys(SAFE)) {
      const [id, field] = entry.split('.')
      t.ok(operations.some((o) => o.id === id && o.fields.some((f) => f.name === field)), `SAFE entry ${entry} still names an id field`)
    }
  })

  t.test('every id field is attacked or listed as safe with a reason', async (t) => {
    for (const operation of operations) {
      const { uncovered } = attempts(operation, world)
      for (const entry of uncovered) t.ok(SAFE[entry], `${entry}: attacked below or listed in SAFE with a reason`)
    }
  })

  for (const operation of operations) {
    t.test(`${operation.method.toUpperCase()} ${operation.route} as B with A's ids`, async (t) => {
      const { attempts: list } = attempts(operation, world)
      t.ok(list.length > 0, `${list.length} attempts`)
      const dialects: ('modern' | 'wiki')[] = operation.method === 'post' ? ['modern', 'wiki'] : ['modern']
      const statuses = new Map<number, number>()
      const problems: string[] = []
      for (const attempt of list) {
        for (const dialect of dialects) {
          const reply = await perform(world, attempt, dialect)
          statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1)
          const where = `${dialect} ${attempt.note}`
          const leaked = leaks(world, reply.text)
          if (leaked.length > 0) problems.push(`${where}: ${reply.status} reveals ${leaked.join(', ')}`)
          else if (reply.status >= 200 && reply.status < 300) {
            // A 2xx must not point at A's messages either (e.g. a client_msg_id replay).
            const msgId = (reply.body as Json | undefined)?.msg_id
            if (world.messageIds.includes(msgId)) problems.push(`${where}: ${reply.status} answers with A's msg_id ${msgId}`)
          } else if (![403, 404, 409].includes(reply.status)) problems.push(`${where}: ${reply.status} ${reply.text.slice(0, 120)}`)
        }
      }
      t.comment(`statuses: ${[...statuses.entries()].sort(([x], [y]) => x - y).map(([s, n]) => `${s}: ${n}`).join(', ')}`)
      t.same(problems, [], "403/404/409, or a 2xx that reveals nothing of A's")
    })
  }

  t.test('the session envelope naming A\'s session is refused for every command', async (t) => {
    const { a, b } = world
    let tried = 0
    for (const [route, methods] of Object.entries(document.paths)) {
      const operation = methods.post
      if (!operation || route === '/' || !(operation.security ?? []).length || !operation.requestBody?.content['application/json']) continue
      const command = route.slice(1)
      // A body that passes validation (else it is a 400 before authentication is reached).
      const schema = operation.requestBody.content['application/json'].schema
      const body: Json = {}
      // Its required fields, and the first of its alternatives (to_uid or room_id, say): the
      // ids of the world, else the example's value (a push subscription's URL and keys), else a filler.
      const example = (operation.requestBody.content['application/json'].example ?? {}) as Json
      for (const name of [...(schema.required ?? []), ...(schema.oneOf?.[0]?.required ?? [])]) {
        body[name] = isIdField(name) ? (world.own[name]?.[0] ?? world.victim[name]?.[0]) : (example[name] ?? filler(name, schema.properties![name]!))
      }
      const session = { uid: a.uid, session_key: a.session_key }
      const withBToken = await call(app, command, { ...body, session: { ...session, token: b.token } })
      const withBBearer = await call(app, command, { ...body, session }, b.token)
      const wikiForged = await wiki(app, command, { ...body, session })
      t.same([withBToken.status, withBBearer.status, wikiForged.status], [401, 401, 401], `${command}: A's uid and session_key with B's token, B's bearer, no token`)
      tried++
    }
    t.ok(tried >= 45, `${tried} commands`)
  })

  t.test('control: the same checks see the secrets where a viewer may see them', async (t) => {
    // Guards against a vacuous pass: C, A's friend and room member, sees what B must not.
    const { a, c } = world
    const history = await call(app, 'get_history', { to_uid: a.uid }, c.token)
    t.ok(leaks(world, JSON.stringify(history.body)).includes(world.texts[0]), 'the direct history shows A\'s text to C')
    const room = await call(app, 'get_history', { room_id: world.room }, c.token)
    t.ok(leaks(world, JSON.stringify(room.body)).includes(world.texts[2]), 'the room history shows A\'s room text to C')
    const keys = await call(app, 'get_keys', { uid: a.uid }, c.token)
    t.ok(leaks(world, JSON.stringify(keys.body)).includes(world.keyText), 'get_keys shows A\'s key to C')
    const download = await app.inject({ method: 'GET', url: `/files/${world.fileId}`, headers: { authorization: `Bearer ${c.token}` } })
    t.ok(leaks(world, download.body).includes(world.fileContent), 'the download gives C the bytes')
    const whoami = await call(app, 'whoami', {}, a.token)
    t.ok(leaks(world, JSON.stringify(whoami.body)).length > 0, 'whoami shows A the e-mail')
  })

  t.test("search and the directory do not reveal A's private things", async (t) => {
    const { b } = world
    const found = await call(app, 'search_rooms', { prefix: world.roomName.slice(0, 12) }, b.token)
    t.equal(found.status, 200)
    t.same(leaks(world, JSON.stringify(found.body)), [], 'search_rooms does not list the private room')
    const users = await call(app, 'list_users', { query: world.a.login }, b.token)
    t.equal(users.status, 200)
    t.same(leaks(world, JSON.stringify(users.body)), [], 'list_users does not show the e-mail')
    t.ok((users.body.users as Json[]).some((u) => u.uid === world.a.uid), 'A is listed, without the e-mail')
    const profile = await app.inject({ method: 'GET', url: `/get_user?id=${world.a.uid}`, headers: { authorization: `Bearer ${b.token}` } })
    t.equal(profile.statusCode, 200)
    t.same(leaks(world, profile.body), [], 'get_user shows the public profile only')
  })

  t.test("A's data is intact after the attempts", async (t) => {
    const { a, a2, c } = world
    t.equal((await call(app, 'whoami', {}, a.token)).status, 200, "A's first session still works")
    t.equal((await call(app, 'whoami', {}, a2.token)).status, 200, "A's second session still works")
    t.equal((await call(app, 'whoami', {}, c.token)).status, 200, "C's session still works")
    const sessions = await call(app, 'list_sessions', {}, a.token)
    t.equal(sessions.body.sessions.length, 2, 'A still has two sessions')
    const direct = await call(app, 'get_history', { to_uid: c.uid }, a.token)
    t.same(direct.body.messages.map((m: Json) => m.text), [world.texts[0], world.texts[1], world.texts[4]], 'the direct history is unchanged')
    const room = await call(app, 'get_history', { room_id: world.room }, c.token)
    t.same(room.body.messages.map((m: Json) => m.text), [world.texts[2], world.texts[3]], 'the room history is unchanged')
    const members = await call(app, 'room_members', { room_id: world.room }, a.token)
    t.same(members.body.members.map((m: Json) => [m.uid, m.role]).sort(), [[a.uid, 'owner'], [c.uid, 'member']].sort(), 'the room has A (owner) and C (member)')
    const rooms = await call(app, 'my_rooms', {}, c.token)
    t.ok(rooms.body.rooms.some((r: Json) => r.room_id === world.room && r.name === world.roomName), 'the room keeps its name')
    const contacts = await call(app, 'get_data', {}, a.token)
    t.same(contacts.body.contacts.map((x: Json) => [x.friend_uid, x.status]), [[c.uid, 1]], 'A and C are still friends, and A has no other contact')
    const keys = await call(app, 'get_keys', { uid: a.uid }, c.token)
    t.same(keys.body.keys.map((k: Json) => [k.key_id, k.key]), [['a-device-1', world.keyText]], "A's key is unchanged")
    const download = await app.inject({ method: 'GET', url: `/files/${world.fileId}`, headers: { authorization: `Bearer ${c.token}` } })
    t.equal(download.statusCode, 200, 'C still downloads the file')
    t.equal(download.body, world.fileContent)
    const signal = await call(app, 'call_signal', { call_id: world.callId, payload: { candidate: 'x' } }, c.token)
    t.equal(signal.status, 200, 'the call is still running')
  })

  t.test('nothing of A reached B or D by any other way', async (t) => {
    for (const who of [world.b, world.d]) {
      const seen: string[] = []
      let cursor = 0
      for (let i = 0; i < 50; i++) {
        const reply = await call(app, 'update_data', { cursor, timeout: 0 }, who.token)
        seen.push(JSON.stringify(reply.body))
        if (reply.body.msg_array.length + reply.body.events_array.length === 0) break
        cursor = reply.body.cursor
      }
      for (const [command, body] of [
        ['get_dialogs', {}],
        ['my_rooms', {}],
        ['get_data', {}],
        ['get_presence', {}],
        ['get_history', { to_uid: world.a.uid }],
        ['get_history', { to_uid: world.c.uid }],
        ['search_msgs', { to_uid: world.a.uid, query: 'secret' }],
      ] as const) {
        seen.push(JSON.stringify((await call(app, command, body, who.token)).body))
      }
      const download = await app.inject({ method: 'GET', url: `/files/${world.fileId}`, headers: { authorization: `Bearer ${who.token}` } })
      t.equal(download.statusCode, 404, `${who.login}: A's file is 404`)
      seen.push(download.body)
      t.same(leaks(world, seen.join('\n')), [], `${who.login}: no secret of A's in the log, dialogs, rooms, contacts, history or downloads`)
    }
  })
})
