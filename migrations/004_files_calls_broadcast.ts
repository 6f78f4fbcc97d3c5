import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  // Uploaded files. The bytes live in the file store (src/storage/) under `storage_key`;
  // `attached_at` stays null until a message carries the file, and unattached uploads are
  // removed after UPLOAD_TTL_SECONDS.
  await knex.schema.createTable('files', (t) => {
    t.bigIncrements('id')
    t.bigInteger('owner_id').notNullable().references('users.id').onDelete('CASCADE')
    t.text('storage_key').notNullable()
    t.text('name').notNullable()
    t.text('content_type').notNullable()
    t.bigInteger('size').notNullable()
    t.text('sha256').notNullable()
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    t.timestamp('attached_at', { useTz: true })
  })
  await knex.raw('CREATE INDEX files_unattached ON files (created_at) WHERE attached_at IS NULL')

  // Broadcasts are messages with no recipient and no room.
  await knex.raw(`ALTER TABLE messages
    DROP CONSTRAINT messages_one_target,
    DROP CONSTRAINT messages_kind,
    ADD CONSTRAINT messages_one_target CHECK (((recipient_id IS NULL) <> (room_id IS NULL)) OR (kind = 'broadcast' AND recipient_id IS NULL AND room_id IS NULL)),
    ADD CONSTRAINT messages_kind CHECK (kind IN ('text', 'sticker', 'file', 'broadcast'))`)
  await knex.schema.alterTable('messages', (t) => {
    t.bigInteger('file_id').references('files.id').onDelete('SET NULL').index()
  })

  // The broadcast log: one row per broadcast, merged into every user's poll on read
  // (src/data/events.ts), so a broadcast costs one insert whatever the number of users.
  await knex.schema.createTable('broadcasts', (t) => {
    t.bigInteger('pos').primary()
    t.bigInteger('message_id').notNullable().references('messages.id').onDelete('CASCADE')
  })
  await knex.schema.alterTable('users', (t) => {
    // Broadcasts from before the account existed are not delivered to it.
    t.bigInteger('created_pos').notNullable().defaultTo(knex.raw('(extract(epoch FROM clock_timestamp()) * 1000000)::int8'))
  })

  // Voice calls: the signalling state machine. The ring deadline is in the database so
  // that any process can time a call out.
  await knex.schema.createTable('calls', (t) => {
    t.bigIncrements('id')
    t.bigInteger('caller_id').notNullable().references('users.id').onDelete('CASCADE')
    t.bigInteger('callee_id').notNullable().references('users.id').onDelete('CASCADE')
    t.text('state').notNullable() // 'ringing' | 'active' | 'ended'
    t.text('end_reason') // 'rejected' | 'hangup' | 'timeout' | 'offline' | 'disconnected'
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    t.timestamp('ring_deadline', { useTz: true }).notNullable()
    t.timestamp('ended_at', { useTz: true })
    t.check("?? IN ('ringing', 'active', 'ended')", ['state'])
  })
  await knex.raw("CREATE INDEX calls_ringing ON calls (ring_deadline) WHERE state = 'ringing'")
  await knex.raw("CREATE INDEX calls_live_caller ON calls (caller_id) WHERE state <> 'ended'")
  await knex.raw("CREATE INDEX calls_live_callee ON calls (callee_id) WHERE state <> 'ended'")
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('calls')
  await knex.schema.alterTable('users', (t) => t.dropColumn('created_pos'))
  await knex.schema.dropTableIfExists('broadcasts')
  await knex.raw("DELETE FROM messages WHERE kind = 'broadcast'")
  await knex.schema.alterTable('messages', (t) => t.dropColumn('file_id'))
  await knex.raw(`ALTER TABLE messages
    DROP CONSTRAINT messages_one_target,
    DROP CONSTRAINT messages_kind,
    ADD CONSTRAINT messages_one_target CHECK ((recipient_id IS NULL) <> (room_id IS NULL)),
    ADD CONSTRAINT messages_kind CHECK (kind IN ('text', 'sticker', 'file'))`)
  await knex.schema.dropTableIfExists('files')
}
