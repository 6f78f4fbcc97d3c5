import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  // A forwarded copy names the message first sent (a forward of a forward names the first):
  // replies show who sent it and when.
  await knex.schema.alterTable('messages', (t) => {
    t.bigInteger('forwarded_from_id').references('messages.id').onDelete('SET NULL')
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('messages', (t) => t.dropColumn('forwarded_from_id'))
}
