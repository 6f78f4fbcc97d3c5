// A typed client generated from the served OpenAPI document works without casts.
//
// What this file proves: the document a listening app serves at GET /openapi.json (fetched
// over real HTTP) goes through openapi-typescript, and a strict client scenario written
// only against the generated `paths` types (test/client/scenario.ts.txt: registration,
// authorization, contacts, a direct message, a room, an edit and a delete read from
// `events_array` by narrowing on `type`, a call) type-checks with the project's tsc under
// `strict`, with no `as`, no `any` and no `!` in it (checked with the compiler's parser).
// Then the same scenario runs against the listening app and sees what it should: the
// types it was checked against describe what the server really sends.
//
// It catches a document a generator cannot read: openapi-typescript bundles it with Redocly
// first and refuses dangling references. (At commit 9cd9d61 the `Event` discriminator
// mapping named `#/components/schemas/<Type>Event` while @fastify/swagger filed the
// components as `def-0`, `def-1`, ...: "Can't resolve $ref at
// #/components/schemas/def-9/discriminator/mapping/contact_request".)
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import t from 'tap'
import openapiTS, { astToString } from 'openapi-typescript'
import ts from 'typescript'
import { build } from './helper.js'

const SCENARIO = path.resolve('test/client/scenario.ts.txt')
const TSC = path.resolve('node_modules/.bin/tsc')
const ICE_SERVERS = [{ urls: 'stun:stun.example.test:3478' }]

/** The tsconfig of the temporary directory: strict, no emit, the DOM's fetch, nothing from @types. */
const TSCONFIG = {
  compilerOptions: {
    strict: true,
    noEmit: true,
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    target: 'ES2022',
    lib: ['ES2022', 'DOM'],
    skipLibCheck: true,
    types: [],
  },
  files: ['api.ts', 'scenario.ts'],
}

/** Every cast, `any` or non-null assertion in `source` (`as const` is no cast), with its line. */
function escapeHatches(fileName: string, source: string): string[] {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS)
  const found: string[] = []
  const at = (node: ts.Node) => `${fileName}:${file.getLineAndCharacterOfPosition(node.getStart(file)).line + 1}`
  const visit = (node: ts.Node) => {
    if (ts.isAsExpression(node) && !(ts.isTypeReferenceNode(node.type) && node.type.getText(file) === 'const')) found.push(`${at(node)} as ${node.type.getText(file)}`)
    else if (ts.isTypeAssertionExpression(node)) found.push(`${at(node)} <${node.type.getText(file)}>`)
    else if (ts.isNonNullExpression(node)) found.push(`${at(node)} ${node.getText(file)}`)
    else if (node.kind === ts.SyntaxKind.AnyKeyword) found.push(`${at(node)} any`)
    ts.forEachChild(node, visit)
  }
  visit(file)
  return found
}

function tsc(dir: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [TSC, '-p', dir, '--pretty', 'false'], { timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0
      resolve({ code, output: `${stdout}${stderr}` })
    })
  })
}

/** What the scenario's `run` returns (its `Outcome`), as far as this test reads it. */
interface Outcome {
  alice: number
  direct: { msg_id: number }
  roomId: number
  roomMessage: { room_id: number }
  edited: { msg_id: number }[]
  deleted: number[]
  call: { call_id: number; caller: number }
  callAccepted: { call_id: number }
}

interface Scenario {
  run(base: string): Promise<Outcome>
}

t.test('a strict client written against the types generated from GET /openapi.json type-checks without casts, and runs', async (t) => {
  const app = await build(t, { iceServers: ICE_SERVERS })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const base = `http://127.0.0.1:${port}`

  const served = await fetch(`${base}/openapi.json`)
  t.equal(served.status, 200, 'GET /openapi.json over HTTP: 200')
  const document: unknown = await served.json()

  let types: string
  try {
    types = astToString(await openapiTS(JSON.stringify(document)))
  } catch (error) {
    t.fail(`openapi-typescript refuses the served document: ${error instanceof Error ? error.message : String(error)}`)
    return
  }
  t.match(types, /export interface paths/, 'openapi-typescript generated the paths')

  const dir = await mkdtemp(path.join(os.tmpdir(), 'client-types-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const scenario = await readFile(SCENARIO, 'utf8')
  await writeFile(path.join(dir, 'api.ts'), types)
  await writeFile(path.join(dir, 'scenario.ts'), scenario)
  await writeFile(path.join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }))
  await writeFile(path.join(dir, 'tsconfig.json'), JSON.stringify(TSCONFIG, null, 2))

  t.strictSame(escapeHatches('scenario.ts', scenario), [], 'the scenario has no `as` cast, no `any`, no non-null `!`')
  const checked = await tsc(dir)
  t.equal(checked.code, 0, `tsc -p (strict) exits 0${checked.code === 0 ? '' : `; its output:\n${checked.output}`}`)
  if (checked.code !== 0) return

  // The same source, run (tsx, loaded by the test runner, strips its types) against the app.
  const { run }: Scenario = await import(pathToFileURL(path.join(dir, 'scenario.ts')).href)
  const outcome = await run(base)
  t.match(
    outcome,
    {
      alice: Number,
      bob: Number,
      friends: true,
      direct: { msg_id: Number, text: 'hello bob' },
      roomId: Number,
      roomMessage: { msg_id: Number, room_id: Number },
      edited: [{ msg_id: Number, msg: 'hello, bob', edited_at: Number }],
      deleted: [Number],
      call: { call_id: Number, offer: { type: 'offer', sdp: 'v=0' } },
      callAccepted: { call_id: Number, ice_servers: ICE_SERVERS.length },
    },
    'the scenario ran: friends, the direct and room messages, the edit and the delete, the call request and its acceptance',
  )
  t.equal(outcome.roomMessage?.room_id, outcome.roomId, 'the room message carries its room_id')
  t.strictSame([outcome.edited[0]?.msg_id, outcome.deleted[0]], [outcome.direct?.msg_id, outcome.direct?.msg_id], 'the edit and the delete name the direct message')
  t.strictSame([outcome.call?.caller, outcome.callAccepted?.call_id], [outcome.alice, outcome.call?.call_id], 'call_request names the caller; call_accepted names the same call')
})
