// Data access for the users table.
import type { Knex } from 'knex'

export interface UserRow {
  id: number
  login: string
  password_hash: string
}

export async function insertUser(db: Knex, login: string, passwordHash: string): Promise<number> {
  const [row] = await db('users').insert({ login, password_hash: passwordHash }).returning('id')
  return row.id
}

export async function findUserByLogin(db: Knex, login: string): Promise<UserRow | undefined> {
  return db('users').select('id', 'login', 'password_hash').whereRaw('lower(login) = lower(?)', [login]).first()
}

export async function findUserById(db: Knex, id: number): Promise<{ id: number; login: string } | undefined> {
  return db('users').select('id', 'login').where({ id }).first()
}

/**
 * Row-locks two users in id order, so that pairs of writers never deadlock (NO KEY: see
 * appendEvents in events.ts).
 */
export async function lockUserPair(trx: Knex.Transaction, a: number, b: number): Promise<void> {
  await trx.raw('SELECT id FROM users WHERE id IN (?, ?) ORDER BY id FOR NO KEY UPDATE', [a, b])
}

/** The position of the newest entry in the user's log. */
export async function getLogHead(db: Knex, userId: number): Promise<number> {
  const row = await db('users').select('log_head').where({ id: userId }).first()
  return row?.log_head ?? 0
}
