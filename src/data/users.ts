// Data access for the users table: accounts, profiles and the directory.
import type { Knex } from 'knex'

export interface UserRow {
  id: number
  login: string
  password_hash: string
  email: string | null
  email_verified: boolean
}

const USER_COLUMNS = (db: Knex) => ['id', 'login', 'password_hash', 'email', db.raw('email_verified_at IS NOT NULL AS email_verified')]

export async function insertUser(db: Knex, user: { login: string; passwordHash: string; email?: string }): Promise<number> {
  const [row] = await db('users').insert({ login: user.login, password_hash: user.passwordHash, email: user.email ?? null }).returning('id')
  return row.id
}

export async function findUserByLogin(db: Knex, login: string): Promise<UserRow | undefined> {
  return db('users').select(USER_COLUMNS(db)).whereRaw('lower(login) = lower(?)', [login]).first()
}

export async function findUserByEmail(db: Knex, email: string): Promise<UserRow | undefined> {
  return db('users').select(USER_COLUMNS(db)).whereRaw('lower(email) = lower(?)', [email]).first()
}

export async function findUserById(db: Knex, id: number): Promise<UserRow | undefined> {
  return db('users').select(USER_COLUMNS(db)).where({ id }).first()
}

export async function setPasswordHash(db: Knex, id: number, passwordHash: string): Promise<void> {
  await db('users').where({ id }).update({ password_hash: passwordHash })
}

export async function markEmailVerified(db: Knex, id: number): Promise<void> {
  await db('users').where({ id }).update({ email_verified_at: db.fn.now() })
}

/** What anyone signed in may see of a user. */
export interface PublicProfile {
  uid: number
  username: string
  name: string
  description: string
}

const PUBLIC_COLUMNS = ['id as uid', 'login as username', 'display_name as name', 'description']

export async function findPublicProfile(db: Knex, id: number): Promise<PublicProfile | undefined> {
  return db('users').select(PUBLIC_COLUMNS).where({ id }).first()
}

/** The user's own view: the public profile plus the e-mail address and its state. */
export async function findOwnProfile(db: Knex, id: number) {
  return db('users')
    .select([...PUBLIC_COLUMNS, 'email', db.raw('email_verified_at IS NOT NULL AS email_verified')])
    .where({ id })
    .first() as Promise<(PublicProfile & { email: string | null; email_verified: boolean }) | undefined>
}

export async function updateProfile(db: Knex, id: number, profile: { name?: string; description?: string }): Promise<void> {
  const changes: Record<string, string> = {}
  if (profile.name !== undefined) changes.display_name = profile.name
  if (profile.description !== undefined) changes.description = profile.description
  if (Object.keys(changes).length > 0) await db('users').where({ id }).update(changes)
}

/**
 * One page of the directory, by id: users whose login or display name starts with
 * `prefix` (any case). Accounts still waiting for e-mail verification are left out when
 * `verifiedOnly`.
 */
export async function directoryPage(
  db: Knex,
  query: { prefix?: string; after: number; limit: number; verifiedOnly: boolean },
): Promise<PublicProfile[]> {
  const page = db('users').select(PUBLIC_COLUMNS).where('id', '>', query.after).orderBy('id').limit(query.limit)
  if (query.prefix) {
    const pattern = query.prefix.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`) + '%'
    page.where((q) => q.whereRaw('lower(login) LIKE ?', [pattern]).orWhereRaw('lower(display_name) LIKE ?', [pattern]))
  }
  if (query.verifiedOnly) page.where((q) => q.whereNull('email').orWhereNotNull('email_verified_at'))
  return page
}

/** Whether the user shares read receipts. */
export async function sharesReadReceipts(db: Knex, id: number): Promise<boolean> {
  const row = await db('users').select('read_receipts').where({ id }).first()
  return row?.read_receipts ?? false
}

export async function setReadReceipts(db: Knex, id: number, enabled: boolean): Promise<void> {
  await db('users').where({ id }).update({ read_receipts: enabled })
}
