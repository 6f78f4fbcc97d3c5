// Files: POST /upload_file and GET /files/{id}, on a real PostgreSQL and a real disk store
// (each app has a DATA_DIR of its own, so `<dataDir>/files` is what that app wrote).
// This file proves:
//  - round trip: uploaded bytes (text, binary, empty) come back exact, with size and sha256
//    in the reply and Content-Type / Length / Disposition (also a non-ASCII name), Accept-Ranges, ETag;
//  - who may download: the uploader; whoever sees a live message carrying the file (direct
//    or room); never a stranger, a friend before attachment, a member who left or was kicked,
//    or anyone after the message was deleted (the uploader still may); attaching someone
//    else's upload is 404 and stores nothing; messages carry `kind: 'file'` and `file`;
//  - ranges: 206 with Content-Range and exact bytes, 416 with `bytes */size` beyond the file,
//    malformed or multi ranges answered with correct bytes;
//  - the MAX_FILE_BYTES cap: declared too large → 413 at once; streamed past the cap over a
//    real socket → 413 JSON, and nothing left on disk or in the files table;
//  - a ~150 MiB upload and download over a real socket with bounded memory and exact sha256;
//  - an interrupted upload leaves no row and no partial file, and the server keeps answering;
//  - missing or truncated content on disk → 410 file_unavailable, the server keeps running;
//  - clean-up with a ManualClock: unattached uploads older than UPLOAD_TTL_SECONDS go (row and
//    bytes), attached and recent ones stay; stale `incoming/` leftovers go;
//  - upload without auth → 401, a bad name → 400, no Content-Type → application/octet-stream.
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm, stat, truncate, unlink, utimes, writeFile } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import type { App } from '../src/app.js'
import { ManualClock } from '../src/clock.js'
import type { Config } from '../src/config.js'
import { befriend, build, call, drain, eventually, poll, signUp, sleep, type TestSession } from './helper.js'

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>

const MiB = 1024 * 1024

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex')

/** A fresh DATA_DIR, removed at the end of `t`. */
async function tempDataDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'messenger-files-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** An app with a DATA_DIR of its own. */
async function buildWithDir(t: Test, overrides: Partial<Config> = {}, clock?: ManualClock): Promise<{ app: App; dataDir: string; filesDir: string }> {
  const dataDir = await tempDataDir(t)
  const app = await build(t, { dataDir, ...overrides }, undefined, clock)
  // Connect the event hub's LISTEN connection now: otherwise the first authenticated
  // request starts it in the background, and an app closed before it is up leaks that
  // connection (EventHub.close does not wait for a connect in progress), keeping the test
  // process alive. See the report; this file is about files, not that race.
  await app.eventLog.listener.listen()
  return { app, dataDir, filesDir: path.join(dataDir, 'files') }
}

/** Every regular file under `dir`, as paths relative to it (none when `dir` is missing). */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
  return entries
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(dir, path.join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name)))
    .sort()
}

interface Uploaded {
  status: number
  body: Json
}

async function upload(app: App, token: string | undefined, content: Buffer | string, options: { name?: string; contentType?: string | null } = {}): Promise<Uploaded> {
  const headers: Record<string, string> = {}
  if (token) headers.authorization = `Bearer ${token}`
  if (options.contentType !== null) headers['content-type'] = options.contentType ?? 'application/octet-stream'
  const query = options.name !== undefined ? `?name=${encodeURIComponent(options.name)}` : ''
  const response = await app.inject({ method: 'POST', url: `/upload_file${query}`, headers, payload: content })
  return { status: response.statusCode, body: response.json() }
}

/** Uploads and returns the reply, failing loudly when the upload is refused. */
async function uploaded(app: App, session: TestSession, content: Buffer | string, name = 'file.bin', contentType = 'application/octet-stream'): Promise<Json> {
  const reply = await upload(app, session.token, content, { name, contentType })
  if (reply.status !== 200) throw new Error(`upload failed: ${reply.status} ${JSON.stringify(reply.body)}`)
  return reply.body
}

async function download(app: App, token: string | undefined, fileId: number, headers: Record<string, string> = {}) {
  const response = await app.inject({
    method: 'GET',
    url: `/files/${fileId}`,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
  })
  let body: Json | undefined
  if (String(response.headers['content-type'] ?? '').startsWith('application/json')) body = response.json()
  return { status: response.statusCode, headers: response.headers, raw: response.rawPayload, body }
}

async function ok(command: string, promise: ReturnType<typeof call>): Promise<Json> {
  const reply = await promise
  if (reply.status !== 200) throw new Error(`${command} failed: ${reply.status} ${JSON.stringify(reply.body)}`)
  return reply.body as Json
}

async function fileRows(app: App, ownerId?: number): Promise<Json[]> {
  const query = app.db('files').select('*').orderBy('id')
  return ownerId === undefined ? query : query.where({ owner_id: ownerId })
}

async function listen(app: App): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as AddressInfo).port
}

interface StreamedReply {
  status: number
  headers: http.IncomingHttpHeaders
  body: Json | string
}

