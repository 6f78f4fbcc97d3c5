// The event log: one append-only, ordered log per user, plus one broadcast log that every
// user's poll reads too. This module is its one owner: only here are positions numbered,
// the logs' locks taken, entries appended, wake-ups encoded and decoded, logs read after a
// cursor and entries rendered for the wire. Every writer (direct and room messages,
// contacts, rooms, calls, presence, keys, broadcast, logout) goes through it.
//
// What it guarantees:
// - Order: an append locks the user's `users` row (users in id order, so writers never
//   deadlock) and takes max(previous + 1, now in µs) as the new position. The lock is held
//   until commit, so positions along a log grow in commit order: once a reader has seen
//   position p, nothing can later commit below p. (A global sequence read with
//   `id > cursor` lacks this: a lower id can commit after a higher one was read.)
// - Exactly once: a reader that always asks for what comes after the last position it
//   was given never misses an entry and never sees one twice, whatever the number of
//   writers and server processes. The same cursor gives the same answer.
// - Broadcasts: one row whatever the number of users, written under an exclusive lock
//   that every append takes shared, and read with the log in one snapshot, so a cursor
//   never passes a broadcast that commits later.
// - Wake-ups: a commit wakes the polls of the users whose logs grew, on every process,
//   through one NOTIFY (wake-ups.ts); a poll subscribes before it reads. In the writer's own
//   process the appended entries themselves go to the held polls, once committed and once
//   the commit's NOTIFY arrived (so every commit before it, a broadcast included, has been
//   told to the polls first: NOTIFYs arrive in commit order). Each comes with the log's
//   head before it, read under the log's lock, so a poll whose cursor is that head knows
//   these are exactly the entries after it, and answers with them without reading the log.
//   (A broadcast after the cursor committed before them: its wake-up made the poll read.)
// - Durable: a send is answered only after its commit (group commit included).
//
// Files: catalogue.ts (the events), sql.ts (the statements, from shared fragments),
// wake-ups.ts (NOTIFY to held polls), read.ts (reads and rendering).
import { setImmediate as nextTurn } from 'node:timers/promises'
import type { Knex } from 'knex'
import { createBatcher, type Release } from '../batcher.js'
import type { Clock } from '../clock.js'
import type { Config } from '../config.js'
import { isDatabaseUnavailable } from '../database.js'
import type { NewEvent } from './catalogue.js'
import { LOG_READ_STATEMENTS_IN_FLIGHT, createLogReader, type LogEntry } from './read.js'
import { APPEND_BROADCAST_SQL, APPEND_SQL, GROUP_SEND_SQL, LOCK_BROADCASTS_SQL, LOCK_USERS_SQL, LOG_HEAD_SQL, PLAIN_GROUP_SEND_SQL, SINGLE_SEND_SQL, EVERY_SEND_FIELD, PLAIN_SEND_FIELDS, preparedQuery, type SendField } from './sql.js'
import { HandOverGate, HeldPolls, IDS_PER_NOTIFY, WakeUpListener, channelOf, profileChangePayloads, revocationPayloads, typingPayloads, type Appended, type ListenerOptions, type TypingNotice } from './wake-ups.js'

export type { Event, EventType, NewEvent, PayloadOf } from './catalogue.js'
export { render, type LogEntry } from './read.js'
export type { Appended, TypingNotice, Wake, WakeReason, WakeUp, Waiter } from './wake-ups.js'

export interface DirectSend {
  senderId: number
  recipientId: number
  text: string
  kind: 'text' | 'sticker' | 'file'
  clientMsgId?: string
  ciphertexts?: Record<string, string>
  /** The sender's upload to attach. */
  fileId?: number
  /** The message this one answers (checked visible to the sender, in the same conversation). */
  replyToId?: number
  /** A forwarded copy: the message first sent (checked visible to the sender; its file needs no owner). */
  forwardedFromId?: number
}

export type DirectSendResult =
  | { outcome: 'sent' | 'repeated'; id: number; time: number }
  | { outcome: 'not_friends' }
  /** The file is not among the sender's uploads. */
  | { outcome: 'no_file' }
  /** Lost a race with a retry of the same client_msg_id: read the first one's reply. */
  | { outcome: 'raced' }

/** A row an append returns: the entry for one user's log, as a read renders it, with the log's head before it. */
type AppendedRow = LogEntry & { user_id: number; prev: number }

