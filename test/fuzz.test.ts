// Hostile input against every operation of the OpenAPI document (openapi/openapi.json):
// the POST commands, the wiki dialect on POST /, GET /get_user, GET /files/{file_id} and
// POST /upload_file. A seeded PRNG (FUZZ_SEED, default below) makes the storm
// deterministic: for each operation, bodies valid for its schema are generated and then
// mutated (wrong types, null, 100k strings, nesting 5000 deep, huge / negative / fractional
// numbers, NaN-like strings, lone surrogates, NUL, RTL, emoji, missing required fields,
// extra fields, arrays for objects), or replaced by malformed JSON text, sent with the wrong
// content type or none; half of them carry a real session, half do not.
//
// Every response must be < 500 and JSON (a download's 200/206 is the file itself); an
// error in the modern dialect is `{error: <one of ERROR_CODES>, message: string}`, in the
// wiki dialect a bare JSON string. After the storm the server still answers /healthz and
// /readyz and a fresh register, login, send and poll works. Counts per status are printed.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import type { App } from '../src/app.js'
import { ERROR_CODES } from '../src/errors.js'
import { COMMANDS } from '../routes/index.js'
import { befriend, build, call, poll, signUp, uniqueLogin, type TestSession } from './helper.js'

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed_f022)
const PER_COMMAND = 70 // requests per POST command (52 commands)
const WIKI_REQUESTS = 600
const GET_USER_REQUESTS = 150
const DOWNLOAD_REQUESTS = 150
const UPLOAD_REQUESTS = 100
const CONCURRENCY = 12
const PASSWORD = 'secret1'

// ---------------------------------------------------------------------------------------
// The OpenAPI document

interface Schema {
  type?: string | string[]
  properties?: Record<string, Schema>
  required?: string[]
  enum?: unknown[]
  const?: unknown
  $ref?: string
  minimum?: number
  maximum?: number
  minLength?: number
  maxLength?: number
  pattern?: string
  format?: string
  additionalProperties?: boolean | Schema
  maxProperties?: number
}

interface Parameter {
  name: string
  in: 'query' | 'path' | 'header'
  required?: boolean
  schema: Schema
}

interface Operation {
  operationId?: string
  requestBody?: { content: Record<string, { schema: Schema }> }
  parameters?: Parameter[]
  security?: unknown[]
}

interface OpenApi {
  paths: Record<string, Record<string, Operation>>
  components: { schemas: Record<string, Schema> }
}

const document = JSON.parse(await readFile(new URL('../openapi/openapi.json', import.meta.url), 'utf8')) as OpenApi

/** A named shape's definition in place of its `$ref`. */
function resolved(schema: Schema): Schema {
  return schema.$ref ? resolved(document.components.schemas[schema.$ref.split('/').pop()!]) : schema
}

// ---------------------------------------------------------------------------------------
// A seeded PRNG (mulberry32)

class Rng {
  private state: number
  constructor(seed: number) {
    this.state = seed >>> 0
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0
    let x = Math.imul(this.state ^ (this.state >>> 15), 1 | this.state)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1))
  }
  chance(p: number): boolean {
    return this.next() < p
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!
  }
  alnum(length: number): string {
    const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
    let s = ''
    for (let i = 0; i < length; i++) s += alphabet[this.int(0, alphabet.length - 1)]
    return s
  }
}

function seedFor(name: string): number {
  let h = SEED >>> 0
  for (const ch of name) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0
  return h
}

// ---------------------------------------------------------------------------------------
// Hostile values

/** Raw JSON spliced into the serialized body where a value is this sentinel. */
const RAW: Record<string, string> = {
  deepArray: '['.repeat(5000) + ']'.repeat(5000),
  deepObject: '{"a":'.repeat(5000) + '1' + '}'.repeat(5000),
  unsafeInteger: '9007199254740993',
  hugeInteger: '1' + '0'.repeat(400), // parses as Infinity
  negativeZero: '-0',
  tinyFloat: '1e-400', // parses as 0
  protoPoison: '{"__proto__":{"polluted":true}}',
  constructorPoison: '{"constructor":{"prototype":{"polluted":true}}}',
}
const raw = (key: keyof typeof RAW) => `\u0001RAW:${key}\u0001`

/** A short printable form of a value for failure reports. */
function describe(value: unknown): string {
  return (JSON.stringify(value) ?? String(value)).replace(/"\\u0001RAW:(\w+)\\u0001"/g, '<$1>').slice(0, 40)
}

function serialize(value: unknown): string {
  return JSON.stringify(value).replace(/"\\u0001RAW:(\w+)\\u0001"/g, (_, key: string) => RAW[key]!)
}

// Filled in at send time: the fuzzing user's current token and session id.
const TOKEN = '@@TOKEN@@'
const SID = '@@SID@@'

