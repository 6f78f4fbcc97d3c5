// Data access for uploaded files' records (the bytes are in the file store).
import type { Knex } from 'knex'

export interface FileRow {
  id: number
  owner_id: number
  storage_key: string
  name: string
  content_type: string
  size: number
  sha256: string
}

export async function insertFile(db: Knex, file: Omit<FileRow, 'id'>, createdAtMs: number): Promise<number> {
  const [row] = await db('files').insert({ ...file, created_at: new Date(createdAtMs) }).returning('id')
  return row.id
}

export async function findFile(db: Knex, id: number): Promise<FileRow | undefined> {
  return db('files').select('id', 'owner_id', 'storage_key', 'name', 'content_type', 'size', 'sha256').where({ id }).first()
}

/**
 * Marks the owner's upload as attached; false when it is not theirs or is gone. Locks the
 * row, so the clean-up of unattached uploads cannot remove it while the send commits.
 */
export async function attachFile(db: Knex, fileId: number, ownerId: number): Promise<boolean> {
  const rows = await db('files').where({ id: fileId, owner_id: ownerId }).update({ attached_at: db.raw('COALESCE(attached_at, now())') }).returning('id')
  return rows.length > 0
}

/**
 * Whether the user may download the file: its owner, or someone who sees a message that
 * carries it (a direct message they sent or received, or one in a room they belong to).
 */
export async function mayDownload(db: Knex, userId: number, fileId: number): Promise<boolean> {
  const { rows } = await db.raw(
    `SELECT EXISTS (SELECT 1 FROM files WHERE id = :fileId AND owner_id = :userId)
         OR EXISTS (
              SELECT 1 FROM messages m
               WHERE m.file_id = :fileId AND m.deleted_at IS NULL
                 AND ((m.room_id IS NULL AND :userId IN (m.sender_id, m.recipient_id))
                      OR EXISTS (SELECT 1 FROM room_members r WHERE r.room_id = m.room_id AND r.user_id = :userId AND r.role <> 'banned'))
            ) AS allowed`,
    { fileId, userId },
  )
  return rows[0].allowed
}

/** Deletes the records of uploads never attached and created before `beforeMs`; returns their storage keys. */
export async function deleteUnattached(db: Knex, beforeMs: number): Promise<string[]> {
  const rows: { storage_key: string }[] = await db('files')
    .whereNull('attached_at')
    .andWhere('created_at', '<', new Date(beforeMs))
    .delete()
    .returning('storage_key')
  return rows.map((row) => row.storage_key)
}
