// Delivery of Web Push messages (RFC 8030) to the browsers' push services, off every
// request. What it promises:
// - Bounded: at most PUSH_CONCURRENCY requests in flight and PUSH_QUEUE_LIMIT pushes waiting
//   (to be sent, or to be tried again) per process. A push beyond that is dropped and
//   counted, so a flood costs bounded memory.
// - Each attempt is encrypted for its subscription (aes128gcm, RFC 8291) and signed
//   (VAPID, RFC 8292) by the web-push library, and POSTed with PUSH_TIMEOUT_MS to answer.
// - 2xx: sent. 404 or 410: the subscription is gone, and `gone` is told (it deletes it).
//   5xx, 429, no answer in time or a network error: tried again up to PUSH_RETRIES times,
//   after PUSH_RETRY_BASE_MS and twice as long each time (on the app's clock), then
//   dropped with a warning. Any other answer (the push or the key refused: 400, 403, 413)
//   is dropped at once, with a warning.
// - Never throws nor rejects, whatever the subscription holds (an endpoint that is no URL
//   fails its push, counted, like a refused one): it runs off every request, where an
//   unhandled rejection would stop the process.
// - close() drops what waits and aborts what is in flight.
import webpush from 'web-push'
import type { Clock, ClockTimer } from './clock.js'
import type { Config } from './config.js'

export interface Push {
  subscription: { id: number; endpoint: string; p256dh: string; auth: string }
  /** The JSON the service worker is handed. */
  payload: string
  /** Replaces a push of the same topic the push service still holds for the device. */
  topic: string
  urgency: webpush.Urgency
}

type Attempt = Push & { attempts: number }

export interface PushDeliveryOptions {
  config: Pick<
    Config,
    'vapidPublicKey' | 'vapidPrivateKey' | 'vapidSubject' | 'pushTtlSeconds' | 'pushTimeoutMs' | 'pushRetries' | 'pushRetryBaseMs' | 'pushConcurrency' | 'pushQueueLimit'
  >
  clock: Clock
  log: { warn(obj: object, msg: string): void }
  /** The push service says this subscription no longer exists. */
  gone(subscription: Push['subscription']): Promise<void>
}

/** Where a push goes, for the logs: the push service, not the subscription's own URL (a capability). */
function serviceOf(endpoint: string): string {
  try {
    return new URL(endpoint).origin
  } catch {
    return 'not a URL'
  }
}

export function createPushDelivery({ config, clock, log, gone }: PushDeliveryOptions) {
  /** A warning that cannot throw: delivery runs off every request, with nobody to catch. */
  const warn = (fields: object, msg: string) => {
    try {
      log.warn(fields, msg)
    } catch {
      // nothing better to do with a log that fails
    }
  }
  const vapidDetails = { subject: config.vapidSubject, publicKey: config.vapidPublicKey, privateKey: config.vapidPrivateKey }
  const waiting: Attempt[] = []
  const retrying = new Set<ClockTimer>()
  const aborts = new Set<AbortController>()
  let running = 0
  let full = false
  let closed = false
  /** Pushes the push services accepted, failed for good, found gone (subscription removed), or dropped here (queue full). */
  const stats = { sent: 0, failed: 0, removed: 0, dropped: 0 }

  /** The push service's status, or undefined when none came (timeout, network error). */
  async function post(push: Push): Promise<number | undefined> {
    const { endpoint, p256dh, auth } = push.subscription
    const request = webpush.generateRequestDetails({ endpoint, keys: { p256dh, auth } }, push.payload, {
      vapidDetails,
      TTL: config.pushTtlSeconds,
      urgency: push.urgency,
      topic: push.topic,
      contentEncoding: 'aes128gcm',
    })
    const abort = new AbortController()
    aborts.add(abort)
    try {
      // fetch sets Content-Length from the body itself.
      const headers = Object.entries(request.headers).filter(([name]) => name.toLowerCase() !== 'content-length')
      const response = await fetch(request.endpoint, {
        method: 'POST',
        headers: headers.map(([name, value]) => [name, String(value)]),
        body: new Uint8Array(request.body),
        redirect: 'manual',
        signal: AbortSignal.any([abort.signal, AbortSignal.timeout(config.pushTimeoutMs)]),
      })
      await response.body?.cancel()
      return response.status
    } catch {
      return undefined
    } finally {
      aborts.delete(abort)
    }
  }

  async function attempt(push: Attempt): Promise<void> {
    push.attempts++
    let status: number | undefined
    try {
      status = await post(push)
    } catch (error) {
      stats.failed++ // the library refused to build it: no retry would do better
      return warn({ err: error, service: serviceOf(push.subscription.endpoint) }, 'push not sent')
    }
    if (closed) return
    if (status !== undefined && status >= 200 && status < 300) {
      stats.sent++
    } else if (status === 404 || status === 410) {
      stats.removed++
      await gone(push.subscription).catch((error) => warn({ err: error }, 'push: a gone subscription could not be removed'))
    } else if ((status === undefined || status === 429 || status >= 500) && push.attempts <= config.pushRetries) {
      const timer = clock.setTimeout(() => {
        retrying.delete(timer)
        waiting.push(push)
        pump()
      }, config.pushRetryBaseMs * 2 ** (push.attempts - 1))
      retrying.add(timer)
    } else {
      stats.failed++
      warn({ service: serviceOf(push.subscription.endpoint), status: status ?? 'no answer', attempts: push.attempts }, 'push dropped')
    }
  }

  function pump(): void {
    while (!closed && running < config.pushConcurrency && waiting.length > 0) {
      running++
      const push = waiting.shift()!
      attempt(push)
        .catch((error) => {
          stats.failed++ // a fault of ours, not the push service's: trying again would do no better
          warn({ err: error, service: serviceOf(push.subscription.endpoint) }, 'push not sent')
        })
        .finally(() => {
          running--
          pump()
        })
    }
  }

  return {
    stats: stats as Readonly<typeof stats>,

    /** Pushes waiting, waiting to be tried again, or in flight (0: idle). */
    pending: () => waiting.length + retrying.size + running,

    /** Pushes waiting to be tried again. */
    retrying: () => retrying.size,

    /** Queues a push; false when it was dropped (the queue is full, or closed). */
    send(push: Push): boolean {
      if (closed) return false
      if (waiting.length + retrying.size >= config.pushQueueLimit) {
        stats.dropped++
        if (!full) warn({ limit: config.pushQueueLimit }, 'push queue full: pushes are dropped until it drains')
        full = true
        return false
      }
      full = false
      waiting.push({ ...push, attempts: 0 })
      pump()
      return true
    },

    close(): void {
      closed = true
      waiting.length = 0
      for (const timer of retrying) timer.clear()
      retrying.clear()
      for (const abort of aborts) abort.abort()
    },
  }
}

export type PushDelivery = ReturnType<typeof createPushDelivery>
