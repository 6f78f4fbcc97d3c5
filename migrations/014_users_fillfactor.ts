import type { Knex } from 'knex'

// Every append to a log moves its user's head (users.log_head): the users table is updated
// far more often than it grows. Half of each page left free lets those updates stay HOT (the
// new row version on the same page, no index touched), even when one statement moves the
// heads of every row on a page (a room message to its members). On packed pages only 19 %
// of the users updates were HOT: the rest rewrote all six of the users indexes. It applies
// to pages written from now on; `VACUUM FULL users` spreads an existing table out at once.
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE users SET (fillfactor = 50)')
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE users RESET (fillfactor)')
}
