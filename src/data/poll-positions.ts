// Data access for poll_positions: the server-kept position of cursorless clients.
import type { Knex } from 'knex'

export async function getAckedPosition(db: Knex, userId: number): Promise<number> {
  const row = await db('poll_positions').select('acked_pos').where({ user_id: userId }).first()
  return row?.acked_pos ?? 0
}

/** Moves the position forward (never back). */
export async function advanceAckedPosition(db: Knex, userId: number, position: number): Promise<void> {
  await db.raw(
    `INSERT INTO poll_positions (user_id, acked_pos) VALUES (?, ?)
     ON CONFLICT (user_id) DO UPDATE SET acked_pos = EXCLUDED.acked_pos WHERE poll_positions.acked_pos < EXCLUDED.acked_pos`,
    [userId, position],
  )
}
