import type { Knex } from 'knex'

export async function up(knex: Knex): Promise<void> {
  // Web Push subscriptions (src/services/push.ts): where a browser or device of the user
  // takes pushes while it does not poll. An endpoint belongs to one session at a time: the
  // same endpoint registered again (by another user on a shared browser, or after signing
  // in again) moves to that session. It is pushed only while its session lives, and goes
  // with it when the session is revoked (a browser signed out is no longer pushed).
  await knex.schema.createTable('push_subscriptions', (t) => {
    t.bigIncrements('id')
    t.bigInteger('user_id').notNullable().references('users.id').onDelete('CASCADE')
    t.bigInteger('session_id').notNullable().references('sessions.id').onDelete('CASCADE').index()
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
