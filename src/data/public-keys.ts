// Data access for published public keys (opaque to the server).
import type { Knex } from 'knex'

export interface PublicKeyRow {
  key_id: string
  algorithm: string
  key: string
  time: number
}

export async function listPublicKeys(db: Knex, userId: number): Promise<PublicKeyRow[]> {
  return db('public_keys')
    .select('key_id', 'algorithm', 'public_key as key', db.raw('floor(extract(epoch FROM updated_at))::int8 AS time'))
    .where({ user_id: userId })
    .orderBy('key_id')
}

/** Inserts or replaces a key; true when something changed. */
export async function upsertPublicKey(db: Knex, userId: number, key: { keyId: string; algorithm: string; key: string }): Promise<boolean> {
  const { rowCount } = await db.raw(
    `INSERT INTO public_keys (user_id, key_id, algorithm, public_key) VALUES (?, ?, ?, ?)
     ON CONFLICT (user_id, key_id) DO UPDATE SET algorithm = excluded.algorithm, public_key = excluded.public_key, updated_at = now()
      WHERE (public_keys.algorithm, public_keys.public_key) IS DISTINCT FROM (excluded.algorithm, excluded.public_key)`,
    [userId, key.keyId, key.algorithm, key.key],
  )
  return rowCount > 0
}

export async function deletePublicKey(db: Knex, userId: number, keyId: string): Promise<boolean> {
  return (await db('public_keys').where({ user_id: userId, key_id: keyId }).delete()) > 0
}
