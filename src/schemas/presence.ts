import { Type } from 'typebox'
import { Id, UnixSeconds } from './common.js'

export const PresenceEntry = Type.Object(
  {
    uid: Id('The friend.'),
    login: Type.String(),
    online: Type.Boolean({ description: 'Polling now, or within PRESENCE_GRACE_SECONDS (60).' }),
    last_seen: Type.Union([UnixSeconds('Last poll seen (UNIX seconds).'), Type.Null()], { description: 'Null: never seen.' }),
  },
  { $id: 'Presence', description: 'A friend\'s presence.' },
)
export const GetPresenceReply = Type.Object(
  { presence: Type.Array(PresenceEntry, { description: 'Your friends, by login.' }) },
  {
    examples: [
      {
        presence: [
          { uid: 2, login: 'bob', online: true, last_seen: 1796283301 },
          { uid: 3, login: 'carol', online: false, last_seen: null },
        ],
      },
    ],
  },
)
