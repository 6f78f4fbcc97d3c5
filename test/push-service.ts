// A push service of our own for the push tests: a real HTTP server on 127.0.0.1 that
// records every POST and answers as each endpoint's script says; browsers' subscriptions
// whose keys the test made (a P-256 key pair and an auth secret), and the browser's side
// of RFC 8291: decrypting what was pushed, with node:crypto alone (not the library that
// encrypted it). Plus the check of the VAPID Authorization header (RFC 8292).
import { createDecipheriv, createECDH, createPublicKey, hkdfSync, randomBytes, verify, type ECDH } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'

export interface ReceivedPush {
  /** The endpoint's name (its path without the slash). */
  name: string
  headers: IncomingHttpHeaders
  body: Buffer
}

/** What an endpoint answers, attempt after attempt: a status, or `hang` (no answer until released). */
export type Answer = number | 'hang'

export interface FakePushService {
  url: string
  received: ReceivedPush[]
  /** What the POSTs to this endpoint get, in turn; the last answer repeats; 201 unless told. */
  script(name: string, answers: Answer[]): void
  /** Answers every hanging POST with 201. */
  release(): void
  /** The POSTs this endpoint got. */
  to(name: string): ReceivedPush[]
}

export async function fakePushService(t: Test): Promise<FakePushService> {
  const received: ReceivedPush[] = []
  const scripts = new Map<string, Answer[]>()
  const hanging: ServerResponse[] = []
  const server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      const name = (request.url ?? '/').slice(1)
      received.push({ name, headers: request.headers, body: Buffer.concat(chunks) })
      const answers = scripts.get(name) ?? [201]
      const answer = answers.length > 1 ? answers.shift()! : answers[0]
      if (answer === 'hang') hanging.push(response)
      else response.writeHead(answer).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const response of hanging) response.destroy()
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    script: (name, answers) => void scripts.set(name, [...answers]),
    release: () => hanging.splice(0).forEach((response) => response.writeHead(201).end()),
    to: (name) => received.filter((push) => push.name === name),
  }
}

/** A browser's subscription: its keys stay with the test, which decrypts what it is pushed. */
export interface Browser {
  name: string
  ecdh: ECDH
  auth: Buffer
  /** PushSubscription.toJSON(), as push_subscribe takes it. */
  subscription: { endpoint: string; keys: { p256dh: string; auth: string } }
}

export function browser(service: FakePushService, name: string): Browser {
  const ecdh = createECDH('prime256v1')
  ecdh.generateKeys()
  const auth = randomBytes(16)
  return {
    name,
    ecdh,
    auth,
    subscription: { endpoint: `${service.url}/${name}`, keys: { p256dh: ecdh.getPublicKey('base64url'), auth: auth.toString('base64url') } },
  }
}

/** The pushed JSON: RFC 8291 (aes128gcm, RFC 8188, one record) read with the browser's private key and auth secret. */
export function decrypt(push: ReceivedPush, { ecdh, auth }: Browser): unknown {
  const { body } = push
  const salt = body.subarray(0, 16)
  const recordSize = body.readUInt32BE(16)
  const keyIdLength = body[20]
  const serverKey = body.subarray(21, 21 + keyIdLength)
  const record = body.subarray(21 + keyIdLength)
  if (record.length > recordSize) throw new Error('more than one record')
  const info = (text: string) => Buffer.from(`${text}\0`, 'latin1')
  const keyInfo = Buffer.concat([info('WebPush: info'), ecdh.getPublicKey(), serverKey])
  const ikm = Buffer.from(hkdfSync('sha256', ecdh.computeSecret(serverKey), auth, keyInfo, 32))
  const key = Buffer.from(hkdfSync('sha256', ikm, salt, info('Content-Encoding: aes128gcm'), 16))
  const nonce = Buffer.from(hkdfSync('sha256', ikm, salt, info('Content-Encoding: nonce'), 12))
  const decipher = createDecipheriv('aes-128-gcm', key, nonce)
  decipher.setAuthTag(record.subarray(-16))
  const padded = Buffer.concat([decipher.update(record.subarray(0, -16)), decipher.final()])
  let end = padded.length - 1
  while (end > 0 && padded[end] === 0) end--
  if (padded[end] !== 2) throw new Error('not the last record: no 0x02 delimiter')
  return JSON.parse(padded.subarray(0, end).toString('utf8'))
}

/**
 * The claims of the push's VAPID header (`vapid t=<JWT>, k=<public key>`), once its ES256
 * signature checks out against `publicKey`; throws otherwise.
 */
export function vapidClaims(push: ReceivedPush, publicKey: string): { aud: string; sub: string; exp: number } {
  const match = /^vapid t=([\w-]+\.[\w-]+\.[\w-]+), k=([\w-]+)$/.exec(String(push.headers.authorization))
  if (!match) throw new Error(`not a VAPID header: ${push.headers.authorization}`)
  const [, jwt, k] = match
  if (k !== publicKey) throw new Error(`signed for ${k}, not ${publicKey}`)
  const point = Buffer.from(k, 'base64url')
  const key = createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') },
    format: 'jwk',
  })
  const [header, claims, signature] = jwt.split('.')
  if (!verify('sha256', Buffer.from(`${header}.${claims}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'))) {
    throw new Error('the VAPID signature does not verify')
  }
  return JSON.parse(Buffer.from(claims, 'base64url').toString('utf8'))
}
