// Profiles and the user directory. Other users see only the public profile (login,
// display name, description); the e-mail address is shown to its owner alone.
import { directoryPage, findOwnProfile, findPublicProfile, updateProfile } from '../data/users.js'
import { NotFound } from '../errors.js'
import { NotifiedCache } from '../notified-cache.js'
import type { ServiceDeps } from './deps.js'

/** Own profiles remembered per process, at most. */
const OWN_PROFILES_CACHED = 100_000

type OwnProfile = NonNullable<Awaited<ReturnType<typeof findOwnProfile>>>

export function createProfiles({ db, config, eventLog }: ServiceDeps) {
  // Every writer of a profile says so through the event log (profilesChanged), so `whoami`
  // is usually answered from memory, on every process.
  const ownProfiles = new NotifiedCache<OwnProfile>(eventLog.listener, (wakeUp) => (wakeUp.kind === 'profiles' ? wakeUp.userIds : undefined), OWN_PROFILES_CACHED)

  return {
    async own(userId: number): Promise<OwnProfile> {
      const profile = await ownProfiles.get(userId, () => findOwnProfile(db, userId))
      if (!profile) throw new NotFound('No such user')
      return profile
    },

    async update(userId: number, changes: { name?: string; description?: string }) {
      await db.transaction(async (trx) => {
        await updateProfile(trx, userId, changes)
        await eventLog.profilesChanged(trx, [userId])
      })
      return this.own(userId)
    },

    async publicProfile(userId: number) {
      const profile = await findPublicProfile(db, userId)
      if (!profile) throw new NotFound('No such user')
      return profile
    },

    /** A page of users by id, optionally those whose login or name starts with `prefix`. */
    async directory(query: { prefix?: string; after?: number; count: number }) {
      const page = await directoryPage(db, {
        prefix: query.prefix,
        after: query.after ?? 0,
        limit: query.count + 1,
        verifiedOnly: config.requireEmailVerification,
      })
      const users = page.slice(0, query.count)
      return { users, next: page.length > query.count ? users[users.length - 1].uid : null }
    },
  }
}

export type Profiles = ReturnType<typeof createProfiles>
