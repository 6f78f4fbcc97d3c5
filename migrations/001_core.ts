import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('users', (t) => {
    t.bigIncrements('id')
    t.text('login').notNullable()
    t.text('password_hash').notNullable()
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    // Position of the newest event in this user's log; the row lock on it orders appends.
    t.bigInteger('log_head').notNullable().defaultTo(0)
  })
  await knex.raw('CREATE UNIQUE INDEX users_login_lower_key ON ?? (lower(login))', ['users'])

  await knex.schema.createTable('sessions', (t) => {
    t.bigIncrements('id')
    t.bigInteger('user_id').notNullable().references('users.id').onDelete('CASCADE').index()
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    t.timestamp('expires_at', { useTz: true }).notNullable()
    t.timestamp('revoked_at', { useTz: true })
  })

  await knex.schema.createTable('contacts', (t) => {
    // One row per direction: the status of `other_id` as `owner_id` sees it.
    t.bigInteger('owner_id').notNullable().references('users.id').onDelete('CASCADE')
    t.bigInteger('other_id').notNullable().references('users.id').onDelete('CASCADE')
    t.smallint('status').notNullable()
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    t.primary(['owner_id', 'other_id'])
    t.check('?? BETWEEN 0 AND 3', ['status'])
  })

  await knex.schema.createTable('messages', (t) => {
    t.bigIncrements('id')
    t.bigInteger('sender_id').notNullable().references('users.id').onDelete('CASCADE')
    t.bigInteger('recipient_id').notNullable().references('users.id').onDelete('CASCADE')
    t.text('text').notNullable()
    t.text('client_msg_id')
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    t.unique(['sender_id', 'client_msg_id'])
  })

  // The append-only event log: one ordered log per user, read with `pos > cursor`.
  await knex.schema.createTable('events', (t) => {
    t.bigInteger('user_id').notNullable().references('users.id').onDelete('CASCADE')
    t.bigInteger('pos').notNullable()
    t.bigIncrements('id', { primaryKey: false })
    t.text('type').notNullable()
    t.bigInteger('actor_id')
    t.bigInteger('message_id').references('messages.id').onDelete('CASCADE')
    t.jsonb('payload')
    t.primary(['user_id', 'pos'])
  })

  // Server-kept position of clients that poll without a cursor. Apart from `users` so that
  // moving it never waits behind an append holding the user's row lock.
  await knex.schema.createTable('poll_positions', (t) => {
    t.bigInteger('user_id').primary().references('users.id').onDelete('CASCADE')
    t.bigInteger('acked_pos').notNullable()
  })

  await knex.schema.createTable('login_failures', (t) => {
    t.text('login_key').primary()
    t.integer('failures').notNullable()
    t.timestamp('window_started_at', { useTz: true }).notNullable()
  })
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['login_failures', 'poll_positions', 'events', 'messages', 'contacts', 'sessions', 'users']) {
    await knex.schema.dropTableIfExists(table)
  }
}
