// Seeding straight into the tables: registration hashes each password with argon2 (tens
// of milliseconds on purpose), which would make 20,000 users take longer than the bench.
// A seeded user is a `users` row with a placeholder hash and a live `sessions` row; its
// token is signed here with the server's secret, exactly as the server would sign it
// (HS256 over {uid, sid}; the server checks the session row on every request).
import { createSigner } from 'fast-jwt'
import type { Knex } from 'knex'

export interface BenchUser {
  uid: number
  sid: number
  login: string
  token: string
}

export class Seeder {
  private readonly sign: (payload: { uid: number; sid: number }) => string

  constructor(
    private readonly knex: Knex,
    secret: string,
  ) {
    this.sign = createSigner({ key: secret, algorithm: 'HS256', expiresIn: 3600_000 }) as (payload: { uid: number; sid: number }) => string
  }

  /** `count` users with logins `<prefix>1` … and one live session each, in uid order. */
  async users(prefix: string, count: number): Promise<BenchUser[]> {
    if (count === 0) return []
    const { rows: users } = await this.knex.raw<{ rows: { id: number; login: string }[] }>(
      `INSERT INTO users (login, password_hash)
       SELECT ? || g, 'bench-seeded-no-password' FROM generate_series(1, ?::int) g
       RETURNING id, login`,
      [prefix, count],
    )
    users.sort((a, b) => a.id - b.id)
    const { rows: sessions } = await this.knex.raw<{ rows: { id: number; user_id: number }[] }>(
      `INSERT INTO sessions (user_id, expires_at)
       SELECT u, now() + interval '7 days' FROM unnest(?::bigint[]) u
       RETURNING id, user_id`,
      [users.map((u) => u.id)],
    )
    const sidOf = new Map(sessions.map((s) => [s.user_id, s.id]))
    return users.map((u) => {
      const sid = sidOf.get(u.id)!
      return { uid: u.id, sid, login: u.login, token: this.sign({ uid: u.id, sid }) }
    })
  }

  /** Accepted contacts, both directions, for each pair. */
  async befriend(pairs: [BenchUser, BenchUser][]): Promise<void> {
    if (pairs.length === 0) return
    const owners = pairs.flatMap(([a, b]) => [a.uid, b.uid])
    const others = pairs.flatMap(([a, b]) => [b.uid, a.uid])
    await this.knex.raw(
      `INSERT INTO contacts (owner_id, other_id, status)
       SELECT o, t, 1 FROM unnest(?::bigint[], ?::bigint[]) AS p(o, t)
       ON CONFLICT (owner_id, other_id) DO UPDATE SET status = 1`,
      [owners, others],
    )
  }

  /** A public room owned by `owner`, with `members` as plain members. */
  async room(owner: BenchUser, members: BenchUser[]): Promise<number> {
    const [{ id }] = await this.knex('rooms').insert({ name: 'bench fan-out', type: 'public', owner_id: owner.uid }).returning('id')
    await this.knex.raw(
      `INSERT INTO room_members (room_id, user_id, role)
       SELECT ?, u, CASE WHEN u = ? THEN 'owner' ELSE 'member' END FROM unnest(?::bigint[]) u`,
      [id, owner.uid, [owner.uid, ...members.map((m) => m.uid)]],
    )
    return id
  }

  /**
   * `total` filler events spread evenly over `users`, at positions in the past (a day
   * ago), so they are history behind every cursor; each user's log_head is raised to at
   * least its newest position, keeping the log's invariant (appends go above the head).
   * Rows go in time order across users, so one user's entries are scattered over the
   * table as in a real log, not packed together. They are events of the catalogue with no
   * payload (src/event-log/catalogue.ts), so a read from 0 renders them like any other.
   */
  async fillerEvents(users: BenchUser[], total: number): Promise<void> {
    const perUser = Math.max(1, Math.floor(total / users.length))
    const startUs = (Date.now() - 86_400_000) * 1000
    await this.knex.transaction(async (trx) => {
      await trx.raw("SET LOCAL statement_timeout = '300s'")
      await trx.raw(
        `INSERT INTO events (user_id, pos, type, actor_id)
         SELECT u, ?::int8 + g, 'contact_cancelled', u
           FROM generate_series(1, ?::int) g CROSS JOIN unnest(?::bigint[]) u`,
        [startUs, perUser, users.map((u) => u.uid)],
      )
      await trx.raw('UPDATE users SET log_head = GREATEST(log_head, ?::int8) WHERE id = ANY(?::bigint[])', [startUs + perUser, users.map((u) => u.uid)])
    })
  }

