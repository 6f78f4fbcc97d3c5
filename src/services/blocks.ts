// Blocking: a user no longer hears from someone they blocked. The blocked user's contact
// requests, direct messages, calls and room invitations get the answer anyone else would
// get and reach nobody (a direct message or a call: that of a non-friend; a contact
// request or an invitation: that of one sent), and neither sees the other's presence.
// The rules live where each of those is decided (the send statements of
// src/event-log/sql.ts, contacts, calls, rooms, presence); nothing is deleted, and
// unblocking restores what the contact status allows.
import { addBlock, dropPendingRequests, listBlocked, removeBlock } from '../data/blocks.js'
import { findUserById } from '../data/users.js'
import { BadRequest, NotFound } from '../errors.js'
import type { ServiceDeps } from './deps.js'

export function createBlocks({ db, eventLog }: ServiceDeps) {
  async function other(me: number, uid: number) {
    if (uid === me) throw new BadRequest('You cannot block yourself')
    if (!(await findUserById(db, uid))) throw new NotFound('No such user')
  }

  return {
    /** Blocks, and withdraws the requests pending between the two (so none can be accepted later). */
    async block(me: number, uid: number): Promise<void> {
      await other(me, uid)
      await db.transaction(async (trx) => {
        await eventLog.lockUsers(trx, [me, uid]) // as every contact change: no request races the block
        await addBlock(trx, me, uid)
        await dropPendingRequests(trx, me, uid)
      })
    },

    async unblock(me: number, uid: number): Promise<void> {
      await other(me, uid)
      await removeBlock(db, me, uid)
    },

    list: async (me: number) => ({ blocked: await listBlocked(db, me) }),
  }
}

export type Blocks = ReturnType<typeof createBlocks>