const HUGE_STRINGS = ['A'.repeat(100_000), '😀'.repeat(50_000), 'é'.repeat(100_000), '\u0000'.repeat(100_000)]
const HUGE_NUMBERS: unknown[] = [1e308, -1e308, 2 ** 53, 2 ** 53 + 2, 2 ** 64, -(2 ** 63), Number.MAX_VALUE, Number.MIN_VALUE, raw('unsafeInteger'), raw('hugeInteger'), raw('negativeZero'), raw('tinyFloat')]
const BAD_IDS = [-1, 0, 1.5, -0.5, 0.1, 2 ** 31, 2 ** 32 + 1, 2 ** 63, -(2 ** 53)]
const NAN_STRINGS = ['NaN', 'Infinity', '-Infinity', '1e3', '0x10', ' 1', '1 ', '', 'null', 'undefined', 'true', '[]', '{}', '1,2', '٣', '１']
const UNICODE = [
  '\ud800',
  '\udfff',
  'a\ud800b',
  '\udc00\ud800',
  '\u0000',
  'x\u0000y',
  '\u202eevil\u202c',
  '\u200f\u200e\u061c',
  'שלום עולם',
  '👩‍👩‍👧‍👦🏳️‍🌈',
  'e\u0301'.repeat(40),
  '\ufeffbom',
  '\uffff\ufffe',
  '𝕏𝕐ℤ',
  '\u0085\u2028\u2029',
  '\u001b[31mred',
  '%00%ff',
  '../../etc/passwd',
  "' OR 1=1 --",
  '<script>alert(1)</script>',
  '${jndi:ldap://x}',
  '\\',
  '"',
]
const WRONG_TYPES: unknown[] = [123, -1, 1.5, 'str', true, false, [], {}, [1, 'a'], { a: 1 }, [[[]]]]
const EXTRA_KEYS: [string, unknown][] = [
  ['__proto__', raw('protoPoison')],
  ['constructor', raw('constructorPoison')],
  ['prototype', { polluted: true }],
  ['', 1],
  ['\u0000', 'nul key'],
  ['x'.repeat(1000), 'long key'],
  ['toString', 'shadow'],
  ['hasOwnProperty', 1],
  ['extra', { nested: [1, 2, { deeper: null }] }],
  ['request', 'not_this_command'],
  ['session', { uid: 1, session_key: 1, token: 'forged' }],
]
const MALFORMED_JSON = [
  '{',
  '}',
  '{"a":',
  '{"a": 1,}',
  "{'a': 1}",
  '{a: 1}',
  '{"a": NaN}',
  '{"a": Infinity}',
  '{"a": undefined}',
  '{"a": 01}',
  '{"a": .5}',
  '{"a": 1e}',
  '{"a": "\\x41"}',
  '{"a": "\\ud800"}',
  '{"a": "unterminated}',
  '{"a": 1} trailing',
  '{"a": 1}{"b": 2}',
  '// comment\n{}',
  '/* c */ {}',
  '\ufeff{}',
  '[',
  'nul',
  'tru',
  '"',
  ' ',
  '\u0000',
  '{"__proto__": {"x": 1}}',
  '{"a": {"__proto__": {"x": 1}}}',
  '{"constructor": {"prototype": {"x": 1}}}',
  '{"a":1,"a":2}',
]
const CONTENT_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=xyz',
  'application/xml',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'APPLICATION/JSON',
  'application/json-patch+json',
  'application/jsonx',
  'json',
  '*/*',
  ';',
]
const GARBAGE_AUTH = [
  'Bearer',
  'Bearer ',
  'Basic Zm9vOmJhcg==',
  'Bearer a.b.c',
  'Bearer ' + 'x'.repeat(10_000),
  'Bearer eyJhbGciOiJub25lIn0.eyJ1aWQiOjEsInNpZCI6MX0.',
  'Token abc',
  'Bearer two tokens',
]

// ---------------------------------------------------------------------------------------
// Valid-ish values from a schema

interface Pools {
  uids: number[]
  logins: string[]
  rooms: number[]
  messages: number[]
  files: number[]
  calls: number[]
  sessions: number[]
}

function poolFor(name: string, pools: Pools): number[] | undefined {
  switch (name) {
    case 'to_uid':
    case 'uid':
    case 'contact_uid':
    case 'id':
      return pools.uids
    case 'room_id':
      return pools.rooms
    case 'msg_id':
    case 'before':
    case 'after':
      return pools.messages
    case 'file_id':
      return pools.files
    case 'call_id':
      return pools.calls
    case 'session_key':
      return pools.sessions
  }
  return undefined
}

function typeOf(schema: Schema): string | undefined {
  return Array.isArray(schema.type) ? schema.type[0] : schema.type
}

