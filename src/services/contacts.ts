// The contact state machine (PROTOCOL A.4). Each change locks both users' rows in id
// order, so concurrent requests between the same two people serialize cleanly, and
// tells the other side through its event log.
import type { Knex } from 'knex'
import { hasBlocked } from '../data/blocks.js'
import { ContactStatus, getContactStatus, removeContact, setContactStatus } from '../data/contacts.js'
import { findUserById, findUserByLogin } from '../data/users.js'
import { AlreadyContact, BadRequest, InvalidState, NotFound } from '../errors.js'
import type { NewEvent } from '../event-log/index.js'
import type { ServiceDeps } from './deps.js'

export const ContactReply = { accept: 1, deny: 2, cancel: 3 } as const

export function createContacts({ db, eventLog }: ServiceDeps) {
  async function inPair<T>(me: number, other: number, work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
    return db.transaction(async (trx) => {
      await eventLog.lockUsers(trx, [me, other])
      return work(trx)
    })
  }

  const tell = (trx: Knex.Transaction, to: number, event: NewEvent) => eventLog.append(trx, [to], event)

  async function resolve(by: { contactUid?: number; login?: string }) {
    if (by.contactUid !== undefined) return findUserById(db, by.contactUid)
    if (by.login !== undefined) return findUserByLogin(db, by.login)
    throw new BadRequest('Name the contact with contact_uid or login')
  }

  return {
    /** Asks `login` to become a contact; asking someone who asked you makes you friends. */
    async request(me: number, login: string) {
      const other = await findUserByLogin(db, login)
      if (!other) throw new NotFound('Not found')
      if (other.id === me) throw new BadRequest('You cannot add yourself')
      const status = await inPair(me, other.id, async (trx) => {
        if (await hasBlocked(trx, me, other.id)) throw new InvalidState('You blocked this user: unblock them first')
        const mine = await getContactStatus(trx, me, other.id)
        if (mine === ContactStatus.friends) throw new AlreadyContact()
        // Blocked by them: the answer of a request sent, and nothing reaches them.
        if (await hasBlocked(trx, other.id, me)) {
          if (mine === undefined || mine === ContactStatus.denied) await setContactStatus(trx, me, other.id, ContactStatus.outgoing)
          return ContactStatus.outgoing
        }
        if (mine === ContactStatus.outgoing) return mine // already asked: nothing new to tell
        if (mine === ContactStatus.incoming) {
          await setContactStatus(trx, me, other.id, ContactStatus.friends)
          await setContactStatus(trx, other.id, me, ContactStatus.friends)
          await tell(trx, other.id, { type: 'contact_accepted', actorId: me, payload: { status: ContactStatus.friends } })
          return ContactStatus.friends
        }
        // No relation yet, or they denied an earlier request: asking again is allowed.
        await setContactStatus(trx, me, other.id, ContactStatus.outgoing)
        await setContactStatus(trx, other.id, me, ContactStatus.incoming)
        await tell(trx, other.id, { type: 'contact_request', actorId: me, payload: { status: ContactStatus.incoming } })
        return ContactStatus.outgoing
      })
      return { contact_uid: other.id, login: other.login, status }
    },

    /** Accepts or denies an incoming request, or cancels your own outgoing one. */
    async reply(me: number, otherId: number, reply: (typeof ContactReply)[keyof typeof ContactReply]) {
      if (otherId === me) throw new BadRequest('You cannot answer yourself')
      const other = await findUserById(db, otherId)
      if (!other) throw new NotFound('No such user')
      await inPair(me, otherId, async (trx) => {
        const mine = await getContactStatus(trx, me, otherId)
        if (mine === undefined) throw new NotFound('No request from or to this user')
        if (reply === ContactReply.cancel) {
          if (mine !== ContactStatus.outgoing) throw new InvalidState('You have no outgoing request to this user')
          await removeContact(trx, me, otherId)
          await removeContact(trx, otherId, me)
          await tell(trx, otherId, { type: 'contact_cancelled', actorId: me })
          return
        }
        if (mine !== ContactStatus.incoming) throw new InvalidState('This user has not asked you')
        if (reply === ContactReply.accept) {
          await setContactStatus(trx, me, otherId, ContactStatus.friends)
          await setContactStatus(trx, otherId, me, ContactStatus.friends)
          await tell(trx, otherId, { type: 'contact_accepted', actorId: me, payload: { status: ContactStatus.friends } })
        } else {
          await removeContact(trx, me, otherId)
          await setContactStatus(trx, otherId, me, ContactStatus.denied)
          await tell(trx, otherId, { type: 'contact_denied', actorId: me, payload: { status: ContactStatus.denied } })
        }
      })
      return { contact_uid: otherId, status: reply }
    },

    /** Removes the contact for both sides. */
    async remove(me: number, by: { contactUid?: number; login?: string }): Promise<void> {
      const other = await resolve(by)
      if (!other) throw new NotFound('Not found')
      await inPair(me, other.id, async (trx) => {
        const mine = await getContactStatus(trx, me, other.id)
        if (mine === undefined) throw new NotFound('Not your contact')
        const theirs = await getContactStatus(trx, other.id, me)
        await removeContact(trx, me, other.id)
        await removeContact(trx, other.id, me)
        if (theirs !== undefined) await tell(trx, other.id, { type: 'contact_deleted', actorId: me })
      })
    },
  }
}

export type Contacts = ReturnType<typeof createContacts>
