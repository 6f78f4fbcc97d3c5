// The service worker: shows a notification for each push (a direct message, a mention or a
// missed call, for someone not polling), and opens that conversation when it is clicked.
// The payload is the document's PushPayload (text only when the subscription opted in).
/// <reference lib="webworker" />
import type { PushPayload } from '../sdk/src/index.js'
declare const self: ServiceWorkerGlobalScope


function describe(push: PushPayload): { title: string; body: string; conversation: string } {
  const where = push.room_id ? `r${push.room_id}` : `u${push.from_uid}`
  // A call reaches the server's push only when nobody answered it in time: it was missed.
  if (push.type === 'call') return { title: `Missed call from ${push.from_login}`, body: 'Open Messenger to call back.', conversation: where }
  if (push.type === 'mention') return { title: `${push.from_login} mentioned you in ${push.room_name ?? 'a room'}`, body: push.text ?? 'New mention', conversation: where }
  return { title: push.from_login, body: push.text ?? 'New message', conversation: where }
}

self.addEventListener('install', () => void self.skipWaiting())
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()))

self.addEventListener('push', (event) => {
  let push: PushPayload
  try {
    push = event.data?.json() as PushPayload
  } catch {
    return
  }
  if (!push || typeof push.from_login !== 'string') return
  const { title, body, conversation } = describe(push)
  event.waitUntil(self.registration.showNotification(title, { body, tag: conversation, data: { conversation } }))
})

self.addEventListener('notificationclick', (event) => {
  event.notification.close()
  const url = `/#${(event.notification.data as { conversation?: string } | null)?.conversation ?? ''}`
  event.waitUntil(
    self.clients.matchAll({ type: 'window' }).then((windows) => {
      const open = windows[0]
      return open ? open.navigate(url).then((client) => client?.focus()) : self.clients.openWindow(url)
    }),
  )
})
