// VAPID (RFC 8292): the key pair this server signs its pushes with. Push services tie a
// browser's subscription to the public key it was made with, so every process of the
// server must use the same pair, and keep it: the launcher keeps one in DATA_DIR
// (src/bootstrap.ts), or VAPID_PUBLIC_KEY / VAPID_PRIVATE_KEY give it.
import { createECDH } from 'node:crypto'
import webpush from 'web-push'

/** Base64url: the public key an uncompressed P-256 point (65 bytes), the private key 32 bytes. */
export interface VapidKeys {
  publicKey: string
  privateKey: string
}

export const generateVapidKeys = (): VapidKeys => webpush.generateVAPIDKeys()

let processKeys: VapidKeys | undefined

/** A pair of this process's own, made once: for tools and tests, which keep no DATA_DIR. */
export function processVapidKeys(): VapidKeys {
  processKeys ??= generateVapidKeys()
  return processKeys
}

/** Whether `publicKey` is the public key of `privateKey`. */
export function isVapidPair({ publicKey, privateKey }: VapidKeys): boolean {
  try {
    const ecdh = createECDH('prime256v1')
    ecdh.setPrivateKey(Buffer.from(privateKey, 'base64url'))
    return ecdh.getPublicKey('base64url') === publicKey
  } catch {
    return false // not a private key of the curve
  }
}
