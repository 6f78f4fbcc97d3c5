import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  // A channel is a room where only the owner and moderators post; `member_reactions`
  // says whether its members may react.
  await knex.schema.alterTable('rooms', (t) => {
    t.boolean('channel').notNullable().defaultTo(false)
    t.boolean('member_reactions').notNullable().defaultTo(true)
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('rooms', (t) => {
    t.dropColumn('channel')
    t.dropColumn('member_reactions')
  })
}
