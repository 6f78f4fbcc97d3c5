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
    const subscription =
      (await registration.pushManager.getSubscription()) ??
      (await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: base64UrlBytes(publicKey) }))
    const json = subscription.toJSON()
    await client.push_subscribe({ endpoint: subscription.endpoint, keys: { p256dh: json.keys?.p256dh ?? '', auth: json.keys?.auth ?? '' }, include_text: includeText })
    return 'Notifications are on.'
  } catch (error) {
    return `Notifications could not be turned on: ${error instanceof Error ? error.message : String(error)}`
  }
}

function base64UrlBytes(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'))
  const bytes = new Uint8Array(new ArrayBuffer(binary.length))
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}
