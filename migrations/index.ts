// The migrations, in order. Listed here rather than read from the folder so that the
// same list works under every loader (tsx, tap, the knex CLI through knexfile.ts).
import type { Knex } from 'knex'
import * as core from './001_core.js'
import * as rooms from './002_rooms.js'
import * as accounts from './003_accounts.js'
import * as filesCallsBroadcast from './004_files_calls_broadcast.js'
import * as reactions from './005_reactions.js'
import * as pins from './006_pins.js'
import * as blocks from './007_blocks.js'
import * as channels from './008_channels.js'
import * as replies from './009_replies.js'
import * as mentions from './010_mentions.js'
import * as readReceipts from './011_read_receipts.js'
import * as forwards from './012_forwards.js'
import * as pushSubscriptions from './013_push_subscriptions.js'
import * as usersFillfactor from './014_users_fillfactor.js'

interface Migration {
  up(knex: Knex): Promise<void>
  down(knex: Knex): Promise<void>
}

const migrations: Record<string, Migration> = {
  '001_core': core,
  '002_rooms': rooms,
  '003_accounts': accounts,
  '004_files_calls_broadcast': filesCallsBroadcast,
  '005_reactions': reactions,
  '006_pins': pins,
  '007_blocks': blocks,
  '008_channels': channels,
  '009_replies': replies,
  '010_mentions': mentions,
  '011_read_receipts': readReceipts,
  '012_forwards': forwards,
  '013_push_subscriptions': pushSubscriptions,
  '014_users_fillfactor': usersFillfactor,
}

export const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => Object.keys(migrations),
  getMigrationName: (name) => name,
  getMigration: async (name) => migrations[name],
}
