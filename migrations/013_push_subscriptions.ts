import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  // Web Push subscriptions (src/services/push.ts): where a browser or device of the user
  // takes pushes while it does not poll. An endpoint belongs to one user at a time: the
  // same endpoint registered by another user (a shared browser, after a change of login)
  // moves to them.
  await knex.schema.createTable('push_subscriptions', (t) => {
    t.bigIncrements('id')
    t.bigInteger('user_id').notNullable().references('users.id').onDelete('CASCADE')
    t.text('endpoint').notNullable().unique()
    // The browser's keys (RFC 8291), base64url: a P-256 public key and the auth secret.
    t.text('p256dh').notNullable()
    t.text('auth').notNullable()
    // Opted in to the message's text in the push (else only who wrote, and where).
    t.boolean('include_text').notNullable().defaultTo(false)
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now())
    t.index(['user_id'])
  })
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('push_subscriptions')
}