function validString(rng: Rng, schema: Schema, name: string, pools: Pools): string {
  const min = schema.minLength ?? 0
  const max = Math.min(schema.maxLength ?? 40, 40)
  if (schema.format === 'email') return rng.chance(0.5) ? `fz${rng.alnum(6)}@example.com` : `User.${rng.alnum(3)}+tag@Example.ORG`
  if (schema.pattern?.includes('[0-9]{6}')) return String(rng.int(0, 999_999)).padStart(6, '0')
  if (name === 'login' && rng.chance(0.6)) return rng.pick(pools.logins)
  if (/password/.test(name)) return 'secret' + rng.alnum(rng.int(4, 10))
  if (schema.pattern) {
    const s = rng.alnum(Math.max(1, rng.int(min, Math.max(min, Math.min(max, 16)))))
    return schema.pattern.includes('[^/') ? `${s}.txt` : s
  }
  const words = ['hello', 'world', 'Привет', 'مرحبا', '你好', 'fuzz', 'room', 'note']
  let s = ''
  while (s.length < Math.max(min, 1)) s += (s ? ' ' : '') + rng.pick(words)
  return s.slice(0, Math.max(min, Math.min(max, s.length)))
}

function randomJson(rng: Rng, depth = 0): unknown {
  const choice = rng.int(0, depth > 2 ? 3 : 5)
  if (choice === 0) return rng.alnum(rng.int(0, 12))
  if (choice === 1) return rng.int(-1000, 1000)
  if (choice === 2) return rng.pick([null, true, false])
  if (choice === 3) return { sdp: 'v=0\r\no=- 0 0 IN IP4 127.0.0.1', type: rng.pick(['offer', 'answer']) }
  if (choice === 4) return Array.from({ length: rng.int(0, 3) }, () => randomJson(rng, depth + 1))
  return Object.fromEntries(Array.from({ length: rng.int(0, 3) }, () => [rng.alnum(4), randomJson(rng, depth + 1)]))
}

function validValue(rng: Rng, named: Schema, name: string, pools: Pools): unknown {
  const schema = resolved(named)
  if (schema.const !== undefined) return schema.const
  if (schema.enum) return rng.pick(schema.enum)
  const type = typeOf(schema)
  switch (type) {
    case 'integer': {
      const pool = poolFor(name, pools)
      if (pool && pool.length > 0 && rng.chance(0.8)) return rng.pick(pool)
      const min = schema.minimum ?? 0
      const max = Math.min(schema.maximum ?? min + 5, min + 5)
      return rng.int(min, max)
    }
    case 'number':
      if (name === 'timeout') return rng.pick([0, 0, 0.01, 0.05])
      if (name === 'last_time' || name === 'last_update') return rng.pick([0, Math.floor(Date.now() / 1000) - 60])
      return rng.int(schema.minimum ?? 0, (schema.minimum ?? 0) + 5)
    case 'string':
      return validString(rng, schema, name, pools)
    case 'boolean':
      return rng.chance(0.5)
    case 'array':
      return []
    case 'object': {
      const object: Record<string, unknown> = {}
      for (const [key, property] of Object.entries(schema.properties ?? {})) {
        if (key === 'request' || key === 'session') continue // envelope fields: added by the caller
        if ((schema.required ?? []).includes(key) || rng.chance(0.5)) object[key] = validValue(rng, property, key, pools)
      }
      if (typeof schema.additionalProperties === 'object' && !schema.properties) {
        const n = rng.int(0, 2)
        for (let i = 0; i < n; i++) object[String(rng.pick(pools.uids))] = validValue(rng, schema.additionalProperties, 'value', pools)
      }
      return object
    }
    default:
      return randomJson(rng) // Type.Unknown: opaque payloads (offer, answer, payload)
  }
}