/** Reads a whole response as text, parsing JSON when it is. */
function readReply(response: http.IncomingMessage): Promise<StreamedReply> {
  return new Promise((resolve, reject) => {
    let text = ''
    response.setEncoding('utf8')
    response.on('data', (chunk) => (text += chunk))
    response.on('error', reject)
    response.on('end', () => {
      let body: Json | string = text
      try {
        body = JSON.parse(text)
      } catch {
        // not JSON
      }
      resolve({ status: response.statusCode ?? 0, headers: response.headers, body })
    })
  })
}

/**
 * A chunked upload over a real socket: writes `chunks` (generated lazily) with backpressure
 * until they end or the server answers. Resolves with the reply and how much was written.
 */
function streamUpload(port: number, token: string, name: string, chunks: Iterable<Buffer>) {
  const request = http.request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: `/upload_file?name=${encodeURIComponent(name)}`,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
    agent: false,
  })
  let answered = false
  let written = 0
  const reply = new Promise<StreamedReply>((resolve, reject) => {
    request.on('error', reject)
    request.on('response', (response) => {
      answered = true
      readReply(response).then(resolve, reject)
    })
  })
  const sent = (async () => {
    for (const chunk of chunks) {
      if (answered || request.destroyed) break
      written += chunk.length
      if (!request.write(chunk)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            request.off('drain', done)
            request.off('close', done)
            request.off('response', done)
            resolve()
          }
          request.on('drain', done)
          request.on('close', done)
          request.on('response', done)
        })
      }
    }
    if (!answered && !request.destroyed) request.end()
    return written
  })()
  return { request, reply, sent }
}

/** `count` chunks of `size` bytes, each different, made only when asked for. */
function* generatedChunks(count: number, size = 64 * 1024, onChunk?: (chunk: Buffer) => void): Generator<Buffer> {
  const pattern = randomBytes(size)
  for (let i = 0; i < count; i++) {
    const chunk = Buffer.allocUnsafe(size)
    pattern.copy(chunk)
    chunk.writeUInt32BE(i, (i * 4) % (size - 4)) // every chunk differs from the others
    onChunk?.(chunk)
    yield chunk
  }
}

