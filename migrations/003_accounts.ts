import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('users', (t) => {
    t.text('email')
    t.timestamp('email_verified_at', { useTz: true })
    t.text('display_name').notNullable().defaultTo('')
    t.text('description').notNullable().defaultTo('')
    // Presence (src/services/presence.ts): refreshed while the user polls; `online` flips
    // with a grace period, so only the process that flips it tells the contacts.
    t.timestamp('last_seen_at', { useTz: true })
    t.boolean('online').notNullable().defaultTo(false)
  })
  await knex.raw('CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email)) WHERE email IS NOT NULL')
  // The directory: prefix search on login and display name.
  await knex.raw('CREATE INDEX users_login_prefix ON users (lower(login) text_pattern_ops)')
  await knex.raw("CREATE INDEX users_name_prefix ON users (lower(display_name) text_pattern_ops) WHERE display_name <> ''")
  await knex.raw('CREATE INDEX users_online ON users (last_seen_at) WHERE online')

  // One pending e-mail code per user: only its hash is kept.
  await knex.schema.createTable('email_codes', (t) => {
    t.bigInteger('user_id').primary().references('users.id').onDelete('CASCADE')
    t.text('code_hash').notNullable()
    t.timestamp('expires_at', { useTz: true }).notNullable()
    t.integer('attempts').notNullable().defaultTo(0)
    t.timestamp('sent_at', { useTz: true }).notNullable()
    // Sends within the current hour, for the resend limit.
    t.integer('sends_in_window').notNullable().defaultTo(1)
    t.timestamp('window_started_at', { useTz: true }).notNullable()
  })

  await knex.schema.createTable('public_keys', (t) => {
    t.bigInteger('user_id').notNullable().references('users.id').onDelete('CASCADE')
    t.text('key_id').notNullable()
    t.text('algorithm').notNullable().defaultTo('')
    t.text('public_key').notNullable()
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    t.primary(['user_id', 'key_id'])
  })

  // End-to-end encrypted messages: opaque ciphertext per recipient uid, never read.
  await knex.schema.alterTable('messages', (t) => {
    t.jsonb('ciphertexts')
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('messages', (t) => t.dropColumn('ciphertexts'))
  await knex.schema.dropTableIfExists('public_keys')
  await knex.schema.dropTableIfExists('email_codes')
  await knex.raw('DROP INDEX IF EXISTS users_email_lower_key, users_login_prefix, users_name_prefix, users_online')
  await knex.schema.alterTable('users', (t) => {
    for (const column of ['email', 'email_verified_at', 'display_name', 'description', 'last_seen_at', 'online']) t.dropColumn(column)
  })
}
