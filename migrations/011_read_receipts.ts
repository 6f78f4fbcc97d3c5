import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  // Read receipts: a user's read markers are shown to others (how many read each message)
  // unless they turned that off (private receipts).
  await knex.schema.alterTable('users', (t) => {
    t.boolean('read_receipts').notNullable().defaultTo(true)
  })
  await knex.raw('CREATE INDEX conversation_marks_room_read ON conversation_marks (room_id, read_through) WHERE room_id <> 0')
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS conversation_marks_room_read')
  await knex.schema.alterTable('users', (t) => t.dropColumn('read_receipts'))
}