/** Samples process memory every 50 ms until stopped; reports growth over the baseline. */
function memorySampler() {
  const base = process.memoryUsage()
  let peakRss = base.rss
  let peakArrayBuffers = base.arrayBuffers
  const sample = () => {
    const now = process.memoryUsage()
    peakRss = Math.max(peakRss, now.rss)
    peakArrayBuffers = Math.max(peakArrayBuffers, now.arrayBuffers)
  }
  const timer = setInterval(sample, 50)
  return {
    stop() {
      sample()
      clearInterval(timer)
      return {
        baseRss: base.rss,
        peakRss,
        rssGrowth: peakRss - base.rss,
        arrayBuffersGrowth: peakArrayBuffers - base.arrayBuffers,
      }
    },
  }
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`

// ---------------------------------------------------------------------------------------
// 1. Round trip

t.test('round trip: text, binary and empty uploads come back byte for byte with their headers', async (t) => {
  const { app } = await buildWithDir(t)
  const alice = await signUp(app)

  const text = 'Hello, files!\nSecond line — with a dash.\n'
  const up = await upload(app, alice.token, text, { name: 'notes.txt', contentType: 'text/plain; charset=utf-8' })
  t.equal(up.status, 200, 'a text upload is accepted')
  t.strictSame(
    up.body,
    { file_id: up.body.file_id, name: 'notes.txt', size: Buffer.byteLength(text), content_type: 'text/plain; charset=utf-8', sha256: sha256(text) },
    'the reply names the file with its size, type and sha256',
  )
  t.type(up.body.file_id, 'number', 'file_id is a JSON number')

  const got = await download(app, alice.token, up.body.file_id)
  t.equal(got.status, 200, 'the uploader downloads it')
  t.equal(got.raw.toString('utf8'), text, 'the exact text comes back')
  t.equal(got.headers['content-type'], 'text/plain; charset=utf-8', 'with its Content-Type')
  t.equal(got.headers['content-length'], String(Buffer.byteLength(text)), 'with its Content-Length')
  t.equal(got.headers['content-disposition'], 'attachment; filename="notes.txt"', 'as an attachment with its name')
  t.equal(got.headers['accept-ranges'], 'bytes', 'ranges are advertised')
  t.equal(got.headers.etag, `"${sha256(text)}"`, 'the ETag is the quoted sha256')

  const binary = randomBytes(300 * 1024 + 17)
  const bin = await upload(app, alice.token, binary, { name: 'отчёт 1.pdf', contentType: 'application/pdf' })
  t.equal(bin.status, 200, 'a binary upload is accepted')
  t.equal(bin.body.size, binary.length, 'size of the binary upload')
  t.equal(bin.body.sha256, sha256(binary), 'sha256 of the binary upload')
  t.equal(bin.body.name, 'отчёт 1.pdf', 'a non-ASCII name is kept as given')
  t.not(bin.body.file_id, up.body.file_id, 'each upload has its own id')

  const gotBinary = await download(app, alice.token, bin.body.file_id)
  t.equal(gotBinary.status, 200)
  t.ok(gotBinary.raw.equals(binary), 'the exact random bytes come back')
  t.equal(gotBinary.headers['content-type'], 'application/pdf')
  t.equal(gotBinary.headers['content-length'], String(binary.length))
  const disposition = String(gotBinary.headers['content-disposition'])
  t.match(disposition, /^attachment;/, 'a non-ASCII name: still an attachment')
  t.match(disposition, `filename*=UTF-8''${encodeURIComponent('отчёт 1.pdf')}`, 'its name in RFC 5987 filename* encoding')
  t.match(disposition, /filename="[\x20-\x7e]*"/, 'with an ASCII-only fallback filename')
  t.equal(gotBinary.headers.etag, `"${sha256(binary)}"`)

  const empty = await upload(app, alice.token, Buffer.alloc(0), { name: 'empty' })
  t.equal(empty.status, 200, 'an empty upload is accepted')
  t.match(empty.body, { size: 0, sha256: sha256('') }, 'an empty file has size 0 and the empty sha256')
  const gotEmpty = await download(app, alice.token, empty.body.file_id)
  t.equal(gotEmpty.status, 200, 'an empty file downloads')
  t.equal(gotEmpty.raw.length, 0, 'with no bytes')
  t.equal(gotEmpty.headers['content-length'], '0')

  const unnamed = await upload(app, alice.token, 'x')
  t.equal(unnamed.body.name, 'file', 'without ?name the file is called `file`')

  t.equal((await download(app, alice.token, 999999)).status, 404, 'an unknown file id is 404')
  t.equal((await download(app, undefined, up.body.file_id)).status, 401, 'a download without a token is 401')
})

// ---------------------------------------------------------------------------------------
// 2. Permissions

t.test('direct messages: a friend downloads only once a message carries the file; strangers never', async (t) => {
  const { app } = await buildWithDir(t)
  const alice = await signUp(app)
  const bob = await signUp(app)
  const carol = await signUp(app)
  await befriend(app, alice, bob)
  await befriend(app, bob, carol)
  const bobCursor = await drain(app, bob)

  const content = randomBytes(4096)
  const file = await uploaded(app, alice, content, 'photo.jpg', 'image/jpeg')
  const meta = { file_id: file.file_id, name: 'photo.jpg', size: 4096, content_type: 'image/jpeg', sha256: sha256(content) }
  t.strictSame(file, meta)

  const before = await download(app, bob.token, file.file_id)
  t.equal(before.status, 404, 'a friend cannot download an upload no message carries')
  t.equal(before.body?.error, 'not_found', 'the same not_found as an unknown file')
  t.equal((await download(app, carol.token, file.file_id)).status, 404, 'nor can a stranger')

  // Attaching someone else's upload: 404, nothing stored.
  const carolFile = await uploaded(app, carol, 'carol only', 'c.txt', 'text/plain')
  const stolen = await call(app, 'send_msg', { to_uid: alice.uid, msg: 'not mine', file_id: file.file_id }, bob.token)
  t.equal(stolen.status, 404, 'attaching an upload of somebody else is 404')
  t.equal(stolen.body.error, 'not_found')
  const stolen2 = await call(app, 'send_msg', { to_uid: carol.uid, msg: 'not mine either', file_id: carolFile.file_id }, bob.token)
  t.equal(stolen2.status, 404, 'also when the owner is the recipient')
  t.equal((await app.db('messages').where({ sender_id: bob.uid }).count<{ count: number }[]>('* as count'))[0].count, 0, 'no message was stored')
  t.equal((await poll(app, alice, await drain(app, alice))).msg_array.length, 0)
  t.equal((await download(app, bob.token, file.file_id)).status, 404, 'and the failed attach gave bob nothing')
  t.equal((await app.db('files').where({ id: file.file_id }).first()).attached_at, null, 'the upload is still unattached')

  const sent = await ok('send_msg', call(app, 'send_msg', { to_uid: bob.uid, msg: 'the photo', file_id: file.file_id }, alice.token))

  const after = await download(app, bob.token, file.file_id)
  t.equal(after.status, 200, 'the recipient downloads it once a message carries it')
  t.ok(after.raw.equals(content), 'the exact bytes')
  t.equal(after.headers['content-type'], 'image/jpeg')
  t.equal((await download(app, carol.token, file.file_id)).status, 404, 'a third user still cannot (even a friend of the recipient)')
  t.equal((await download(app, alice.token, file.file_id)).status, 200, 'the uploader still can')

  const polled = await poll(app, bob, bobCursor)
  const item = polled.msg_array.find((m) => m.msg_id === sent.msg_id)
  t.ok(item, 'update_data delivers the message')
  t.match(item, { sender_uid: alice.uid, text: 'the photo', kind: 'file' }, 'as kind file with the caption as text')
  t.strictSame(item?.file, meta, 'carrying the file description')

  for (const [who, peer] of [
    [alice, bob],
    [bob, alice],
  ] as const) {
    const history = await ok('get_history', call(app, 'get_history', { to_uid: peer.uid }, who.token))
    const message = history.messages.find((m: Json) => m.msg_id === sent.msg_id)
    t.match(message, { kind: 'file', text: 'the photo' }, `get_history of uid ${who.uid}: kind file`)
    t.strictSame(message?.file, meta, `get_history of uid ${who.uid}: the file description`)
  }

  // Deleting the message withdraws the recipient's access; the uploader keeps it.
  await ok('delete_msg', call(app, 'delete_msg', { msg_id: sent.msg_id }, alice.token))
  const gone = await download(app, bob.token, file.file_id)
  t.equal(gone.status, 404, 'after the message is deleted the recipient cannot download')
  t.equal(gone.body?.error, 'not_found')
  t.equal((await download(app, alice.token, file.file_id)).status, 200, 'the uploader still can')

  // The same upload may be attached again.
  await ok('send_msg', call(app, 'send_msg', { to_uid: bob.uid, msg: 'again', file_id: file.file_id }, alice.token))
  t.equal((await download(app, bob.token, file.file_id)).status, 200, 're-attached in a new message, the recipient downloads again')
})

t.test('rooms: members download a file carried by a room message; outsiders, leavers and the kicked do not', async (t) => {
  const { app } = await buildWithDir(t)
  const owner = await signUp(app)
  const member = await signUp(app)
  const leaver = await signUp(app)
  const kicked = await signUp(app)
  const outsider = await signUp(app)
  const room = (await ok('create_room', call(app, 'create_room', { name: 'files room', type: 'public' }, owner.token))).room.room_id as number
  for (const s of [member, leaver, kicked]) await ok('join_room', call(app, 'join_room', { room_id: room }, s.token))
  const memberCursor = await drain(app, member)

  const content = randomBytes(10_000)
  const file = await uploaded(app, member, content, 'slides.pdf', 'application/pdf')
  for (const s of [owner, leaver, kicked, outsider]) t.equal((await download(app, s.token, file.file_id)).status, 404, `uid ${s.uid}: nothing before the file is attached`)

  const sent = await ok('send_msg', call(app, 'send_msg', { room_id: room, msg: 'deck', file_id: file.file_id }, member.token))
  for (const s of [owner, member, leaver, kicked]) {
    const got = await download(app, s.token, file.file_id)
    t.equal(got.status, 200, `member uid ${s.uid} downloads the room's file`)
    t.ok(got.raw.equals(content), `member uid ${s.uid} gets the exact bytes`)
  }
  const denied = await download(app, outsider.token, file.file_id)
  t.equal(denied.status, 404, 'a non-member cannot')
  t.equal(denied.body?.error, 'not_found')

  const ownerHistory = await ok('get_history', call(app, 'get_history', { room_id: room }, owner.token))
  t.match(ownerHistory.messages.find((m: Json) => m.msg_id === sent.msg_id), { kind: 'file', room_id: room, file: { file_id: file.file_id, name: 'slides.pdf', size: 10_000, content_type: 'application/pdf', sha256: sha256(content) } }, 'room history carries the file')
  t.equal((await poll(app, member, memberCursor)).msg_array.length, 0, 'the sender gets no copy of its own room message')

  const banned = await signUp(app)
  await ok('join_room', call(app, 'join_room', { room_id: room }, banned.token))
  t.equal((await download(app, banned.token, file.file_id)).status, 200, 'a member who joined after the message downloads it too')
  await ok('ban_member', call(app, 'ban_member', { room_id: room, uid: banned.uid }, owner.token))
  t.equal((await download(app, banned.token, file.file_id)).status, 404, 'a banned member can no longer download')

  await ok('leave_room', call(app, 'leave_room', { room_id: room }, leaver.token))
  t.equal((await download(app, leaver.token, file.file_id)).status, 404, 'a member who left can no longer download')
  await ok('kick_member', call(app, 'kick_member', { room_id: room, uid: kicked.uid }, owner.token))
  t.equal((await download(app, kicked.token, file.file_id)).status, 404, 'a kicked member can no longer download')
  t.equal((await download(app, owner.token, file.file_id)).status, 200, 'a remaining member still can')

  // An outsider cannot attach into the room, even their own upload.
  const outsiderFile = await uploaded(app, outsider, 'intruder')
  const intruding = await call(app, 'send_msg', { room_id: room, msg: 'hi', file_id: outsiderFile.file_id }, outsider.token)
  t.not(intruding.status, 200, 'a non-member cannot post a file into the room')
  t.equal((await app.db('files').where({ id: outsiderFile.file_id }).first()).attached_at, null, 'and their upload stays unattached')

  // A moderator (the owner) deletes the message: members lose access, the uploader keeps it.
  await ok('delete_msg', call(app, 'delete_msg', { msg_id: sent.msg_id }, owner.token))
  t.equal((await download(app, owner.token, file.file_id)).status, 404, 'after deletion a member cannot download')
  t.equal((await download(app, member.token, file.file_id)).status, 200, 'the uploader still can')
})

