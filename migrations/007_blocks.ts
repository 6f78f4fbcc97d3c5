import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  // Blocked users: `blocker_id` no longer hears from `blocked_id` (src/services/blocks.ts).
  await knex.schema.createTable('blocks', (t) => {
    t.bigInteger('blocker_id').notNullable().references('users.id').onDelete('CASCADE')
    t.bigInteger('blocked_id').notNullable().references('users.id').onDelete('CASCADE')
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    t.primary(['blocker_id', 'blocked_id'])
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('blocks')
}
