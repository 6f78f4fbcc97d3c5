import { Type } from 'typebox'
import { Fields, Id, Login, Password, UnixSeconds } from './common.js'

/** Profile limits. */
export const NAME_MAX_CHARS = 64
export const DESCRIPTION_MAX_CHARS = 500

export const Email = Type.String({ format: 'email', maxLength: 254, description: 'An e-mail address; unique regardless of case.' })

/** Commands that name an account take `login` or `email`, exactly one. */
const AccountRef = {
  login: Type.Optional(Login),
  email: Type.Optional(Email),
}
const byLoginOrEmail: ('login' | 'email')[] = ['login', 'email']

/** The examples' session: alice's (uid 1), as `authorization` opens it. */
const aliceSession = {
  uid: 1,
  contact_uid: 1,
  session_key: 1,
  token: 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1aWQiOjEsInNpZCI6MSwiZXhwIjoxNzk4ODc1Mjg4LCJpYXQiOjE3OTYyODMyODh9.G1YYj73GWohZI4hsi3JxMyFJBQWJ2RgDNkUhCAzQeS0',
}

export const RegistrationBody = Fields(
  { login: Login, password: Password, email: Type.Optional(Email) },
  {
    description: 'With REQUIRE_EMAIL_VERIFICATION, `email` is required and a one-time code is mailed to it.',
    examples: [{ login: 'alice', password: 'secret1', email: 'alice@example.com' }],
  },
)
export const RegistrationReply = Type.Object(
  {
    uid: Id('The new user id.'),
    verification_required: Type.Boolean({ description: 'True when login waits for `verify` with the mailed code.' }),
  },
  { examples: [{ uid: 1, verification_required: false }] },
)

export const AuthorizationBody = Fields(
  { ...AccountRef, password: Password },
  { alternatives: byLoginOrEmail, description: 'Name the account by `login` or by `email`.', examples: [{ login: 'alice', password: 'secret1' }] },
)

export const Session = Type.Object(
  {
    uid: Id('The user id.'),
    contact_uid: Id('The same as uid (the wiki name for it).'),
    session_key: Id('The session id: a number, not a secret.'),
    token: Type.String({ description: 'Bearer JWT: send as `Authorization: Bearer <token>` or inside `session`.' }),
  },
  { $id: 'Session', description: 'An open session: send `token` as a bearer token, or echo the whole object as `session`.' },
)

export const AuthorizationReply = Type.Object(
  {
    session: Session,
    cursor: Type.Integer({ minimum: 0, description: 'The current end of the user\'s event log: a new device polls from here.' }),
  },
  { examples: [{ session: aliceSession, cursor: 1796283288925123 }] },
)

export const VerifyBody = Fields(
  { ...AccountRef, code: Type.String({ pattern: '^[0-9]{6}$', description: 'The 6-digit code from the mail.' }) },
  { alternatives: byLoginOrEmail, examples: [{ email: 'alice@example.com', code: '482913' }] },
)
export const VerifyReply = Type.Object({ uid: Id('The verified account.') }, { examples: [{ uid: 1 }] })
export const ResendCodeBody = Fields(AccountRef, {
  alternatives: byLoginOrEmail,
  description: 'Answers `{}` whether or not the account exists or waits for a code.',
  examples: [{ email: 'alice@example.com' }],
})

/** The body of a command with no fields of its own. */
export const NoFields = Fields({}, { examples: [{}] })
export const RenewTokenReply = Type.Object({ session: Session }, { examples: [{ session: aliceSession }] })