// ---------------------------------------------------------------------------------------
// 3. Ranges

t.test('ranges: single ranges get 206 with exact bytes; outside the file 416; malformed and multi ranges stay correct', async (t) => {
  const { app } = await buildWithDir(t)
  const alice = await signUp(app)
  const content = Buffer.from('0123456789abcdefghij') // 20 bytes
  const file = await uploaded(app, alice, content, 'digits.txt', 'text/plain')

  for (const [range, start, end] of [
    ['bytes=0-4', 0, 4],
    ['bytes=5-', 5, 19],
    ['bytes=-3', 17, 19],
    ['bytes=10-10', 10, 10],
    ['bytes=15-1000', 15, 19],
  ] as const) {
    const got = await download(app, alice.token, file.file_id, { range })
    t.equal(got.status, 206, `${range}: 206`)
    t.equal(got.headers['content-range'], `bytes ${start}-${end}/20`, `${range}: Content-Range`)
    t.equal(got.headers['content-length'], String(end - start + 1), `${range}: Content-Length of the part`)
    t.equal(got.raw.toString(), content.subarray(start, end + 1).toString(), `${range}: exactly those bytes`)
    t.equal(got.headers['content-type'], 'text/plain', `${range}: the file's Content-Type`)
  }

  for (const range of ['bytes=1000-', 'bytes=20-25']) {
    const beyond = await download(app, alice.token, file.file_id, { range })
    t.equal(beyond.status, 416, `${range}: 416 beyond the file`)
    t.equal(beyond.headers['content-range'], 'bytes */20', `${range}: Content-Range names the size`)
    t.equal(beyond.body?.error, 'range_not_satisfiable', `${range}: JSON error range_not_satisfiable`)
  }

  for (const range of ['bytes=abc', 'lines=0-4', 'bytes=0-4;x', 'nonsense', '']) {
    const malformed = await download(app, alice.token, file.file_id, { range })
    t.equal(malformed.status, 200, `malformed "${range}": the whole file`)
    t.ok(malformed.raw.equals(content), `malformed "${range}": every byte`)
    t.equal(malformed.headers['content-length'], '20')
    t.notOk(malformed.headers['content-range'], `malformed "${range}": no Content-Range`)
  }

  // A syntactically invalid range (last < first): RFC 9110 §14.2 lets the server ignore it
  // (200, whole file) or reject it (416); either way, with correct bytes and headers.
  const reversed = await download(app, alice.token, file.file_id, { range: 'bytes=5-2' })
  t.ok(reversed.status === 200 || reversed.status === 416, `"bytes=5-2": 200 or 416 (got ${reversed.status})`)
  if (reversed.status === 200) t.ok(reversed.raw.equals(content), '"bytes=5-2" ignored: the whole file')
  else t.equal(reversed.headers['content-range'], 'bytes */20', '"bytes=5-2" refused: Content-Range names the size')

  const multi = await download(app, alice.token, file.file_id, { range: 'bytes=0-1,3-4' })
  t.ok(multi.status === 200 || multi.status === 206, `multi-range: 200 or 206 (got ${multi.status})`)
  if (multi.status === 200) {
    t.ok(multi.raw.equals(content), 'multi-range answered 200: the whole file')
    t.equal(multi.headers['content-length'], '20')
  } else {
    const claimed = /^bytes (\d+)-(\d+)\/20$/.exec(String(multi.headers['content-range']))
    t.ok(claimed, 'multi-range answered 206: a Content-Range')
    if (claimed) t.equal(multi.raw.toString(), content.subarray(Number(claimed[1]), Number(claimed[2]) + 1).toString(), 'the claimed bytes')
  }

  const overlapping = await download(app, alice.token, file.file_id, { range: 'bytes=0-4,2-6' })
  t.equal(overlapping.status, 206, 'overlapping ranges combine into one: 206')
  t.equal(overlapping.headers['content-range'], 'bytes 0-6/20')
  t.equal(overlapping.raw.toString(), '0123456')
})