/** Applies 0 to 3 mutations to a body; returns the body and what was done. */
function mutate(rng: Rng, body: unknown, schema: Schema | undefined, notes: string[]): unknown {
  const rounds = rng.pick([0, 0, 0, 1, 1, 2, 3])
  for (let i = 0; i < rounds; i++) {
    const isObject = body !== null && typeof body === 'object' && !Array.isArray(body)
    const object = body as Record<string, unknown>
    const properties = Object.keys(schema?.properties ?? {}).filter((key) => key !== 'request' && key !== 'session')
    const fields = [...new Set([...properties, ...(isObject ? Object.keys(object) : [])])]
    const field = fields.length > 0 ? rng.pick(fields) : 'x'
    const fieldSchema = schema?.properties?.[field] ?? {}
    const kind = rng.pick([
      'wrongType',
      'null',
      'hugeString',
      'deep',
      'hugeNumber',
      'badId',
      'nanString',
      'unicode',
      'unicode',
      'unicode',
      'dropRequired',
      'extraField',
      'arrayForObject',
      'primitiveBody',
    ])
    if (!isObject && kind !== 'primitiveBody') continue
    notes.push(`${kind}(${field})`)
    switch (kind) {
      case 'wrongType':
        object[field] = rng.pick(WRONG_TYPES)
        break
      case 'null':
        object[field] = null
        break
      case 'hugeString':
        object[field] = rng.pick(HUGE_STRINGS)
        break
      case 'deep':
        object[field] = raw(rng.pick(['deepArray', 'deepObject'] as const))
        break
      case 'hugeNumber':
        object[field] = rng.pick(HUGE_NUMBERS)
        break
      case 'badId':
        object[field] = rng.pick(BAD_IDS)
        break
      case 'nanString':
        object[field] = rng.pick(NAN_STRINGS)
        break
      case 'unicode': {
        // Keep it within the field's length limits so that it gets past validation.
        const strings = Object.entries(schema?.properties ?? {}).filter(([key, s]) => typeOf(s) === 'string' && key !== 'request')
        const [key, s] = strings.length > 0 ? rng.pick(strings) : [field, fieldSchema]
        let text = rng.pick(UNICODE)
        if (rng.chance(0.5)) text = `${validString(rng, s, key, { uids: [], logins: ['u'], rooms: [], messages: [], files: [], calls: [], sessions: [] })}${text}`
        object[key] = text.slice(0, Math.max(1, s.maxLength ?? text.length))
        notes[notes.length - 1] = `unicode(${key}=${describe(text)})`
        break
      }
      case 'dropRequired': {
        const required = schema?.required ?? []
        if (required.length > 0) delete object[rng.pick(required)]
        break
      }
      case 'extraField': {
        const [key, value] = rng.pick(EXTRA_KEYS)
        object[key] = value
        break
      }
      case 'arrayForObject':
        if (rng.chance(0.5)) body = [body]
        else object[field] = [object[field] ?? 1]
        break
      case 'primitiveBody':
        body = rng.pick(['str', 1, null, true, [], raw('deepArray')])
        break
    }
    if (['wrongType', 'null', 'hugeString', 'deep', 'hugeNumber', 'badId', 'nanString'].includes(kind)) {
      notes[notes.length - 1] = `${kind}(${field}=${describe(object[field])})`
    }
  }
  return body
}

// ---------------------------------------------------------------------------------------
// Requests and their checks

type Dialect = 'modern' | 'wiki' | 'download'
type Auth = 'token' | 'none' | 'garbage'

interface FuzzRequest {
  method: 'GET' | 'POST'
  url: string
  contentType?: string
  payload?: string | Buffer
  headers?: Record<string, string>
  auth: Auth
  garbage?: string
  dialect: Dialect
  note: string
}

/** The JSON text of a body, or a malformed / mistyped variant of it. */
function encodeBody(rng: Rng, text: string, notes: string[]): Pick<FuzzRequest, 'payload' | 'contentType'> {
  const roll = rng.next()
  if (roll < 0.82) return { payload: text, contentType: 'application/json' }
  if (roll < 0.88) {
    notes.push('malformed')
    return { payload: rng.chance(0.5) ? rng.pick(MALFORMED_JSON) : text.slice(0, rng.int(0, Math.max(0, text.length - 1))), contentType: 'application/json' }
  }
  if (roll < 0.94) {
    const contentType = rng.pick(CONTENT_TYPES)
    notes.push(`content-type ${contentType}`)
    return { payload: text, contentType }
  }
  if (roll < 0.97) {
    notes.push('no content-type')
    return { payload: rng.chance(0.7) ? text : undefined }
  }
  notes.push('invalid utf-8')
  return { payload: Buffer.concat([Buffer.from(text.slice(0, 20)), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]), Buffer.from('"}')]), contentType: 'application/json' }
}

function pickAuth(rng: Rng): { auth: Auth; garbage?: string } {
  const roll = rng.next()
  if (roll < 0.5) return { auth: 'token' }
  if (roll < 0.6) return { auth: 'garbage', garbage: rng.pick(GARBAGE_AUTH) }
  return { auth: 'none' }
}

/** Requests for one POST command, modern dialect. */
function commandRequests(rng: Rng, name: string, schema: Schema, count: number, pools: Pools): FuzzRequest[] {
  const requests: FuzzRequest[] = []
  for (let i = 0; i < count; i++) {
    const notes: string[] = []
    let body = validValue(rng, schema, '', pools)
    body = mutate(rng, body, schema, notes)
    const { auth, garbage } = pickAuth(rng)
    if (body && typeof body === 'object' && !Array.isArray(body)) {
      const object = body as Record<string, unknown>
      if (rng.chance(0.1)) object.request = rng.chance(0.7) ? name : rng.pick(['send_msg', 'x', ''])
      // The wiki-style session object instead of the bearer header, now and then.
      if (auth === 'none' && rng.chance(0.15)) {
        object.session = { uid: pools.uids[0], session_key: SID, token: TOKEN }
        notes.push('body session')
      }
    }
    const encoded = encodeBody(rng, serialize(body), notes)
    requests.push({ method: 'POST', url: `/${name}`, auth, garbage, dialect: 'modern', note: notes.join(' '), ...encoded })
  }
  return requests
}

