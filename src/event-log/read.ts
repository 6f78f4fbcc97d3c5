// Reading a user's log after a cursor, and rendering its entries for the wire.
//
// Group reads: the polls that one commit wakes read their logs together, one statement
// for all of them (src/batcher.ts), one statement at a time; a lone read keeps its own
// simpler statement.
//
// Log tails: each process remembers where a user's last complete read ended ("nothing
// after position p"), and forgets it at the next wake-up that names the user (or everyone:
// a broadcast, a lost or restored LISTEN connection). A poll whose cursor is at or past
// that end has nothing to read: it may wait for the wake-up without asking the database,
// which under load saves half of all reads. An end is recorded only if the read started
// while NOTIFYs were heard and no wake-up for the user came since it started: then every
// commit the read's snapshot missed sends a wake-up that arrives after the read started,
// and that wake-up either prevented the record or deletes it. Bounded: an entry not used
// for two periods of TAIL_ROTATE_MS is dropped (a poll then reads).
import type { Knex } from 'knex'
import type { Static } from 'typebox'
import { createBatcher } from '../batcher.js'
import { isDatabaseUnavailable } from '../database.js'
import type { Message, PolledMessage } from '../schemas/messages.js'
import type { Event } from './catalogue.js'
import { READ_LOGS_SQL, READ_LOG_SQL, preparedQuery } from './sql.js'
import type { WakeUp } from './wake-ups.js'

/** One entry of a log as read: an event, or a message with its fields as the reader sees them. */
export interface LogEntry extends Omit<Static<typeof Message>, 'reactions'> {
  id: number
  pos: number
  type: string
  actor_id: number
  actor_login: string
  payload: Record<string, unknown> | null
  deleted: boolean | null
}

export interface LogRead {
  userId: number
  after: number
}

/** A user's entries after `after`, oldest first (see sql.ts), in one statement (one snapshot). */
export async function readLog(db: Knex, userId: number, after: number, limit: number): Promise<LogEntry[]> {
  return preparedQuery<LogEntry>(db, 'read_log', READ_LOG_SQL, [userId, after, limit])
}

/** Several reads in one statement: the entries of each, in order. A lone read is readLog. */
export async function readLogs(db: Knex, reads: LogRead[], limit: number): Promise<LogEntry[][]> {
  if (reads.length === 1) return [await readLog(db, reads[0].userId, reads[0].after, limit)]
  const rows = await preparedQuery<LogEntry & { ord: number }>(db, 'read_logs', READ_LOGS_SQL, [
    reads.map((read) => read.userId),
    reads.map((read) => read.after),
    limit,
  ])
  const entries: LogEntry[][] = reads.map(() => [])
  for (const { ord, ...entry } of rows) entries[ord - 1].push(entry)
  return entries
}

/** A message as a poll delivers it: PROTOCOL A.6's fields, and the others only when set. */
export function polledMessage(message: Omit<Static<typeof Message>, 'reactions'>): Static<typeof PolledMessage> {
  return {
    msg_id: message.msg_id,
    sender_uid: message.sender_uid,
    sender_login: message.sender_login,
    time: message.time,
    text: message.text,
    kind: message.kind,
    ...(message.room_id !== null ? { room_id: message.room_id } : {}),
    ...(message.edited_at !== null ? { edited_at: message.edited_at } : {}),
    ...(message.ciphertext !== null ? { ciphertext: message.ciphertext } : {}),
    ...(message.file !== null ? { file: message.file } : {}),
    ...(message.reply_to !== null ? { reply_to: message.reply_to } : {}),
    ...(message.forwarded_from !== null ? { forwarded_from: message.forwarded_from } : {}),
    ...(message.mentioned ? { mentioned: true as const } : {}),
  }
}

/** Entries as update_data delivers them: messages in `msg_array`, events in `events_array`. */
export function render(entries: LogEntry[]) {
  const msg_array: Static<typeof PolledMessage>[] = []
  const events_array: Event[] = []
  for (const entry of entries) {
    if (entry.type === 'message') {
      // A message deleted since: its entry still moves the cursor, but is not shown.
      if (entry.msg_id === null || entry.deleted) continue
      msg_array.push(polledMessage(entry))
    } else {
      // The row is what a writer appended, typed by the catalogue when it was written.
      events_array.push({ ...entry.payload, eid: entry.id, type: entry.type, ruid: entry.actor_id, text: entry.actor_login, time: Math.floor(entry.pos / 1e6) } as Event)
    }
  }
  return { msg_array, events_array }
}

/** Rotation period of the log tails (entries unused for two periods are dropped). */
const TAIL_ROTATE_MS = 60_000

