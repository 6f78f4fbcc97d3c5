import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  // A reply names the message it answers, in the same conversation; a thread is the
  // replies to one message, paged by id.
  await knex.schema.alterTable('messages', (t) => {
    t.bigInteger('reply_to_id').references('messages.id').onDelete('SET NULL')
  })
  await knex.raw('CREATE INDEX messages_thread ON messages (reply_to_id, id) WHERE reply_to_id IS NOT NULL')
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('messages', (t) => t.dropColumn('reply_to_id'))
}