/**
 * The systematic part: a valid body with one field at a time set to each hostile value of
 * its kind (strings: the unicode edge cases, within the field's length; ids and numbers:
 * bad and huge numbers; opaque payloads: nesting 5000 deep), authenticated, in either dialect.
 */
function sweepRequests(rng: Rng, name: string, schema: Schema, pools: Pools, good: Pools): FuzzRequest[] {
  const requests: FuzzRequest[] = []
  for (const [field, property] of Object.entries(schema.properties ?? {})) {
    if (field === 'request' || field === 'session') continue
    const type = typeOf(property)
    let values: unknown[]
    if (property.enum) values = [...NAN_STRINGS.slice(0, 3), null]
    else if (type === 'string') values = UNICODE.map((text) => text.slice(0, Math.max(1, property.maxLength ?? text.length)))
    else if (type === 'integer' || type === 'number') values = [...BAD_IDS, ...HUGE_NUMBERS]
    else if (type === undefined) values = [raw('deepArray'), raw('deepObject'), raw('protoPoison'), { text: '\ud800' }, { text: '\u0000' }]
    else if (type === 'object' && typeof property.additionalProperties === 'object') {
      values = [raw('deepObject'), [], ...UNICODE.slice(0, 6).map((text) => ({ [String(pools.uids[1])]: text }))]
    } else values = [raw('deepObject'), []]
    for (const value of values) {
      // The other fields name things that exist and may be used, so the value gets as far
      // as the database.
      const body = validValue(rng, schema, '', pools) as Record<string, unknown>
      for (const key of Object.keys(body)) {
        const pool = poolFor(key, good)
        if (pool) body[key] = pool[0]
      }
      if (body.to_uid !== undefined && body.room_id !== undefined) delete body[rng.chance(0.5) ? 'to_uid' : 'room_id']
      body[field] = value
      const wiki = rng.chance(0.5)
      const note = `sweep ${field}=${describe(value)}${wiki ? ' (wiki)' : ''}`
      if (wiki) {
        body.request = name
        body.session = { uid: pools.uids[0], session_key: SID, token: TOKEN }
        requests.push({ method: 'POST', url: '/', auth: 'none', dialect: 'wiki', note: `request="${name}" ${note}`, payload: serialize(body), contentType: 'application/json' })
      } else {
        requests.push({ method: 'POST', url: `/${name}`, auth: 'token', dialect: 'modern', note, payload: serialize(body), contentType: 'application/json' })
      }
    }
  }
  return requests
}

const WIKI_JUNK_NAMES: unknown[] = [
  '',
  ' ',
  'REGISTRATION',
  ' registration',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'x'.repeat(64),
  'x'.repeat(65),
  '\u0000',
  'send_msg\u0000',
  '😀',
  '\ud800',
  'get_user',
  'upload_file',
  'files',
  'healthz',
  'metrics',
  1,
  null,
  [],
  {},
  true,
  ['send_msg'],
]

function wikiRequests(rng: Rng, count: number, schemas: Map<string, Schema>, pools: Pools): FuzzRequest[] {
  const names = [...schemas.keys()]
  const requests: FuzzRequest[] = []
  for (let i = 0; i < count; i++) {
    const notes: string[] = []
    const valid = rng.chance(0.7)
    const name = valid ? rng.pick(names) : rng.chance(0.7) ? rng.pick(WIKI_JUNK_NAMES) : rng.alnum(rng.int(1, 20))
    const schema = valid ? schemas.get(name as string)! : undefined
    let body = schema ? validValue(rng, schema, '', pools) : {}
    body = mutate(rng, body, schema, notes)
    let auth: Auth = 'none'
    if (body && typeof body === 'object' && !Array.isArray(body)) {
      const object = body as Record<string, unknown>
      if (!rng.chance(0.05)) object.request = name // now and then no `request` at all
      const roll = rng.next()
      if (roll < 0.45) {
        object.session = { uid: pools.uids[0], session_key: SID, token: TOKEN, contact_uid: pools.uids[0] }
        auth = 'token'
      } else if (roll < 0.5) {
        object.session = rng.pick([
          { uid: pools.uids[1], session_key: SID, token: TOKEN }, // someone else's uid, my token
          { uid: pools.uids[0], session_key: 1, token: 'forged' },
          { uid: pools.uids[0], session_key: SID },
          'not an object',
          null,
        ])
        notes.push('bad session')
      }
    }
    if (auth === 'token') notes.push('session')
    notes.unshift(`request=${JSON.stringify(name)?.slice(0, 40)}`)
    // The session travels in the body; now and then a garbage Authorization header too.
    const header: { auth: Auth; garbage?: string } = rng.chance(0.1) ? { auth: 'garbage', garbage: rng.pick(GARBAGE_AUTH) } : { auth: 'none' }
    const encoded = encodeBody(rng, serialize(body), notes)
    requests.push({ method: 'POST', url: '/', ...header, dialect: 'wiki', note: notes.join(' '), ...encoded })
  }
  return requests
}

