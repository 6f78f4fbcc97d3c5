import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  // Emoji reactions: at most one of each emoji per user per message. History shows them
  // counted per emoji, oldest emoji first, with whether the reader is among them.
  await knex.schema.createTable('message_reactions', (t) => {
    t.bigInteger('message_id').notNullable().references('messages.id').onDelete('CASCADE')
    t.bigInteger('user_id').notNullable().references('users.id').onDelete('CASCADE')
    t.text('emoji').notNullable()
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    t.primary(['message_id', 'emoji', 'user_id'])
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('message_reactions')
}
