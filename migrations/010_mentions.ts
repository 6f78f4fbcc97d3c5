import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  // Who a room message mentions (`@login`, or `@all` for every member): each gets a flag on
  // the message and a count of unread mentions per dialog.
  await knex.schema.createTable('message_mentions', (t) => {
    t.bigInteger('message_id').notNullable().references('messages.id').onDelete('CASCADE')
    t.bigInteger('user_id').notNullable().references('users.id').onDelete('CASCADE')
    t.primary(['message_id', 'user_id'])
  })
  await knex.raw('CREATE INDEX message_mentions_user ON message_mentions (user_id, message_id)')
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('message_mentions')
}
