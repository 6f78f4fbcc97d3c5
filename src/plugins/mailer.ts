// Outgoing mail as `app.mailer`, through nodemailer. With SMTP_URL set, mails go to that
// SMTP server; without it they are written to DATA_DIR/outbox as .eml files (and the file
// is logged), so that the embedded default works with no mail server at all.
import fp from 'fastify-plugin'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import nodemailer from 'nodemailer'

export interface Mail {
  to: string
  subject: string
  text: string
}

export interface Mailer {
  send(mail: Mail): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    mailer: Mailer
  }
}

export default fp(
  async (app) => {
    const { smtpUrl, mailFrom, dataDir } = app.config
    let mailer: Mailer
    if (smtpUrl) {
      // Short timeouts: a code mail is sent while its database transaction waits.
      const transport = nodemailer.createTransport({ url: smtpUrl, connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 20_000 })
      mailer = {
        async send(mail) {
          await transport.sendMail({ from: mailFrom, ...mail })
        },
      }
      app.addHook('onClose', async () => transport.close())
    } else {
      const outbox = join(dataDir, 'outbox')
      const transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' })
      mailer = {
        async send(mail) {
          const { message } = await transport.sendMail({ from: mailFrom, ...mail })
          await mkdir(outbox, { recursive: true })
          const file = join(outbox, `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(4).toString('hex')}.eml`)
          await writeFile(file, message as Buffer)
          app.log.info({ to: mail.to, file }, 'mail written to the outbox (SMTP_URL is unset)')
        },
      }
    }
    app.decorate('mailer', mailer)
  },
  { name: 'mailer', dependencies: ['config'] },
)
