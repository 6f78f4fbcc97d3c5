// Data access for the contacts table: one row per direction, `status` as `owner_id` sees `other_id`.
import type { Knex } from 'knex'
import { notBlockedSql } from './blocks.js'

export const ContactStatus = { outgoing: 0, friends: 1, denied: 2, incoming: 3 } as const
export type ContactStatus = (typeof ContactStatus)[keyof typeof ContactStatus]

export async function getContactStatus(db: Knex, ownerId: number, otherId: number, lock?: 'share'): Promise<ContactStatus | undefined> {
  const query = db('contacts').select('status').where({ owner_id: ownerId, other_id: otherId }).first()
  if (lock === 'share') query.forShare()
  const row = await query
  return row?.status
}

export async function setContactStatus(db: Knex, ownerId: number, otherId: number, status: ContactStatus): Promise<void> {
  await db('contacts')
    .insert({ owner_id: ownerId, other_id: otherId, status })
    .onConflict(['owner_id', 'other_id'])
    .merge({ status, updated_at: db.fn.now() })
}

export async function removeContact(db: Knex, ownerId: number, otherId: number): Promise<void> {
  await db('contacts').where({ owner_id: ownerId, other_id: otherId }).delete()
}

export async function listContacts(db: Knex, ownerId: number): Promise<{ friend_uid: number; friend_login: string; status: ContactStatus }[]> {
  return db('contacts as c')
    .join('users as u', 'u.id', 'c.other_id')
    .select('u.id as friend_uid', 'u.login as friend_login', 'c.status')
    .where('c.owner_id', ownerId)
    .orderBy('u.login')
}

/** The users `userId` is friends with (status 1 both ways). */
export async function friendIds(db: Knex, userId: number): Promise<number[]> {
  const rows: { other_id: number }[] = await db('contacts').select('other_id').where({ owner_id: userId, status: ContactStatus.friends })
  return rows.map((row) => row.other_id)
}

/** The friends of each of `userIds`, as (user, friend) pairs, leaving out those either side blocked. */
export async function friendsOfEach(db: Knex, userIds: number[]): Promise<{ user_id: number; friend_id: number }[]> {
  return db('contacts as c')
    .select('c.owner_id as user_id', 'c.other_id as friend_id')
    .whereIn('c.owner_id', userIds)
    .andWhere({ 'c.status': ContactStatus.friends })
    .andWhereRaw(notBlockedSql('c.owner_id', 'c.other_id'))
}