interface Tail {
  /** The latest read of this log that started; only it may record the end. */
  reading: number
  /** No entry after this position (as of the last wake-up). */
  end?: number
  /** The furthest position a wake-up for this log announced. */
  heard?: number
}

export class LogTails {
  private current = new Map<number, Tail>()
  private previous = new Map<number, Tail>()
  private rotatedAt = Date.now()
  private reads = 0

  constructor(private readonly listening: () => boolean) {}

  handle(wakeUp: WakeUp): void {
    if (wakeUp.kind === 'users') wakeUp.userIds.forEach((userId, i) => this.grew(userId, wakeUp.ends[i]))
    else if (wakeUp.kind === 'entries') for (const { userId, prev, entries } of wakeUp.appended) this.grew(userId, entries[entries.length - 1].pos, prev)
    else if (wakeUp.kind === 'everyone' || wakeUp.kind === 'missed') {
      this.current.clear()
      this.previous.clear()
    }
  }

  /**
   * The user's log grew up to `end`. A recorded end at or past it is old news, and so is a
   * wake-up already acted on (the same commit arrives twice in the writer's process: its
   * entries, then its NOTIFY, in either order). Entries appended right after a recorded end
   * (`prev`, their log's head before them, is that end) move it to `end`: what follows it
   * is exactly those entries, and any later commit wakes again. Otherwise the end is
   * forgotten. Either way a read in flight records nothing (its snapshot may predate the
   * commit); a read that starts after this wake-up arrived sees the commit.
   */
  private grew(userId: number, end: number, prev?: number): void {
    let tail = this.find(userId)
    if (!tail) this.current.set(userId, (tail = { reading: 0 }))
    if ((tail.end ?? -1) >= end || (tail.heard ?? -1) >= end) return
    tail.reading = 0
    if (Number.isFinite(end)) tail.heard = end // an end not given (an older payload) is always news
    tail.end = tail.end !== undefined && tail.end === prev ? end : undefined
  }

  nothingAfter(userId: number, position: number): boolean {
    const end = this.find(userId)?.end
    return end !== undefined && position >= end
  }

  /** Call right before reading the user's log; pass the token to `readEnded`. */
  readStarting(userId: number): number {
    if (!this.listening()) return 0
    let tail = this.find(userId)
    if (!tail) this.current.set(userId, (tail = { reading: 0 }))
    tail.reading = ++this.reads
    return tail.reading
  }

  /** The read of `token` reached the end of the log at `end`. */
  readEnded(userId: number, token: number, end: number): void {
    const tail = this.find(userId)
    if (token !== 0 && tail?.reading === token) tail.end = end
  }

  private find(userId: number): Tail | undefined {
    if (Date.now() - this.rotatedAt > TAIL_ROTATE_MS) {
      this.previous = this.current
      this.current = new Map()
      this.rotatedAt = Date.now()
    }
    const tail = this.current.get(userId)
    if (tail) return tail
    const old = this.previous.get(userId)
    if (old) {
      this.previous.delete(userId)
      this.current.set(userId, old)
    }
    return old
  }
}

// Group reads: at most this many polls' reads per statement, and one statement at a time,
// so the reads that queue behind it leave together.
const LOG_READS_PER_STATEMENT = 64
export const LOG_READ_STATEMENTS_IN_FLIGHT = 1

/** The readers of the logs: group reads and log tails, for update_data. */
export function createLogReader(db: Knex, limit: number, listening: () => boolean) {
  const tails = new LogTails(listening)
  const reads = createBatcher<LogRead, LogEntry[]>((batch) => readLogs(db, batch, limit), {
    maxBatch: LOG_READS_PER_STATEMENT,
    maxInFlight: LOG_READ_STATEMENTS_IN_FLIGHT,
    failsEveryItem: isDatabaseUnavailable,
  })
  return {
    handle: (wakeUp: WakeUp) => tails.handle(wakeUp),

    /** True when the user's log has nothing after `position`, as far as this process knows. */
    nothingAfter: (userId: number, position: number) => tails.nothingAfter(userId, position),

    /** The user's entries after `after` (at most POLL_BATCH_LIMIT); remembers where a complete read ended. */
    async read(userId: number, after: number): Promise<LogEntry[]> {
      const token = tails.readStarting(userId)
      const entries = await reads.submit({ userId, after })
      if (entries.length < limit) tails.readEnded(userId, token, entries.length > 0 ? entries[entries.length - 1].pos : after)
      return entries
    },

    /** Read statements and the reads they carried (their ratio: the mean group). */
    stats: () => reads.stats,
  }
}