// ---------------------------------------------------------------------------------------
// 4. The size cap

t.test('cap: a declared Content-Length above MAX_FILE_BYTES is 413 at once, before any byte is read', async (t) => {
  const { app, filesDir } = await buildWithDir(t, { maxFileBytes: MiB })
  const alice = await signUp(app)

  const atCap = await upload(app, alice.token, Buffer.alloc(MiB, 1), { name: 'exactly.bin' })
  t.equal(atCap.status, 200, 'exactly MAX_FILE_BYTES is accepted')
  t.equal(atCap.body.size, MiB)

  const over = await upload(app, alice.token, Buffer.alloc(MiB + 1, 1), { name: 'over.bin' })
  t.equal(over.status, 413, 'one byte over: 413')
  t.equal(over.body.error, 'payload_too_large')
  t.equal((await fileRows(app, alice.uid)).length, 1, 'no row for the refused upload')

  // Over a real socket: only the headers are sent, announcing 3 MiB; the answer comes at once.
  const port = await listen(app)
  const request = http.request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/upload_file?name=big.bin',
    headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/octet-stream', 'content-length': String(3 * MiB) },
    agent: false,
  })
  const reply = new Promise<StreamedReply>((resolve, reject) => {
    request.on('error', reject)
    request.on('response', (response) => readReply(response).then(resolve, reject))
  })
  request.flushHeaders()
  let answered: StreamedReply | undefined
  reply.then((value) => (answered = value)).catch(() => {})
  // The body never comes: an answer that waited for it would never come either.
  await eventually(() => answered, { what: 'the answer to the headers alone', timeoutMs: 3000 }).catch(() => {})
  request.destroy()
  t.ok(answered, 'answered without waiting for the body')
  t.equal(answered?.status, 413, 'a declared size over the cap: 413')
  t.match(answered?.body, { error: 'payload_too_large' }, 'as JSON payload_too_large')
  t.strictSame((await filesUnder(filesDir)).filter((f) => f.startsWith('incoming')), [], 'nothing in files/incoming')
  t.equal((await fileRows(app, alice.uid)).length, 1, 'still only the accepted upload')
})