interface DirectSendRow extends AppendedRow {
  status: number | null
  file_ok: boolean
  inserted_id: number | null
  inserted_time: number | null
  earlier_id: number | null
  earlier_time: number | null
}

/** The rows of one commit, by log: for the held polls of this process. */
function byLog(rows: AppendedRow[]): Appended[] {
  const logs = new Map<number, Appended>()
  for (const row of rows) {
    let log = logs.get(row.user_id)
    if (!log) logs.set(row.user_id, (log = { userId: row.user_id, prev: row.prev, entries: [] }))
    log.entries.push(row)
  }
  for (const log of logs.values()) log.entries.sort((a, b) => a.pos - b.pos)
  return [...logs.values()]
}

function resultOf(row: DirectSendRow): DirectSendResult {
  if (row.earlier_id !== null) return { outcome: 'repeated', id: row.earlier_id, time: row.earlier_time! }
  if (row.status !== 1) return { outcome: 'not_friends' }
  if (!row.file_ok) return { outcome: 'no_file' }
  if (row.inserted_id === null) return { outcome: 'raced' }
  return { outcome: 'sent', id: row.inserted_id, time: row.inserted_time! }
}

/** Each statement parameter of a send, by field (EVERY_SEND_FIELD gives their order). */
const SEND_VALUE: Record<SendField, (send: DirectSend) => unknown> = {
  sender_id: (send) => send.senderId,
  recipient_id: (send) => send.recipientId,
  text: (send) => send.text,
  kind: (send) => send.kind,
  client_msg_id: (send) => send.clientMsgId ?? null,
  ciphertexts: (send) => (send.ciphertexts ? JSON.stringify(send.ciphertexts) : null),
  file_id: (send) => send.fileId ?? null,
  reply_to_id: (send) => send.replyToId ?? null,
  forwarded_from_id: (send) => send.forwardedFromId ?? null,
}

/** A send of text only: no file, reply or forward (PLAIN_GROUP_SEND_SQL). */
const isPlain = (send: DirectSend) => send.fileId == null && send.replyToId == null && send.forwardedFromId == null

/**
 * Stores and delivers `sends` (at most IDS_PER_NOTIFY, so one NOTIFY names every
 * recipient) in one statement: a result per send, and the entries appended.
 */
export async function sendDirectMessages(db: Knex, channel: string, sends: DirectSend[]): Promise<{ results: DirectSendResult[]; appended: Appended[] }> {
  if (sends.length > IDS_PER_NOTIFY) throw new RangeError(`At most ${IDS_PER_NOTIFY} sends per statement`)
  if (sends.length === 0) return { results: [], appended: [] }
  let rows: DirectSendRow[]
  if (sends.length === 1) {
    const [send] = sends
    const values = [channel, ...EVERY_SEND_FIELD.map((field) => SEND_VALUE[field](send))]
    rows = await preparedQuery<DirectSendRow>(db, 'direct_send', SINGLE_SEND_SQL, values)
    rows[0].user_id = send.recipientId
  } else {
    const plain = sends.every(isPlain)
    const values = [channel, ...(plain ? PLAIN_SEND_FIELDS : EVERY_SEND_FIELD).map((field) => sends.map(SEND_VALUE[field]))]
    rows = plain
      ? await preparedQuery<DirectSendRow>(db, 'direct_send_group_plain', PLAIN_GROUP_SEND_SQL, values)
      : await preparedQuery<DirectSendRow>(db, 'direct_send_group', GROUP_SEND_SQL, values)
    rows.forEach((row, i) => (row.user_id = sends[i].recipientId))
  }
  const results = rows.map(resultOf)
  return { results, appended: byLog(rows.filter((_row, i) => results[i].outcome === 'sent')) }
}

// Direct sends in flight at once, each a group (src/batcher.ts). One: the next group
// gathers everything that arrives while the database writes this one, which measured
// fastest (a second group in flight only competes with the first for the same cores).
const DIRECT_SEND_GROUPS_IN_FLIGHT = 1

/** Statements on the hot path's pool at once: a connection each (src/plugins/event-log.ts). */
export const HOT_PATH_STATEMENTS_IN_FLIGHT = DIRECT_SEND_GROUPS_IN_FLIGHT + LOG_READ_STATEMENTS_IN_FLIGHT