  /**
   * A conversation's history between two users of its own: `total` direct messages, each
   * with its entry in the recipient's log, a day old and older, so that the server starts
   * on tables of the size a database in service has. Then fresh statistics, as autovacuum
   * keeps them: a statement is planned once per connection, and a plan made while
   * `messages` held a few rows scans it whole once it has grown.
   */
  async history(total: number): Promise<void> {
    const [a, b] = await this.users('h', 2)
    const startUs = (Date.now() - 30 * 86_400_000) * 1000
    await this.knex.transaction(async (trx) => {
      await trx.raw("SET LOCAL statement_timeout = '300s'")
      await trx.raw(
        `WITH stored AS (
           INSERT INTO messages (sender_id, recipient_id, text, kind, client_msg_id, created_at)
           SELECT CASE WHEN g % 2 = 0 THEN ?::int8 ELSE ?::int8 END, CASE WHEN g % 2 = 0 THEN ?::int8 ELSE ?::int8 END,
                  'history ' || g, 'text', 'h' || g, to_timestamp((?::int8 + g::int8 * 1000000) / 1e6)
             FROM generate_series(1, ?::int) g
           RETURNING id, sender_id, recipient_id, created_at
         )
         INSERT INTO events (user_id, pos, type, actor_id, message_id)
         SELECT recipient_id, (extract(epoch FROM created_at) * 1000000)::int8, 'message', sender_id, id FROM stored`,
        [a.uid, b.uid, b.uid, a.uid, startUs, total],
      )
      await trx.raw('UPDATE users SET log_head = GREATEST(log_head, ?::int8) WHERE id = ANY(?::bigint[])', [startUs + (total + 1) * 1_000_000, [a.uid, b.uid]])
    })
    await this.knex.raw('ANALYZE')
  }
}

/** Everyone the figures need, seeded once before the server starts. */
export interface Population {
  delivery: { sender: BenchUser; receiver: BenchUser }
  /** One group per throughput level: sender i writes to receiver i % receivers. */
  throughput: { senders: BenchUser[]; receivers: BenchUser[] }[]
  /** Growth: the filler events go to all of them; [0] sends to [1], [1] polls. */
  growth: BenchUser[]
  /** Held polls (level n uses the first n) and the fan-out room's members (the first ones). */
  pool: BenchUser[]
  /** Sends the message that times the last-opened held poll (befriended at run time). */
  pinger: BenchUser
  roomOwner: BenchUser
  roomId: number
  /** Reconnect storm: offline users with no friend in common, and others all friends of `friend`. */
  storm: { alone: BenchUser[]; shared: BenchUser[]; friend: BenchUser }
}

export async function seedPopulation(
  seeder: Seeder,
  counts: { throughputLevels: number[]; throughputReceivers: number; growthUsers: number; poolSize: number; roomMembers: number; stormUsers: number; historyMessages: number },
): Promise<Population> {
  const [sender, receiver] = await seeder.users('dl', 2)
  await seeder.befriend([[sender, receiver]])

  const throughput = []
  for (const [index, level] of counts.throughputLevels.entries()) {
    const senders = await seeder.users(`t${index}s`, level)
    const receivers = await seeder.users(`t${index}r`, counts.throughputReceivers)
    await seeder.befriend(senders.map((s, i) => [s, receivers[i % receivers.length]]))
    throughput.push({ senders, receivers })
  }

  const growth = await seeder.users('g', counts.growthUsers)
  await seeder.befriend([[growth[0], growth[1]]])

  const pool = await seeder.users('hp', counts.poolSize)
  const [pinger, roomOwner] = await seeder.users('x', 2)
  const roomId = await seeder.room(roomOwner, pool.slice(0, counts.roomMembers))

  const alone = await seeder.users('sa', counts.stormUsers)
  const shared = await seeder.users('ss', counts.stormUsers)
  const [friend] = await seeder.users('sf', 1)
  await seeder.befriend(shared.map((user) => [user, friend]))
  await seeder.history(counts.historyMessages)
  return { delivery: { sender, receiver }, throughput, growth, pool, pinger, roomOwner, roomId, storm: { alone, shared, friend } }
}