t.test('cap: a chunked upload passing MAX_FILE_BYTES mid-stream over a real socket is 413 JSON and leaves nothing', async (t) => {
  const { app, filesDir } = await buildWithDir(t, { maxFileBytes: MiB })
  const alice = await signUp(app)
  const port = await listen(app)

  // Up to 32 MiB in 64 KiB chunks; the server should answer after a little over 1 MiB (the
  // client may get a few MiB more into the kernel's socket buffers before the answer arrives).
  const { request, reply, sent } = streamUpload(port, alice.token, 'huge.bin', generatedChunks(512))
  const outcome = await reply.then(
    (value) => ({ value, error: undefined }),
    (error: Error) => ({ value: undefined, error }),
  )
  const written = await sent
  request.destroy()

  t.notOk(outcome.error, `the client gets an answer, not a broken connection${outcome.error ? ` (got ${outcome.error.message})` : ''}`)
  t.equal(outcome.value?.status, 413, 'streamed past the cap: 413')
  t.match(outcome.value?.body, { error: 'payload_too_large' }, 'as JSON payload_too_large')
  t.ok(written < 32 * MiB, `the server stopped the upload early (client wrote ${mib(written)} of 32 MiB)`)

  await sleep(100)
  t.strictSame(await filesUnder(filesDir), [], 'nothing left under files/ (no stored file, no .part in incoming/)')
  t.strictSame(await fileRows(app), [], 'no row in the files table')

  // The server still takes uploads.
  const small = await upload(app, alice.token, 'still here', { name: 'after.txt' })
  t.equal(small.status, 200, 'a later small upload succeeds')
})

// ---------------------------------------------------------------------------------------
// 5. Large upload and download with flat memory

t.test('a ~150 MiB upload and download stream over a real socket with bounded memory and exact sha256', async (t) => {
  const { app, filesDir } = await buildWithDir(t, { maxFileBytes: 200 * MiB })
  const alice = await signUp(app)
  const port = await listen(app)
  const CHUNKS = 2400 // × 64 KiB = 150 MiB
  const total = CHUNKS * 64 * 1024
  const limit = 60 * MiB

  const hash = createHash('sha256')
  const started = Date.now()
  const upMemory = memorySampler()
  const { reply, sent } = streamUpload(port, alice.token, 'big.bin', generatedChunks(CHUNKS, 64 * 1024, (chunk) => hash.update(chunk)))
  const [up, written] = await Promise.all([reply, sent])
  const upStats = upMemory.stop()
  const expected = hash.digest('hex')
  const upSeconds = (Date.now() - started) / 1000

  t.equal(written, total, 'the client wrote the whole 150 MiB')
  t.equal(up.status, 200, 'the upload is accepted')
  t.match(up.body, { size: total, sha256: expected, name: 'big.bin' }, 'the reply\'s size and sha256 match what was sent')
  t.comment(`upload: ${mib(total)} in ${upSeconds.toFixed(1)} s; rss ${mib(upStats.baseRss)} → peak ${mib(upStats.peakRss)} (+${mib(upStats.rssGrowth)}), arrayBuffers +${mib(upStats.arrayBuffersGrowth)}`)
  t.ok(upStats.rssGrowth < limit, `upload: rss grew ${mib(upStats.rssGrowth)}, under ${mib(limit)} (the file is ${mib(total)})`)
  t.ok(upStats.arrayBuffersGrowth < limit, `upload: arrayBuffers grew ${mib(upStats.arrayBuffersGrowth)}, under ${mib(limit)}`)
  const stored = (await filesUnder(filesDir)).filter((f) => !f.startsWith('incoming'))
  t.equal(stored.length, 1, 'one file stored')
  t.equal((await stat(path.join(filesDir, stored[0]))).size, total, 'of the full size on disk')

  const fileId = (up.body as Json).file_id as number
  const downStarted = Date.now()
  const downMemory = memorySampler()
  const downloaded = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; bytes: number; sha256: string }>((resolve, reject) => {
    const request = http.get({ host: '127.0.0.1', port, path: `/files/${fileId}`, headers: { authorization: `Bearer ${alice.token}` }, agent: false }, (response) => {
      const digest = createHash('sha256')
      let bytes = 0
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length
        digest.update(chunk)
      })
      response.on('error', reject)
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, bytes, sha256: digest.digest('hex') }))
    })
    request.on('error', reject)
  })
  const downStats = downMemory.stop()
  t.comment(`download: ${mib(downloaded.bytes)} in ${((Date.now() - downStarted) / 1000).toFixed(1)} s; rss ${mib(downStats.baseRss)} → peak ${mib(downStats.peakRss)} (+${mib(downStats.rssGrowth)}), arrayBuffers +${mib(downStats.arrayBuffersGrowth)}`)
  t.equal(downloaded.status, 200, 'the download is 200')
  t.equal(downloaded.headers['content-length'], String(total), 'announcing the full length')
  t.equal(downloaded.bytes, total, 'every byte arrives')
  t.equal(downloaded.sha256, expected, 'the downloaded sha256 matches the uploaded one')
  t.ok(downStats.rssGrowth < limit, `download: rss grew ${mib(downStats.rssGrowth)}, under ${mib(limit)}`)
  t.ok(downStats.arrayBuffersGrowth < limit, `download: arrayBuffers grew ${mib(downStats.arrayBuffersGrowth)}, under ${mib(limit)}`)
})

// ---------------------------------------------------------------------------------------
// 6. Interrupted upload

