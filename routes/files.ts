// Files: POST /upload_file streams the raw request body to the file store (never held
// whole in memory; cut off with 413 once it passes MAX_FILE_BYTES); GET /files/{id}
// streams it back, with ranges, to whoever may see a message that carries it. Both are
// plain HTTP with a bearer token rather than JSON commands, so the wiki dialect has no
// form of them; attaching (send_msg with file_id) works in both dialects.
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import contentDisposition from 'content-disposition'
import { errorResponses } from './command.js'
import { DownloadHeaders, DownloadParams, FileContent, FileHeaders, UploadBody, UploadQuery, UploadReply } from '../src/schemas/files.js'
import { FileTooLarge } from '../src/storage/file-store.js'
import { BadRequest, PayloadTooLarge, RangeNotSatisfiable } from '../src/errors.js'
import { validatorCompiler } from '../src/validation.js'

const CONTENT_TYPE = /^[\w.+-]+\/[\w.+-]+(\s*;.*)?$/
const DEFAULT_CONTENT_TYPE = 'application/octet-stream'

export async function fileRoutes(plain: FastifyInstance) {
  const app = plain.withTypeProvider<TypeBoxTypeProvider>()
  // In this plugin only: any content type, the body left unread for the handler to stream.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, _payload, done) => done(null))
  // Fastify refuses a Content-Type it cannot parse before any parser runs; an upload of
  // such a type is stored as application/octet-stream instead.
  app.addHook('onRequest', async (request) => {
    const header = request.headers['content-type']
    if (header !== undefined && !(CONTENT_TYPE.test(header) && header.length <= 255)) request.headers['content-type'] = DEFAULT_CONTENT_TYPE
  })

  app.post(
    '/upload_file',
    {
      schema: {
        operationId: 'upload_file',
        summary: 'Upload a file',
        description:
          'The request body is the file (any Content-Type, recorded as its type), streamed to storage. At most MAX_FILE_BYTES ' +
          '(50 MiB by default): larger uploads are cut off with 413. Attach the upload with `send_msg` `file_id` within ' +
          'UPLOAD_TTL_SECONDS (a day) or it is removed.',
        tags: ['files'],
        querystring: UploadQuery,
        body: UploadBody,
        consumes: ['application/octet-stream'],
        security: [{ bearer: [] }],
        response: { 200: UploadReply, ...errorResponses([400, 401, 413, 429, 503]) },
      },
      // The body is the file: validated by the store as it streams, not by the schema.
      validatorCompiler: (route) => (route.httpPart === 'body' ? () => true : validatorCompiler(route)),
      preHandler: (request) => {
        request.logAs = 'transfer'
        return app.authenticate(request)
      },
    },
    async (request, reply) => {
      const declared = Number(request.headers['content-length'])
      const maxBytes = app.config.maxFileBytes
      if (declared > maxBytes) {
        reply.header('connection', 'close')
        throw new PayloadTooLarge(`File larger than ${maxBytes} bytes`)
      }
      const contentType = request.headers['content-type'] ?? DEFAULT_CONTENT_TYPE
      const { name } = request.query
      try {
        return await app.services.files.upload(request.session!.userId, request.raw, { name: name ?? 'file', contentType })
      } catch (error) {
        if (error instanceof FileTooLarge) {
          // The client may still be sending: answer, then close the connection.
          reply.header('connection', 'close')
          throw new PayloadTooLarge(error.message)
        }
        // The client went away mid-upload: its error, not the server's (nothing was kept).
        if (request.raw.readableAborted || request.raw.destroyed) throw new BadRequest('The upload was interrupted')
        throw error
      }
    },
  )

  app.get(
    '/files/:file_id',
    {
      schema: {
        operationId: 'download_file',
        summary: 'Download a file',
        description:
          'For its uploader and whoever sees a message carrying it (else 404). Streams the file with its Content-Type, ' +
          'Content-Length and Content-Disposition; a `Range: bytes=a-b` header gets 206 with that part (416 outside the ' +
          'file). 410 `file_unavailable` when its content is missing or damaged on the server.',
        tags: ['files'],
        params: DownloadParams,
        headers: DownloadHeaders,
        security: [{ bearer: [] }],
        response: {
          200: { description: 'The whole file.', headers: FileHeaders, content: { 'application/octet-stream': { schema: FileContent } } },
          206: {
            description: 'The requested range.',
            headers: { ...FileHeaders, 'content-range': { type: 'string', description: 'The part sent: `bytes <first>-<last>/<size>`.' } },
            content: { 'application/octet-stream': { schema: FileContent } },
          },
          ...errorResponses([400, 401, 404, 410, 416, 429, 503]),
        },
      },
      preHandler: (request) => {
        request.logAs = 'transfer'
        return app.authenticate(request)
      },
    },
    async (request, reply) => {
      const { file_id: fileId } = request.params
      const download = await app.services.files.open(request.session!.userId, fileId, request.headers.range).catch((error) => {
        if (error instanceof RangeNotSatisfiable) reply.header('content-range', `bytes */${(error as { size?: number }).size}`)
        throw error
      })
      const { file, range } = download
      reply
        .header('content-type', file.content_type)
        .header('content-disposition', contentDisposition(file.name))
        .header('accept-ranges', 'bytes')
        .header('etag', `"${file.sha256}"`)
        .header('cache-control', 'private, max-age=31536000, immutable')
      if (range) {
        reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${file.size}`).header('content-length', range.end - range.start + 1)
      } else {
        reply.header('content-length', file.size)
      }
      return reply.send(download.content)
    },
  )
}
