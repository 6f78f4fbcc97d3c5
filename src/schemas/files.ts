import type { Readable } from 'node:stream'
import { Type } from 'typebox'
import { Id, named } from './common.js'
import { MessageFile } from './messages.js'

export const FILE_NAME_MAX_CHARS = 255

export const UploadQuery = Type.Object({
  name: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: FILE_NAME_MAX_CHARS,
      pattern: '^[^/\\\\\\u0000-\\u001f]+$',
      description: 'The file name shown to others (no slashes or control characters); default `file`.',
    }),
  ),
})

/** The request body of an upload: the file itself, of any content type. */
export const UploadBody = Type.String({ format: 'binary', description: 'The raw bytes; the Content-Type header is recorded as the file\'s type.' })

export const UploadReply = named(MessageFile)

/** A download's body: the bytes, streamed, with the file's own Content-Type. */
export const FileContent = Type.Unsafe<Readable>({ type: 'string', format: 'binary' })

export const DownloadParams = Type.Object({ file_id: Id('The file.') })

export const DownloadHeaders = Type.Object({
  range: Type.Optional(Type.String({ maxLength: 1024, description: 'One range, `bytes=<first>-<last>`, for a 206 with that part; several ranges get the whole file.' })),
})

/** The headers of a download (documented: they are not checked). */
export const FileHeaders = {
  'content-type': { type: 'string', description: 'The type recorded at upload.' },
  'content-length': { type: 'integer', description: 'Bytes in this reply.' },
  'content-disposition': { type: 'string', description: 'The file\'s name (RFC 6266), e.g. `attachment; filename="photo.jpg"`.' },
  etag: { type: 'string', description: 'The content\'s SHA-256, quoted.' },
  'accept-ranges': { type: 'string', description: '`bytes`.' },
}
