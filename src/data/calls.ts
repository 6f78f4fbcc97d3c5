// Data access for voice calls (signalling state only). Times come from the service's
// clock (milliseconds), so tests can move them.
import type { Knex } from 'knex'

export type CallState = 'ringing' | 'active' | 'ended'
export type EndReason = 'busy' | 'offline' | 'rejected' | 'hangup' | 'timeout' | 'disconnected'

export interface CallRow {
  id: number
  caller_id: number
  callee_id: number
  state: CallState
  ring_deadline: Date
}

export async function insertCall(
  db: Knex,
  call: { callerId: number; calleeId: number; state: CallState; endReason?: EndReason; ringDeadlineMs: number },
): Promise<number> {
  const [row] = await db('calls')
    .insert({
      caller_id: call.callerId,
      callee_id: call.calleeId,
      state: call.state,
      end_reason: call.endReason ?? null,
      ring_deadline: new Date(call.ringDeadlineMs),
      ended_at: call.state === 'ended' ? db.fn.now() : null,
    })
    .returning('id')
  return row.id
}

/** Whether the user is in a call that rings or runs. */
export async function inLiveCall(db: Knex, userId: number): Promise<boolean> {
  const row = await db('calls').select('id').whereNot('state', 'ended').andWhere((q) => q.where('caller_id', userId).orWhere('callee_id', userId)).first()
  return row !== undefined
}

export async function lockCall(trx: Knex.Transaction, id: number): Promise<CallRow | undefined> {
  return trx('calls').select('id', 'caller_id', 'callee_id', 'state', 'ring_deadline').where({ id }).forUpdate().first()
}

export async function setCallState(db: Knex, id: number, state: CallState, endReason?: EndReason): Promise<void> {
  await db('calls')
    .where({ id })
    .update({ state, end_reason: endReason ?? null, ...(state === 'ended' ? { ended_at: db.fn.now() } : {}) })
}

/** Ringing calls whose ring deadline has passed at `nowMs`. */
export async function overdueCalls(db: Knex, nowMs: number): Promise<number[]> {
  const rows: { id: number }[] = await db('calls').select('id').where('state', 'ringing').andWhere('ring_deadline', '<=', new Date(nowMs))
  return rows.map((row) => row.id)
}

/** Running calls with a party that presence has turned offline. */
export async function abandonedCalls(db: Knex): Promise<number[]> {
  const { rows } = await db.raw(
    `SELECT c.id FROM calls c
      WHERE c.state = 'active'
        AND EXISTS (SELECT 1 FROM users u WHERE u.id IN (c.caller_id, c.callee_id) AND NOT u.online)`,
  )
  return rows.map((row: { id: number }) => row.id)
}
