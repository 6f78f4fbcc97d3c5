// Public keys for end-to-end encryption. The server stores them as opaque text and never
// reads them; friends (and the owner) may fetch them, and every change is a `key_changed`
// event to the owner's friends, so their clients re-fetch before encrypting again.
import { friendIds, getContactStatus, ContactStatus } from '../data/contacts.js'
import { deletePublicKey, listPublicKeys, upsertPublicKey } from '../data/public-keys.js'
import { NotFound, NotFriends, InvalidState } from '../errors.js'
import type { ServiceDeps } from './deps.js'

export function createKeys({ db, config, eventLog }: ServiceDeps) {
  return {
    async publish(userId: number, key: { keyId: string; algorithm: string; key: string }): Promise<void> {
      await db.transaction(async (trx) => {
        // Serialises a user's key changes, so the cap holds when two publish at once.
        await trx.raw('SELECT pg_advisory_xact_lock(hashtext(?), ?::int)', ['public_keys', userId % 2 ** 31])
        const keys = await listPublicKeys(trx, userId)
        if (!keys.some((k) => k.key_id === key.keyId) && keys.length >= config.maxPublicKeys) {
          throw new InvalidState(`At most ${config.maxPublicKeys} keys; delete one first`)
        }
        if (await upsertPublicKey(trx, userId, key)) {
          await eventLog.append(trx, await friendIds(trx, userId), { type: 'key_changed', actorId: userId, payload: { key_id: key.keyId, action: 'published' } })
        }
      })
    },

    async remove(userId: number, keyId: string): Promise<void> {
      await db.transaction(async (trx) => {
        if (!(await deletePublicKey(trx, userId, keyId))) throw new NotFound('No such key')
        await eventLog.append(trx, await friendIds(trx, userId), { type: 'key_changed', actorId: userId, payload: { key_id: keyId, action: 'deleted' } })
      })
    },

    /** The keys of `ownerId`, for the owner or a friend. */
    async list(viewerId: number, ownerId: number) {
      if (viewerId !== ownerId && (await getContactStatus(db, viewerId, ownerId)) !== ContactStatus.friends) {
        throw new NotFriends('Only friends may fetch your keys')
      }
      return listPublicKeys(db, ownerId)
    },
  }
}

export type Keys = ReturnType<typeof createKeys>
