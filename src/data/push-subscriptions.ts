// Data access for Web Push subscriptions (`push_subscriptions`).
import type { Knex } from 'knex'
import { notBlockedSql } from './blocks.js'
import { liveSessionSql } from './sessions.js'

export interface NewSubscription {
  /** The session that registers it: pushed while it lives, deleted when it is revoked. */
  sessionId: number
  endpoint: string
  p256dh: string
  auth: string
  includeText: boolean
}

/** A subscription to push to, for one notice of a batch (`notice`: its index there). */
export interface PushTarget {
  notice: number
  id: number
  user_id: number
  endpoint: string
  p256dh: string
  auth: string
  include_text: boolean
  /** The login of who the notice is from. */
  from_login: string
}

/** Serialises a user's subscription changes for the transaction, so the cap holds when two subscribe at once. */
export async function lockSubscriptionsOf(trx: Knex.Transaction, userId: number): Promise<void> {
  await trx.raw('SELECT pg_advisory_xact_lock(hashtext(?), ?::int)', ['push_subscriptions', userId % 2 ** 31])
}

/** The user's subscriptions, and whether `endpoint` is one of them. */
export async function countSubscriptions(db: Knex, userId: number, endpoint: string): Promise<{ count: number; has: boolean }> {
  const row = await db('push_subscriptions')
    .where({ user_id: userId })
    .first(db.raw('count(*)::int AS count'), db.raw('coalesce(bool_or(endpoint = ?), false) AS has', [endpoint]))
  return { count: row.count, has: row.has }
}

/** Stores the subscription for the user's session: new, changed, or moved from whichever session had the endpoint. */
export async function upsertSubscription(db: Knex, userId: number, subscription: NewSubscription): Promise<void> {
  await db.raw(
    `INSERT INTO push_subscriptions (user_id, session_id, endpoint, p256dh, auth, include_text) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id, session_id = excluded.session_id, p256dh = excluded.p256dh,
       auth = excluded.auth, include_text = excluded.include_text`,
    [userId, subscription.sessionId, subscription.endpoint, subscription.p256dh, subscription.auth, subscription.includeText],
  )
}

/** Forgets the user's subscriptions whose session ended (expired; or revoked, though revoking deletes them), so they count no more. */
export async function forgetSubscriptionsOfEndedSessions(db: Knex, userId: number, nowMs: number): Promise<void> {
  await db.raw(
    `DELETE FROM push_subscriptions s USING sessions ss
      WHERE s.user_id = ? AND ss.id = s.session_id AND NOT (${liveSessionSql('ss')})`,
    [userId, new Date(nowMs)],
  )
}

/** Forgets the subscriptions of these sessions, as they are revoked (in the revoking transaction). */
export async function forgetSubscriptionsOfSessions(db: Knex, sessionIds: number[]): Promise<void> {
  if (sessionIds.length > 0) await db('push_subscriptions').whereIn('session_id', sessionIds).delete()
}

export async function deleteSubscription(db: Knex, userId: number, endpoint: string): Promise<void> {
  await db('push_subscriptions').where({ user_id: userId, endpoint }).delete()
}

/** Forgets a subscription its push service said is gone (whoever holds the endpoint now: it is gone for them too). */
export async function forgetSubscription(db: Knex, id: number, endpoint: string): Promise<boolean> {
  return (await db('push_subscriptions').where({ id, endpoint }).delete()) > 0
}

/**
 * For each notice (its users, who it is from), the subscriptions of those users not seen
 * since `seenBeforeMs` who have not blocked the sender (nor the sender them), made by a
 * session still live at `nowMs`: one statement for a batch of notices.
 */
export async function subscriptionsOfAbsent(
  db: Knex,
  notices: { userIds: number[]; fromUid: number }[],
  seenBeforeMs: number,
  nowMs: number,
): Promise<PushTarget[]> {
  const pairs = notices.flatMap((notice, i) => notice.userIds.map((userId) => [i, userId, notice.fromUid]))
  if (pairs.length === 0) return []
  const { rows } = await db.raw(
    `SELECT t.notice, s.id, s.user_id, s.endpoint, s.p256dh, s.auth, s.include_text, f.login AS from_login
       FROM unnest(?::int[], ?::bigint[], ?::bigint[]) AS t(notice, user_id, from_id)
       JOIN push_subscriptions s ON s.user_id = t.user_id
       JOIN sessions ss ON ss.id = s.session_id AND ${liveSessionSql('ss')}
       JOIN users u ON u.id = t.user_id
       JOIN users f ON f.id = t.from_id
      WHERE (u.last_seen_at IS NULL OR u.last_seen_at < to_timestamp(?::float8 / 1000))
        AND ${notBlockedSql('t.user_id', 't.from_id')}
      ORDER BY t.notice, s.id`,
    [pairs.map((pair) => pair[0]), pairs.map((pair) => pair[1]), pairs.map((pair) => pair[2]), new Date(nowMs), seenBeforeMs],
  )
  return rows
}