export interface EventLogOptions {
  db: Knex
  /** For direct sends outside a transaction and log reads: their statements on generic plans (src/database.ts). */
  hotDb: Knex
  config: Pick<Config, 'databaseUrl' | 'databaseSchema' | 'maxHeldPollsPerUser' | 'pollBatchLimit'>
  clock: Clock
  log: ListenerOptions['log']
  noteFailure?: ListenerOptions['noteFailure']
}

export function createEventLog({ db, hotDb, config, clock, log, noteFailure }: EventLogOptions) {
  const channel = channelOf(config.databaseSchema)
  const listener = new WakeUpListener({ connectionString: config.databaseUrl!, channel, log, noteFailure })
  const polls = new HeldPolls(config.maxHeldPollsPerUser, clock)
  /** Polls answered with entries handed over, without reading the log. */
  let handedOver = 0
  const reader = createLogReader(hotDb, config.pollBatchLimit, () => listener.listening)
  const gate = new HandOverGate((wakeUp) => {
    polls.handle(wakeUp)
    reader.handle(wakeUp)
  })
  listener.subscribe((wakeUp) => gate.pass(wakeUp))
  // Group commit: concurrent direct sends share one statement and one commit, whose
  // entries go to the polls held here (the NOTIFY reaches the other processes).
  const sendGroup = async (sends: DirectSend[], release: Release) => {
    const recipients = sends.map((send) => send.recipientId)
    gate.begin(recipients)
    let appended: Appended[] = []
    try {
      const sent = await sendDirectMessages(hotDb, channel, sends)
      appended = sent.appended
      // Committed: the next group's statement goes out before this group's polls and
      // senders are answered (their replies would keep the database idle meanwhile).
      if (release()) await nextTurn()
      return sent.results
    } finally {
      gate.end(recipients, appended)
    }
  }
  const directSends = createBatcher<DirectSend, DirectSendResult>(sendGroup, {
    maxBatch: IDS_PER_NOTIFY,
    maxInFlight: DIRECT_SEND_GROUPS_IN_FLIGHT,
    failsEveryItem: isDatabaseUnavailable,
  })

  /** An entry of one user's log, as APPEND_SQL takes it. */
  interface NewEntry {
    userId: number
    type: string
    actorId: number
    messageId?: number
    payload?: object
  }

  /** Appends the entries in one statement, waking their users at commit (here, with the entries). */
  async function appendEntries(trx: Knex.Transaction, entries: NewEntry[]) {
    if (entries.length === 0) return
    const userIds = [...new Set(entries.map((entry) => entry.userId))]
    const values = [
      channel,
      entries.map((entry) => entry.userId),
      entries.map((entry) => entry.type),
      entries.map((entry) => entry.actorId),
      entries.map((entry) => entry.messageId ?? null),
      entries.map((entry) => (entry.payload ? JSON.stringify(entry.payload) : null)),
    ]
    gate.begin(userIds)
    let rows: AppendedRow[]
    try {
      rows = await preparedQuery<AppendedRow>(trx, 'append', APPEND_SQL, values)
    } catch (error) {
      gate.end(userIds)
      throw error
    }
    trx.executionPromise.then(
      () => gate.end(userIds, byLog(rows)),
      () => gate.end(userIds), // rolled back: nothing was appended
    )
  }

  const entriesOf = (userIds: number[], event: NewEvent): NewEntry[] => [...new Set(userIds)].map((userId) => ({ userId, ...event }))

  return {
    listener,
    polls,

    // --- Writers ---------------------------------------------------------------------

    /**
     * Locks these users' logs for the transaction (in id order): what two users decide
     * together (a contact, a call) then serialises with every append to their logs.
     */
    async lockUsers(trx: Knex.Transaction, userIds: number[]): Promise<{ id: number }[]> {
      return (await trx.raw(LOCK_USERS_SQL, [userIds])).rows
    },

    /** Appends a catalogued event to the log of each of `userIds`, waking them at commit. */
    append(trx: Knex.Transaction, userIds: number[], event: NewEvent): Promise<void> {
      return appendEntries(trx, entriesOf(userIds, event))
    },

    /**
     * Appends several events in one statement (each to the logs of its `userIds`): what a
     * group of changes tells, such as many users coming online at once. A log given several
     * gets them in this order.
     */
    appendEach(trx: Knex.Transaction, appends: { userIds: number[]; event: NewEvent }[]): Promise<void> {
      return appendEntries(trx, appends.flatMap(({ userIds, event }) => entriesOf(userIds, event)))
    },

    /** Appends a stored message to its recipients' logs (a room's members, in one statement). */
    appendMessage(trx: Knex.Transaction, userIds: number[], senderId: number, messageId: number): Promise<void> {
      return appendEntries(trx, userIds.map((userId) => ({ userId, type: 'message', actorId: senderId, messageId })))
    },

    /**
     * Stores a direct message and appends it to the recipient's log, answered once
     * committed: concurrent sends share one statement and one commit (group commit); a
     * lone send goes out at once through the single-send statement.
     */
    sendDirect: (send: DirectSend) => directSends.submit(send),

    /** Takes the exclusive broadcast lock; take it before storing the broadcast's message, so broadcasts' ids grow in log order too. */
    async lockBroadcasts(trx: Knex.Transaction): Promise<void> {
      await trx.raw(LOCK_BROADCASTS_SQL, [channel])
    },

    /** Appends a broadcast (one row, whatever the number of users) and wakes every poll; needs lockBroadcasts first. */
    async appendBroadcast(trx: Knex.Transaction, messageId: number): Promise<void> {
      await trx.raw(APPEND_BROADCAST_SQL, [messageId, channel])
    },

    /**
     * Ends sessions: `revoke` marks them in the database and returns their ids; at commit
     * their held polls end and their tokens are refused, on every process (here at once).
     */
    async revokeSessions(revoke: (trx: Knex.Transaction) => Promise<number[]>): Promise<number[]> {
      const revoked = await db.transaction(async (trx) => {
        const ids = await revoke(trx)
        for (const payload of revocationPayloads(ids)) await trx.raw('SELECT pg_notify(?, ?)', [channel, payload])
        return ids
      })
      if (revoked.length > 0) listener.dispatch({ kind: 'revoked', sessionIds: revoked })
      return revoked
    },

    /**
     * Says, at commit, that these users' own profiles changed in `trx`: every process's
     * cache of them (src/notified-cache.ts) forgets them, this one's before the caller
     * goes on.
     */
    async profilesChanged(trx: Knex.Transaction, userIds: number[]): Promise<void> {
      for (const payload of profileChangePayloads(userIds)) await trx.raw('SELECT pg_notify(?, ?)', [channel, payload])
      trx.executionPromise.then(() => listener.dispatch({ kind: 'profiles', userIds }), () => {})
    },

    /**
     * Hands an ephemeral typing notice to these users' held polls, on every process: never
     * stored, so it moves no cursor and a poll that was not held misses it.
     */
    async sendTyping(notice: TypingNotice, userIds: number[]): Promise<void> {
      for (const payload of typingPayloads(notice, userIds)) await db.raw('SELECT pg_notify(?, ?)', [channel, payload])
    },

    // --- Readers ---------------------------------------------------------------------

    /** The position of the newest entry the user's polls can see: a new device polls from here. */
    async head(userId: number): Promise<number> {
      return (await db.raw(LOG_HEAD_SQL, [userId])).rows[0]?.head ?? 0
    },

    /** Registers a poll for wake-ups (once NOTIFYs are heard); subscribe before reading. */
    async subscribe(userId: number, sessionId: number, acceptsTyping = false) {
      await listener.listen()
      return polls.subscribe(userId, sessionId, acceptsTyping)
    },

    read: reader.read,
    nothingAfter: reader.nothingAfter,

    /**
     * The entries after `cursor`, when what a commit appended is exactly that: the log's
     * head before them is the cursor. Else undefined (the poll reads).
     */
    entriesAfter(cursor: number, appended: Appended): LogEntry[] | undefined {
      if (appended.prev !== cursor) return undefined
      handedOver++
      return appended.entries.slice(0, config.pollBatchLimit)
    },

    /** For /metrics: direct-send statements and the sends they carried; read statements and reads; polls answered without a read. */
    stats: () => ({ sends: directSends.stats, reads: reader.stats(), handedOver }),

    /** Answers every held poll (they reply with what they have). */
    shutdown(): void {
      polls.wakeAll('shutdown')
    },

    async close(): Promise<void> {
      polls.wakeAll('shutdown')
      await listener.close()
    },
  }
}

export type EventLog = ReturnType<typeof createEventLog>
