import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('rooms', (t) => {
    t.bigIncrements('id')
    t.text('name').notNullable()
    t.text('description').notNullable().defaultTo('')
    t.text('type').notNullable() // 'public' | 'private'
    t.bigInteger('owner_id').notNullable().references('users.id').onDelete('CASCADE')
    // "Clear history" for everyone: messages up to this id are gone for all members.
    t.bigInteger('cleared_through').notNullable().defaultTo(0)
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    t.check("?? IN ('public', 'private')", ['type'])
  })
  await knex.raw("CREATE INDEX rooms_public_name ON rooms (lower(name) text_pattern_ops, id) WHERE type = 'public'")

  await knex.schema.createTable('room_members', (t) => {
    t.bigInteger('room_id').notNullable().references('rooms.id').onDelete('CASCADE')
    t.bigInteger('user_id').notNullable().references('users.id').onDelete('CASCADE')
    t.text('role').notNullable() // 'owner' | 'moderator' | 'member' | 'banned'
    t.timestamp('joined_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    t.primary(['room_id', 'user_id'])
    t.index(['user_id'])
    t.check("?? IN ('owner', 'moderator', 'member', 'banned')", ['role'])
  })

  await knex.schema.alterTable('messages', (t) => {
    t.bigInteger('recipient_id').nullable().alter()
    t.bigInteger('room_id').references('rooms.id').onDelete('CASCADE')
    t.text('kind').notNullable().defaultTo('text')
    t.timestamp('edited_at', { useTz: true })
    t.timestamp('deleted_at', { useTz: true })
  })
  await knex.raw(`ALTER TABLE messages
    ADD CONSTRAINT messages_one_target CHECK ((recipient_id IS NULL) <> (room_id IS NULL)),
    ADD CONSTRAINT messages_kind CHECK (kind IN ('text', 'sticker', 'file')),
    ADD COLUMN peer_low bigint GENERATED ALWAYS AS (LEAST(sender_id, recipient_id)) STORED,
    ADD COLUMN peer_high bigint GENERATED ALWAYS AS (GREATEST(sender_id, recipient_id)) STORED,
    ADD COLUMN search tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED`)
  // History and unread counts walk a conversation by id; search uses the full-text index.
  await knex.raw('CREATE INDEX messages_direct ON messages (peer_low, peer_high, id) WHERE room_id IS NULL')
  await knex.raw('CREATE INDEX messages_room ON messages (room_id, id) WHERE room_id IS NOT NULL')
  await knex.raw('CREATE INDEX messages_search ON messages USING gin (search)')

  // Per user and conversation (a peer or a room): read marker and "cleared for me" marker.
  await knex.schema.createTable('conversation_marks', (t) => {
    t.bigInteger('user_id').notNullable().references('users.id').onDelete('CASCADE')
    t.bigInteger('peer_id').notNullable().defaultTo(0)
    t.bigInteger('room_id').notNullable().defaultTo(0)
    t.bigInteger('read_through').notNullable().defaultTo(0)
    t.bigInteger('cleared_through').notNullable().defaultTo(0)
    t.primary(['user_id', 'peer_id', 'room_id'])
  })

  // The direct conversations of each user, kept on send, so the dialog list needs no scan.
  await knex.schema.createTable('direct_dialogs', (t) => {
    t.bigInteger('user_id').notNullable().references('users.id').onDelete('CASCADE')
    t.bigInteger('peer_id').notNullable().references('users.id').onDelete('CASCADE')
    t.bigInteger('last_msg_id').notNullable()
    t.timestamp('last_activity', { useTz: true }).notNullable()
    t.primary(['user_id', 'peer_id'])
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('direct_dialogs')
  await knex.schema.dropTableIfExists('conversation_marks')
  await knex.raw('ALTER TABLE messages DROP COLUMN search, DROP COLUMN peer_high, DROP COLUMN peer_low, DROP CONSTRAINT messages_kind, DROP CONSTRAINT messages_one_target')
  await knex.schema.alterTable('messages', (t) => {
    t.dropColumn('deleted_at')
    t.dropColumn('edited_at')
    t.dropColumn('kind')
    t.dropColumn('room_id')
  })
  await knex.schema.dropTableIfExists('room_members')
  await knex.schema.dropTableIfExists('rooms')
}
