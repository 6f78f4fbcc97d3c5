// Notifications while the page is closed: the service worker (/sw.js) holds a Web Push
// subscription made with the server's VAPID key, and the server pushes a direct message,
// a mention or a call when no poll of mine is live. The payload names the sender only,
// unless the subscription opted in to message text.
import type { Client } from '../../sdk/src/index.js'

export function notificationsOffered(): boolean {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window
}

/** Registers the service worker at startup, so a subscription made earlier keeps working. */
export function registerServiceWorker(): void {
  if ('serviceWorker' in navigator) void navigator.serviceWorker.register('/sw.js').catch(() => undefined)
}

/**
 * Asks for permission, subscribes and hands the subscription to the server; says how it
 * went. `includeText`: the pushes may carry the message's text (else only who wrote).
 */
export async function enableNotifications(client: Client, includeText: boolean): Promise<string> {
  if (!notificationsOffered()) return 'This browser cannot show notifications.'
  if ((await Notification.requestPermission()) !== 'granted') return 'Notifications are blocked for this site.'
  try {
    const registration = await navigator.serviceWorker.ready
    const { public_key: publicKey } = await client.get_push_key({})
    const key = base64UrlBytes(publicKey)
    let subscription = await registration.pushManager.getSubscription()
    // Made with another server key (the server's keys changed): it can no longer be pushed to.
    if (subscription && !sameBytes(subscription.options.applicationServerKey, key)) {
      await subscription.unsubscribe()
      subscription = null
    }
    subscription ??= await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key })
    const json = subscription.toJSON()
    await client.push_subscribe({ endpoint: subscription.endpoint, keys: { p256dh: json.keys?.p256dh ?? '', auth: json.keys?.auth ?? '' }, include_text: includeText })
    return 'Notifications are on.'
  } catch (error) {
    return `Notifications could not be turned on: ${error instanceof Error ? error.message : String(error)}`
  }
}

/** Ends this browser's subscription, here and on the server (at sign-out). */
export async function disableNotifications(client: Client): Promise<void> {
  if (!notificationsOffered()) return
  const registration = await navigator.serviceWorker.getRegistration()
  const subscription = await registration?.pushManager.getSubscription()
  if (!subscription) return
  await client.push_unsubscribe({ endpoint: subscription.endpoint }).catch(() => undefined)
  await subscription.unsubscribe().catch(() => undefined)
}

function sameBytes(a: ArrayBuffer | null, b: Uint8Array): boolean {
  if (!a || a.byteLength !== b.length) return false
  const bytes = new Uint8Array(a)
  return bytes.every((byte, i) => byte === b[i])
}

function base64UrlBytes(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'))
  const bytes = new Uint8Array(new ArrayBuffer(binary.length))
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}