const ID_STRINGS = ['abc', '-1', '0', '1.5', '1e3', '9007199254740993', '99999999999999999999999', 'NaN', 'Infinity', '', '%20', '%201', '0x1', '%00', '%F0%9F%98%80', '%ED%A0%80', '%', '%zz', '1%2F2', '..%2F..%2Fetc%2Fpasswd', '1;DROP TABLE users', '9'.repeat(400), '١']

function getUserRequests(rng: Rng, count: number, pools: Pools): FuzzRequest[] {
  const requests: FuzzRequest[] = []
  for (let i = 0; i < count; i++) {
    const roll = rng.next()
    let query: string
    if (roll < 0.35) query = `id=${rng.pick(pools.uids)}`
    else if (roll < 0.7) query = `id=${rng.pick(ID_STRINGS)}`
    else if (roll < 0.8) query = `id=${rng.pick(pools.uids)}&id=${rng.pick(pools.uids)}`
    else if (roll < 0.85) query = `id[]=${rng.pick(pools.uids)}`
    else if (roll < 0.9) query = `__proto__[id]=1&constructor=1&id=${rng.pick(pools.uids)}`
    else if (roll < 0.95) query = ''
    else query = `id=${rng.pick(pools.uids)}&extra=${'x'.repeat(rng.int(1, 5000))}`
    requests.push({ method: 'GET', url: `/get_user${query ? '?' + query : ''}`, dialect: 'modern', note: query.slice(0, 60), ...pickAuth(rng) })
  }
  return requests
}

const RANGES = ['bytes=0-0', 'bytes=-1', 'bytes=5-', 'bytes=abc', 'bytes=0-1,2-3', 'bytes=99999999999999999999-', 'items=0-1', 'bytes=1-0', 'bytes=-0', 'bytes=0-9007199254740993', 'bytes=', 'bytes=--1', 'bytes=0-1' + ',0-1'.repeat(500)]

function downloadRequests(rng: Rng, count: number, pools: Pools): FuzzRequest[] {
  const requests: FuzzRequest[] = []
  for (let i = 0; i < count; i++) {
    const id = rng.chance(0.5) ? String(rng.pick([...pools.files, ...pools.messages, 1, 2, 3])) : rng.pick([...ID_STRINGS, 'x'.repeat(5000), '%2e%2e'])
    const headers: Record<string, string> = {}
    if (rng.chance(0.35)) headers.range = rng.pick(RANGES)
    if (rng.chance(0.1)) headers['if-none-match'] = rng.pick(['*', '"abc"', 'W/"x"'])
    requests.push({ method: 'GET', url: `/files/${id}`, headers, dialect: 'download', note: `${id.slice(0, 40)} ${headers.range ?? ''}`.trim(), ...pickAuth(rng) })
  }
  return requests
}

const FILE_NAMES = ['a.txt', '', 'x'.repeat(255), 'x'.repeat(256), 'a/b', 'a\\b', '%00', 'a%0Ab', '..', '.', '%E2%80%AEtxt.exe', '%F0%9F%98%80.png', '%ED%A0%80', '%', 'name%00.txt', 'a%2Fb', 'con', 'é.txt', '"quoted".txt', "it's.txt", 'a;b=c']
const UPLOAD_TYPES = ['image/png', 'text/plain; charset=utf-8', 'application/json', 'application/octet-stream', 'x'.repeat(300) + '/y', 'not a type', '', 'multipart/form-data; boundary=x', 'a/b; q="\\"', 'text/html']

function uploadRequests(rng: Rng, count: number): FuzzRequest[] {
  const requests: FuzzRequest[] = []
  for (let i = 0; i < count; i++) {
    const name = rng.chance(0.85) ? `?name=${rng.pick(FILE_NAMES)}` : rng.pick(['', '?name', '?name=a&name=b', '?name[]=a', '?name=' + 'y'.repeat(5000)])
    const size = rng.pick([0, 1, 17, 1000, 4096, 100_000])
    const payload = Buffer.alloc(size)
    for (let j = 0; j < Math.min(size, 64); j++) payload[j] = rng.int(0, 255)
    const contentType = rng.chance(0.9) ? rng.pick(UPLOAD_TYPES) : undefined
    requests.push({ method: 'POST', url: `/upload_file${name}`, payload, contentType, dialect: 'modern', note: `${name.slice(0, 40)} ${contentType ?? 'no type'} ${size} B`, ...pickAuth(rng) })
  }
  return requests
}

// ---------------------------------------------------------------------------------------
// Sending and checking

