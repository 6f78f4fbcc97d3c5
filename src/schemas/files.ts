import { Type } from 'typebox'
import { Id } from './common.js'
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

export const UploadReply = MessageFile

/** A download's body: the bytes, with the file's own Content-Type. */
export const FileContent = Type.String({ format: 'binary' })

export const DownloadParams = Type.Object({ file_id: Id('The file.') })
