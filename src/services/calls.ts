// Voice-call signalling. The server relays; media goes peer to peer (or through the
// configured relays). States: ringing → active → ended, or ringing → ended (rejected,
// hung up, timed out). Every transition locks the call's row and appends the other side's
// event in the same transaction, so each event is delivered once, through update_data,
// whatever process a party polls on; a call survives its parties' polls reconnecting.
//
// The ring deadline is stored with the call, and every process sweeps for overdue calls
// every CALL_SWEEP_MS (the first to lock one ends it), so a timeout does not depend on the
// process that placed the call. Active calls end when presence turns a party offline.
import type { Knex } from 'knex'
import { blockedEitherWay } from '../data/blocks.js'
import { ContactStatus, getContactStatus } from '../data/contacts.js'
import { abandonedCalls, inLiveCall, insertCall, lockCall, overdueCalls, setCallState, type CallRow } from '../data/calls.js'
import { BadRequest, InvalidState, NotFound, NotFriends } from '../errors.js'
import type { NewEvent } from '../event-log/index.js'
import type { ServiceDeps } from './deps.js'
import type { Presence } from './presence.js'
import type { PushService } from './push.js'

export type CallOutcome = 'ringing' | 'busy' | 'offline'

export function createCalls({ db, config, eventLog, clock }: ServiceDeps, presence: Presence, push: Pick<PushService, 'notify'>) {
  const ringMs = config.callRingSeconds * 1000

  function checkSignal(payload: unknown, what: string): void {
    if (payload === undefined) return
    let bytes: number
    try {
      bytes = Buffer.byteLength(JSON.stringify(payload))
    } catch {
      throw new BadRequest(`${what} is nested too deeply`) // JSON.stringify ran out of stack
    }
    if (bytes > config.maxCallSignalBytes) throw new BadRequest(`${what} larger than ${config.maxCallSignalBytes} bytes`)
  }

  const otherParty = (call: CallRow, userId: number) => (call.caller_id === userId ? call.callee_id : call.caller_id)

  /** The call, locked, when the user is one of its parties (else 404) and it is in one of `states` (else 409). */
  async function partyCall(trx: Knex.Transaction, userId: number, callId: number, states: CallRow['state'][], role?: 'callee'): Promise<CallRow> {
    const call = await lockCall(trx, callId)
    if (!call || (call.caller_id !== userId && call.callee_id !== userId)) throw new NotFound('No such call')
    if (role === 'callee' && call.callee_id !== userId) throw new InvalidState('Only the callee may answer')
    // Overdue but not yet swept: too late all the same (the sweep tells both sides).
    if (call.state === 'ringing' && call.ring_deadline.getTime() <= clock.now()) throw new InvalidState('The call has timed out')
    if (!states.includes(call.state)) throw new InvalidState(`The call is ${call.state}`)
    return call
  }

  /** Ends the call and tells the parties (the one who ended it is not told). */
  async function end(trx: Knex.Transaction, call: CallRow, reason: 'rejected' | 'hangup' | 'timeout' | 'disconnected', byUserId?: number): Promise<void> {
    await setCallState(trx, call.id, 'ended', reason)
    const told = [call.caller_id, call.callee_id].filter((id) => id !== byUserId)
    const actorId = byUserId ?? call.caller_id
    const call_id = call.id
    const event: NewEvent =
      reason === 'timeout'
        ? { type: 'call_timeout', actorId, payload: { call_id, reason } }
        : reason === 'rejected'
          ? { type: 'call_rejected', actorId, payload: { call_id, reason } }
          : { type: 'call_ended', actorId, payload: { call_id, reason } }
    await eventLog.append(trx, told, event)
  }

  /** Ends `callIds` for `reason` where still in `state` (any process may race: the row lock decides). */
  async function endEach(callIds: number[], state: CallRow['state'], reason: 'timeout' | 'disconnected', due?: number): Promise<void> {
    for (const callId of callIds) {
      await db.transaction(async (trx) => {
        const call = await lockCall(trx, callId)
        if (!call || call.state !== state || (due !== undefined && call.ring_deadline.getTime() > due)) return
        await end(trx, call, reason)
      })
    }
  }

  return {
    /**
     * Calls a friend. `ringing`: the callee got `call_request`. `busy`: either is in a call
     * already (the caller gets `call_busy`). `offline`: the callee has no live poll (the
     * caller gets `call_offline`, the callee `call_missed` and, once committed, a push).
     */
    async call(callerId: number, calleeId: number, offer?: unknown) {
      if (callerId === calleeId) throw new BadRequest('You cannot call yourself')
      checkSignal(offer, 'offer')
      const reachable = await presence.hasLivePoll(calleeId)
      // Calling is a sign of life: the caller counts as seen (and online) from now on.
      await presence.seen(callerId)
      const placed = await db.transaction(async (trx) => {
        await eventLog.lockUsers(trx, [callerId, calleeId])
        // Blocked either way: the answer a non-friend gets.
        if ((await getContactStatus(trx, callerId, calleeId)) !== ContactStatus.friends || (await blockedEitherWay(trx, callerId, calleeId))) {
          throw new NotFriends('You can only call accepted contacts')
        }
        const busy = (await inLiveCall(trx, callerId)) || (await inLiveCall(trx, calleeId))
        const outcome: CallOutcome = busy ? 'busy' : reachable ? 'ringing' : 'offline'
        const callId = await insertCall(trx, {
          callerId,
          calleeId,
          state: outcome === 'ringing' ? 'ringing' : 'ended',
          endReason: outcome === 'ringing' ? undefined : outcome,
          ringDeadlineMs: clock.now() + ringMs,
        })
        const call_id = callId
        if (outcome === 'ringing') {
          await eventLog.append(trx, [calleeId], { type: 'call_request', actorId: callerId, payload: { call_id, offer: offer ?? null } })
        } else if (outcome === 'busy') {
          await eventLog.append(trx, [callerId], { type: 'call_busy', actorId: calleeId, payload: { call_id } })
        } else {
          await eventLog.append(trx, [callerId], { type: 'call_offline', actorId: calleeId, payload: { call_id } })
          await eventLog.append(trx, [calleeId], { type: 'call_missed', actorId: callerId, payload: { call_id } })
        }
        return { call_id: callId, status: outcome, ring_seconds: config.callRingSeconds }
      })
      if (placed.status === 'offline') push.notify([calleeId], { type: 'call', fromUid: callerId, callId: placed.call_id })
      return placed
    },

    /** The callee answers: the caller gets `call_accepted` with the answer; both get the relays. */
    async accept(calleeId: number, callId: number, answer?: unknown) {
      checkSignal(answer, 'answer')
      return db.transaction(async (trx) => {
        const call = await partyCall(trx, calleeId, callId, ['ringing'], 'callee')
        await setCallState(trx, call.id, 'active')
        await eventLog.append(trx, [call.caller_id], {
          type: 'call_accepted',
          actorId: calleeId,
          payload: { call_id: call.id, answer: answer ?? null, ice_servers: config.iceServers },
        })
        return { call_id: call.id, ice_servers: config.iceServers }
      })
    },

    async reject(calleeId: number, callId: number): Promise<void> {
      await db.transaction(async (trx) => end(trx, await partyCall(trx, calleeId, callId, ['ringing'], 'callee'), 'rejected', calleeId))
    },

    /** Either side ends the call, ringing (the caller cancels) or running. */
    async hangUp(userId: number, callId: number): Promise<void> {
      await db.transaction(async (trx) => end(trx, await partyCall(trx, userId, callId, ['ringing', 'active']), 'hangup', userId))
    },

    /** Relays an opaque offer, answer or ICE candidate to the other side (`call_signal`). */
    async signal(userId: number, callId: number, payload: unknown): Promise<void> {
      checkSignal(payload, 'payload')
      await db.transaction(async (trx) => {
        const call = await partyCall(trx, userId, callId, ['ringing', 'active'])
        await eventLog.append(trx, [otherParty(call, userId)], { type: 'call_signal', actorId: userId, payload: { call_id: call.id, payload } })
      })
    },

    /** Times out overdue ringing calls and ends running calls whose party went offline. */
    async sweep(): Promise<void> {
      const now = clock.now()
      await endEach(await overdueCalls(db, now), 'ringing', 'timeout', now)
      await endEach(await abandonedCalls(db), 'active', 'disconnected')
    },
  }
}

export type Calls = ReturnType<typeof createCalls>