interface Fuzzer {
  app: App
  session: TestSession
  /** Logs the fuzzing user in again when a request ended its session. */
  refresh(deadToken: string): Promise<void>
}

interface Outcome {
  status: number
  problem?: string
}

function checkReply(request: FuzzRequest, status: number, text: string): string | undefined {
  if (status >= 500) return `status ${status}`
  if (request.dialect === 'download' && (status === 200 || status === 206 || status === 304)) return undefined
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    return `status ${status}, body is not JSON: ${JSON.stringify(text.slice(0, 100))}`
  }
  if (status < 400) return undefined
  if (request.dialect === 'wiki') return typeof body === 'string' ? undefined : `status ${status}, wiki error is not a JSON string: ${text.slice(0, 100)}`
  const error = body as { error?: unknown; message?: unknown }
  if (!error || typeof error !== 'object' || Array.isArray(error)) return `status ${status}, error is not an object: ${text.slice(0, 100)}`
  if (!(ERROR_CODES as readonly unknown[]).includes(error.error)) return `status ${status}, unknown error code ${JSON.stringify(error.error)}`
  if (typeof error.message !== 'string') return `status ${status}, message is not a string`
  return undefined
}

const SESSION_ENDERS = new Set(['logout', 'logout_all', 'logout_session', 'change_password'])

async function send(fuzzer: Fuzzer, request: FuzzRequest): Promise<Outcome> {
  const { app, session } = fuzzer
  const headers: Record<string, string> = { ...request.headers }
  if (request.contentType !== undefined) headers['content-type'] = request.contentType
  if (request.auth === 'token') headers.authorization = `Bearer ${session.token}`
  if (request.auth === 'garbage' && request.garbage) headers.authorization = request.garbage
  let payload = request.payload
  if (typeof payload === 'string') payload = payload.replaceAll(`"${TOKEN}"`, JSON.stringify(session.token)).replaceAll(`"${SID}"`, String(session.session_key))
  const response = await app.inject({ method: request.method, url: request.url, headers, payload })
  const problem = checkReply(request, response.statusCode, response.body)
  if (response.statusCode < 300 && request.method === 'POST') {
    const command = request.url === '/' ? /request="(\w+)"/.exec(request.note)?.[1] : request.url.slice(1)
    if (command && SESSION_ENDERS.has(command)) await fuzzer.refresh(session.token)
  }
  return { status: response.statusCode, problem: problem && `${problem} <- ${request.method} ${request.url.slice(0, 80)} [${request.note.slice(0, 160)}]` }
}

const totals = new Map<number, number>()

async function storm(t: Test, fuzzer: Fuzzer, what: string, requests: FuzzRequest[]) {
  const counts = new Map<number, number>()
  const problems = new Map<string, number>()
  let next = 0
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < requests.length) {
        const request = requests[next++]!
        const outcome = await send(fuzzer, request)
        counts.set(outcome.status, (counts.get(outcome.status) ?? 0) + 1)
        totals.set(outcome.status, (totals.get(outcome.status) ?? 0) + 1)
        if (outcome.problem) {
          // One line per distinct problem: the status and what was sent, minus the noise.
          const key = outcome.problem
          problems.set(key, (problems.get(key) ?? 0) + 1)
        }
      }
    }),
  )
  const summary = [...counts.entries()].sort(([a], [b]) => a - b).map(([status, n]) => `${status}: ${n}`).join(', ')
  t.comment(`${what}: ${requests.length} requests; ${summary}`)
  const listed = [...problems.keys()].slice(0, 12)
  t.equal(problems.size, 0, `${what}: every reply < 500, JSON, errors in the dialect's shape`, { problems: listed })
}

// ---------------------------------------------------------------------------------------