t.test('an upload interrupted mid-body leaves no row and no partial file; the server keeps answering', async (t) => {
  const { app, filesDir } = await buildWithDir(t)
  const alice = await signUp(app)
  const port = await listen(app)
  const incoming = path.join(filesDir, 'incoming')

  // Writes 512 KiB of a body that never ends, then cuts the connection.
  const request = http.request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/upload_file?name=cut.bin',
    headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
    agent: false,
  })
  const clientError = new Promise<Error | undefined>((resolve) => {
    request.on('error', resolve)
    request.on('close', () => resolve(undefined))
  })
  for (const chunk of generatedChunks(8)) request.write(chunk)

  // The server is writing it: a .part file appears in incoming/.
  let partial: string[] = []
  const parts = async () => (partial = (await readdir(incoming).catch(() => [] as string[])).filter((name) => name.endsWith('.part'))).length > 0
  await eventually(parts, { what: 'a .part file in incoming/', everyMs: 20 }).catch(() => {})
  t.equal(partial.length, 1, 'while the body streams, a .part file is being written in incoming/')

  request.destroy()
  await clientError

  let left: string[] = ['?']
  await eventually(async () => (left = await filesUnder(filesDir)).length === 0, { what: 'files/ to be empty', everyMs: 20, timeoutMs: 1000 }).catch(() => {})
  t.strictSame(left, [], 'nothing remains under files/ (incoming/ is empty)')
  t.strictSame(await fileRows(app, alice.uid), [], 'no files row for the user')

  const after = await new Promise<StreamedReply>((resolve, reject) => {
    const body = 'after the cut'
    const next = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/upload_file?name=next.txt',
        headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'text/plain', 'content-length': String(body.length) },
        agent: false,
      },
      (response) => readReply(response).then(resolve, reject),
    )
    next.on('error', reject)
    next.end(body)
  })
  t.equal(after.status, 200, 'the server still answers over a new connection')
  t.match(after.body, { size: 13, sha256: sha256('after the cut') }, 'and stores the next upload')
  t.equal((await fileRows(app, alice.uid)).length, 1, 'only that upload has a row')
})

// ---------------------------------------------------------------------------------------
// 7. Missing or damaged content

t.test('content missing or truncated on disk: 410 file_unavailable, and the server keeps running', async (t) => {
  const { app, filesDir } = await buildWithDir(t)
  const alice = await signUp(app)

  const pathOf = async (fileId: number) => {
    const row = await app.db('files').where({ id: fileId }).first()
    return path.join(filesDir, row.storage_key.slice(0, 2), row.storage_key)
  }

  const missing = await uploaded(app, alice, randomBytes(2048), 'missing.bin')
  const missingPath = await pathOf(missing.file_id)
  t.equal((await stat(missingPath)).size, 2048, 'the upload lies at <dataDir>/files/<2 chars>/<key>')
  await unlink(missingPath)
  const gone = await download(app, alice.token, missing.file_id)
  t.equal(gone.status, 410, 'a file deleted from disk: 410')
  t.equal(gone.body?.error, 'file_unavailable', 'JSON error file_unavailable')
  const goneRange = await download(app, alice.token, missing.file_id, { range: 'bytes=0-10' })
  t.equal(goneRange.status, 410, 'also for a range request')

  const damaged = await uploaded(app, alice, randomBytes(4096), 'damaged.bin')
  await truncate(await pathOf(damaged.file_id), 1000)
  const short = await download(app, alice.token, damaged.file_id)
  t.equal(short.status, 410, 'a truncated file: 410 rather than a short body under a longer Content-Length')
  t.equal(short.body?.error, 'file_unavailable')

  const healthy = randomBytes(1024)
  const fine = await uploaded(app, alice, healthy, 'fine.bin')
  const got = await download(app, alice.token, fine.file_id)
  t.equal(got.status, 200, 'the server keeps running: another file downloads')
  t.ok(got.raw.equals(healthy))
  t.equal((await call(app, 'update_data', { cursor: 0, timeout: 0 }, alice.token)).status, 200, 'and commands still work')
})

// ---------------------------------------------------------------------------------------
// 8. Clean-up with controlled time

