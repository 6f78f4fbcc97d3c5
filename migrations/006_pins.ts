import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  // Pinned messages: the conversation is the message's own (its room, or its two users).
  await knex.schema.createTable('pinned_messages', (t) => {
    t.bigInteger('message_id').primary().references('messages.id').onDelete('CASCADE')
    t.bigInteger('pinned_by').notNullable().references('users.id').onDelete('CASCADE')
    t.timestamp('pinned_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('pinned_messages')
}