export const SessionInfo = Type.Object(
  {
    session_key: Id('The session id.'),
    created_at: UnixSeconds('When it was opened.'),
    expires_at: UnixSeconds('When its token stops working unless renewed.'),
    current: Type.Boolean({ description: 'The session of this request.' }),
  },
  { $id: 'SessionInfo', description: 'One of my live sessions.' },
)
export const ListSessionsReply = Type.Object(
  { sessions: Type.Array(SessionInfo, { description: 'Live sessions, oldest first.' }) },
  {
    examples: [
      {
        sessions: [
          { session_key: 1, created_at: 1796283288, expires_at: 1798875288, current: true },
          { session_key: 4, created_at: 1796290112, expires_at: 1798882112, current: false },
        ],
      },
    ],
  },
)
export const LogoutSessionBody = Fields({ session_key: Id('One of your sessions.') }, { examples: [{ session_key: 4 }] })
export const LogoutAllBody = Fields(
  {
    keep_current: Type.Optional(Type.Boolean({ description: 'Keep the session of this request; default false (it ends too).' })),
  },
  { examples: [{ keep_current: true }] },
)
export const LogoutAllReply = Type.Object({ ended: Type.Integer({ minimum: 0, description: 'Sessions ended.' }) }, { examples: [{ ended: 1 }] })
export const ChangePasswordBody = Fields(
  { old_password: Password, new_password: Password },
  { description: 'Every other session ends.', examples: [{ old_password: 'secret1', new_password: 'correct-horse-7' }] },
)

export const ContactEntry = Type.Object(
  {
    friend_login: Type.String(),
    friend_uid: Id('The contact\'s user id.'),
    status: Type.Integer({ minimum: 0, maximum: 3, description: '0 outgoing, 1 friends, 2 denied, 3 incoming.' }),
  },
  { $id: 'Contact', description: 'A contact, with its status as I see it.' },
)

export const GetDataReply = Type.Object(
  {
    contacts: Type.Array(ContactEntry, { description: 'Empty list: `[]` here, `null` in the wiki dialect.' }),
    settings: Type.Array(Type.Unknown()),
  },
  {
    examples: [
      {
        contacts: [
          { friend_login: 'bob', friend_uid: 2, status: 1 },
          { friend_login: 'carol', friend_uid: 3, status: 3 },
        ],
        settings: [],
      },
    ],
  },
)

const publicProfileFields = {
  uid: Id('The user id.'),
  username: Type.String({ description: 'The login.' }),
  name: Type.String({ description: 'Display name (may be empty).' }),
  description: Type.String({ description: 'About the user (may be empty).' }),
}
export const PublicProfile = Type.Object(publicProfileFields, { $id: 'User', description: 'A user, as every signed-in user may see them.' })
export const OwnProfile = Type.Object(
  {
    ...publicProfileFields,
    email: Type.Union([Type.String(), Type.Null()], { description: 'Shown to its owner only.' }),
    email_verified: Type.Boolean(),
  },
  { $id: 'OwnProfile', description: 'Your own profile.' },
)

export const OwnProfileReply = Type.Object(
  { user: OwnProfile },
  {
    examples: [
      {
        user: { uid: 1, username: 'alice', name: 'Alice', description: 'Tea, cats and distributed systems', email: 'alice@example.com', email_verified: true },
      },
    ],
  },
)
export const UpdateProfileBody = Fields(
  {
    name: Type.Optional(Type.String({ maxLength: NAME_MAX_CHARS, description: `Display name, at most ${NAME_MAX_CHARS} characters.` })),
    description: Type.Optional(Type.String({ maxLength: DESCRIPTION_MAX_CHARS, description: `At most ${DESCRIPTION_MAX_CHARS} characters.` })),
  },
  { examples: [{ name: 'Alice', description: 'Tea, cats and distributed systems' }] },
)

export const ListUsersBody = Fields(
  {
    query: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'Only users whose login or display name starts with this (any case).' })),
    after: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'The `next` of the previous page.' })),
    count: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'At most 100; default 50.' })),
  },
  { examples: [{ query: 'b', count: 2 }] },
)
export const ListUsersReply = Type.Object(
  {
    users: Type.Array(PublicProfile, { description: 'By user id.' }),
    next: Type.Union([Id('Pass as `after` for the next page.'), Type.Null()], { description: 'Null on the last page.' }),
  },
  {
    examples: [
      {
        users: [
          { uid: 2, username: 'bob', name: 'Bob', description: '' },
          { uid: 5, username: 'bella', name: 'Bella', description: 'Drums' },
        ],
        next: 5,
      },
    ],
  },
)

export const UserQuery = Type.Object({ id: Id('The user id.') })
export const UserReply = Type.Object({ user: PublicProfile }, { examples: [{ user: { uid: 2, username: 'bob', name: 'Bob', description: '' } }] })