t.test('clean-up: past UPLOAD_TTL_SECONDS unattached uploads lose row and bytes; attached and recent ones stay', async (t) => {
  const clock = new ManualClock()
  const { app, filesDir } = await buildWithDir(t, {}, clock)
  const alice = await signUp(app)
  const bob = await signUp(app)
  await befriend(app, alice, bob)

  const orphanBytes = randomBytes(1500)
  const keptBytes = randomBytes(2500)
  const orphan = await uploaded(app, alice, orphanBytes, 'orphan.bin')
  const kept = await uploaded(app, alice, keptBytes, 'kept.bin')
  await ok('send_msg', call(app, 'send_msg', { to_uid: bob.uid, msg: 'keep this', file_id: kept.file_id }, alice.token))
  const orphanKey = (await app.db('files').where({ id: orphan.file_id }).first()).storage_key as string
  const orphanPath = path.join(filesDir, orphanKey.slice(0, 2), orphanKey)

  t.equal(await app.services.files.cleanUp(), 0, 'nothing is removed before the TTL passed')
  clock.advance(app.config.uploadTtlSeconds * 1000 - 60_000)
  t.equal(await app.services.files.cleanUp(), 0, 'nor a minute before it')
  t.equal((await download(app, alice.token, orphan.file_id)).status, 200, 'the unattached upload is still there')

  // A recent upload (made now, one minute before the first two expire) must survive.
  const recent = await uploaded(app, alice, 'recent', 'recent.txt')

  // Crash leftovers in incoming/: an old one goes, a fresh one (an upload in progress) stays.
  const incoming = path.join(filesDir, 'incoming')
  const stale = path.join(incoming, `${'a'.repeat(32)}.part`)
  const fresh = path.join(incoming, `${'b'.repeat(32)}.part`)
  await writeFile(stale, 'old leftover')
  await writeFile(fresh, 'in progress')
  const twoHoursAgo = new Date(Date.now() - 2 * 3600_000)
  await utimes(stale, twoHoursAgo, twoHoursAgo)

  clock.advance(61_000)
  t.equal(await app.services.files.cleanUp(), 1, 'past the TTL exactly one upload is removed')

  t.notOk(await app.db('files').where({ id: orphan.file_id }).first(), 'the unattached upload\'s row is gone')
  await t.rejects(stat(orphanPath), { code: 'ENOENT' }, 'and its bytes are gone from disk')
  const orphanGone = await download(app, alice.token, orphan.file_id)
  t.equal(orphanGone.status, 404, 'downloading it is 404 even for the uploader')
  t.equal(orphanGone.body?.error, 'not_found')

  for (const s of [alice, bob]) {
    const got = await download(app, s.token, kept.file_id)
    t.equal(got.status, 200, `the attached upload stays (uid ${s.uid})`)
    t.ok(got.raw.equals(keptBytes), `with its bytes (uid ${s.uid})`)
  }
  t.equal((await download(app, alice.token, recent.file_id)).status, 200, 'an unattached upload younger than the TTL stays')

  const leftovers = await readdir(incoming)
  t.notOk(leftovers.includes(path.basename(stale)), 'a stale .part leftover is removed')
  t.ok(leftovers.includes(path.basename(fresh)), 'a fresh .part (an upload in progress) is kept')

  const stored = (await filesUnder(filesDir)).filter((f) => !f.startsWith('incoming'))
  t.equal(stored.length, 2, 'two stored files remain on disk: the attached one and the recent one')
})

// ---------------------------------------------------------------------------------------
// 9. Refusals and defaults

t.test('upload: no auth 401, a bad name 400, no Content-Type recorded as application/octet-stream', async (t) => {
  const { app, filesDir } = await buildWithDir(t)
  const alice = await signUp(app)

  const anonymous = await upload(app, undefined, 'x', { name: 'a.txt' })
  t.equal(anonymous.status, 401, 'no token: 401')
  t.equal(anonymous.body.error, 'unauthorized')
  const forged = await upload(app, 'not-a-token', 'x', { name: 'a.txt' })
  t.equal(forged.status, 401, 'a bad token: 401')

  for (const name of ['a/b.txt', '../etc/passwd', 'back\\slash', 'tab\there', '']) {
    const bad = await upload(app, alice.token, 'x', { name })
    t.equal(bad.status, 400, `name ${JSON.stringify(name)}: 400`)
    t.equal(bad.body.error, 'bad_request', `name ${JSON.stringify(name)}: bad_request`)
  }
  const tooLong = await upload(app, alice.token, 'x', { name: 'n'.repeat(256) })
  t.equal(tooLong.status, 400, 'a name over 255 characters: 400')

  const untyped = await upload(app, alice.token, 'raw bytes', { name: 'untyped', contentType: null })
  t.equal(untyped.status, 200, 'an upload without Content-Type is accepted')
  t.equal(untyped.body.content_type, 'application/octet-stream', 'recorded as application/octet-stream')
  const got = await download(app, alice.token, untyped.body.file_id)
  t.equal(got.headers['content-type'], 'application/octet-stream', 'and served as such')
  t.equal(got.raw.toString(), 'raw bytes')

  const longType = `application/${'x'.repeat(300)}`
  const long = await upload(app, alice.token, 'x', { name: 'long-type', contentType: longType })
  t.equal(long.status, 200, 'a Content-Type over 255 characters is accepted')
  t.equal(long.body.content_type, 'application/octet-stream', 'and recorded as application/octet-stream')

  t.equal((await fileRows(app, alice.uid)).length, 2, 'only the two accepted uploads have rows')
  t.equal((await filesUnder(filesDir)).filter((f) => !f.startsWith('incoming')).length, 2, 'and only they are on disk')
})

// The route documents "any Content-Type, recorded as its type" and falls back to
// application/octet-stream for one it cannot use (routes/files.ts, CONTENT_TYPE); a header
// Fastify cannot parse as a media type must get that fallback too, not a 415 telling the
// client to send JSON.
t.test('upload: a malformed Content-Type is recorded as application/octet-stream, not refused', async (t) => {
  const { app } = await buildWithDir(t)
  const alice = await signUp(app)
  for (const contentType of ['not a type', 'text', 'image/']) {
    const reply = await upload(app, alice.token, 'bytes', { name: 'odd-type', contentType })
    t.equal(reply.status, 200, `Content-Type ${JSON.stringify(contentType)}: the upload is accepted (got ${reply.status} ${JSON.stringify(reply.body)})`)
    t.equal(reply.body.content_type, 'application/octet-stream', `Content-Type ${JSON.stringify(contentType)}: recorded as application/octet-stream`)
  }
})