t.test(`fuzzing every operation (seed ${SEED}; FUZZ_SEED to change it)`, async (t) => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'messenger-fuzz-'))
  t.teardown(() => rm(dataDir, { recursive: true, force: true }))
  const app = await build(t, {
    dataDir,
    rateLimitPerMinute: 1_000_000,
    loginMaxFailures: 1_000_000, // fuzzed change_password bodies count as failed logins
    pollDefaultSeconds: 0.2,
    pollMaxSeconds: 0.2,
    maxHeldPollsPerUser: 1000,
  })

  // The fuzzing user F, with a friend, a room, messages, an upload, a call and sessions:
  // the pools the generated ids come from.
  const fuzzLogin = uniqueLogin('fuzz')
  const session = await signUp(app, fuzzLogin, PASSWORD)
  const friend = await signUp(app)
  await befriend(app, session, friend)
  const room = await call(app, 'create_room', { name: 'fuzz room', type: 'public' }, session.token)
  const sent = await call(app, 'send_msg', { to_uid: friend.uid, msg: 'hello' }, session.token)
  const roomMsg = await call(app, 'send_msg', { room_id: room.body.room.room_id, msg: 'hello room' }, session.token)
  const upload = await app.inject({ method: 'POST', url: '/upload_file?name=a.txt', headers: { authorization: `Bearer ${session.token}`, 'content-type': 'text/plain' }, payload: 'file' })
  const placed = await call(app, 'call', { to_uid: friend.uid }, session.token)
  const pools: Pools = {
    uids: [session.uid, friend.uid, 999_999],
    logins: [fuzzLogin, friend.login, 'nobody_here'],
    rooms: [room.body.room.room_id, 999_999],
    messages: [sent.body.msg_id, roomMsg.body.msg_id, 999_999],
    files: [upload.json().file_id, 999_999],
    calls: [placed.body.call_id, 999_999],
    sessions: [session.session_key, friend.session_key, 999_999],
  }
  t.ok(Object.values(pools).every((pool) => pool.every((id: unknown) => id !== undefined)), 'the fixtures exist')
  // For the systematic sweep: ids that name things F may act on (never F's own session).
  const good: Pools = {
    uids: [friend.uid],
    logins: [friend.login],
    rooms: [room.body.room.room_id],
    messages: [sent.body.msg_id],
    files: [upload.json().file_id],
    calls: [placed.body.call_id],
    sessions: [999_999],
  }

  let refreshing: Promise<void> | undefined
  const fuzzer: Fuzzer = {
    app,
    session: { ...session },
    async refresh(deadToken) {
      if (fuzzer.session.token !== deadToken) return
      refreshing ??= (async () => {
        const authorized = await call(app, 'authorization', { login: fuzzLogin, password: PASSWORD })
        if (authorized.status !== 200) throw new Error(`re-login failed: ${authorized.status} ${JSON.stringify(authorized.body)}`)
        fuzzer.session = { ...fuzzer.session, token: authorized.body.session.token, session_key: authorized.body.session.session_key }
        pools.sessions.push(authorized.body.session.session_key)
      })().finally(() => (refreshing = undefined))
      await refreshing
    },
  }

  const wikiSchemas = new Map<string, Schema>()
  let operations = 0
  for (const [route, methods] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      operations++
      const id = operation.operationId ?? `${method} ${route}`
      const rng = new Rng(seedFor(id))
      if (route === '/') {
        for (const command of COMMANDS) {
          const schema = document.paths[`/${command.name}`]?.post?.requestBody?.content['application/json']?.schema
          if (schema) for (const name of command.names) wikiSchemas.set(name, schema)
        }
        t.test('POST / (wiki dialect), random `request` names and bodies', (t) => storm(t, fuzzer, 'wiki dialect', wikiRequests(rng, WIKI_REQUESTS, wikiSchemas, pools)))
      } else if (route === '/get_user') {
        t.test('GET /get_user', (t) => storm(t, fuzzer, 'get_user', getUserRequests(rng, GET_USER_REQUESTS, pools)))
      } else if (route === '/files/{file_id}') {
        t.test('GET /files/{file_id}', (t) => storm(t, fuzzer, 'download_file', downloadRequests(rng, DOWNLOAD_REQUESTS, pools)))
      } else if (route === '/upload_file') {
        t.test('POST /upload_file', (t) => storm(t, fuzzer, 'upload_file', uploadRequests(rng, UPLOAD_REQUESTS)))
      } else if (method === 'post') {
        const schema = operation.requestBody?.content['application/json']?.schema
        if (!schema) throw new Error(`POST ${route} documents no JSON body: teach the fuzzer about it`)
        const name = route.slice(1)
        t.test(`POST ${route}`, (t) => storm(t, fuzzer, id, [...commandRequests(rng, name, schema, PER_COMMAND, pools), ...sweepRequests(rng, name, schema, pools, good)]))
      } else {
        throw new Error(`${method.toUpperCase()} ${route} is new: teach the fuzzer about it`)
      }
    }
  }
  t.ok(operations >= 55, `${operations} operations in the document`)

  t.test('after the storm the server is healthy and works', async (t) => {
    const total = [...totals.values()].reduce((a, b) => a + b, 0)
    t.comment(`all operations: ${total} requests; ${[...totals.entries()].sort(([a], [b]) => a - b).map(([s, n]) => `${s}: ${n}`).join(', ')}`)
    t.ok(total >= 3000, `${total} requests were sent`)
    t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, '/healthz 200')
    t.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200, '/readyz 200')
    const alice = await signUp(app)
    const bob = await signUp(app)
    await befriend(app, alice, bob)
    const start = (await poll(app, bob, 0)).cursor
    const sentAfter = await call(app, 'send_msg', { to_uid: bob.uid, msg: 'still alive' }, alice.token)
    t.equal(sentAfter.status, 200, 'send_msg works')
    const reply = await poll(app, bob, start)
    t.same(reply.msg_array.map((m) => m.text), ['still alive'], 'and the message is polled')
    t.equal(app.eventLog.polls.size, 0, 'no poll is left held')
  })
})
