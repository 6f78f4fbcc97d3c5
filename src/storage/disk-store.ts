// The file store on local disk: `<root>/<key[0..1]>/<key>`. An upload is written to
// `<root>/incoming/` and renamed into place only once complete (and flushed), so a reader
// never sees a partial file and an interrupted upload leaves nothing visible.
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { Transform, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { FileTooLarge, type FileStore, type StoredFile } from './file-store.js'

const KEY_PATTERN = /^[0-9a-f]{32}$/

export function createDiskStore(root: string): FileStore {
  const incoming = join(root, 'incoming')
  const pathOf = (key: string) => {
    if (!KEY_PATTERN.test(key)) throw new Error(`invalid storage key ${key}`)
    return join(root, key.slice(0, 2), key)
  }

  return {
    async put(content: Readable, maxBytes: number): Promise<StoredFile> {
      await mkdir(incoming, { recursive: true })
      const key = randomBytes(16).toString('hex')
      const partial = join(incoming, `${key}.part`)
      const hash = createHash('sha256')
      let size = 0
      const meter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          size += chunk.length
          if (size > maxBytes) return callback(new FileTooLarge(maxBytes))
          hash.update(chunk)
          callback(null, chunk)
        },
      })
      try {
        await pipeline(content, meter, createWriteStream(partial, { flags: 'wx' }))
        const handle = await open(partial, 'r')
        await handle.sync().finally(() => handle.close())
        await mkdir(join(root, key.slice(0, 2)), { recursive: true })
        await rename(partial, pathOf(key))
      } catch (error) {
        await rm(partial, { force: true })
        throw error
      }
      return { key, size, sha256: hash.digest('hex') }
    },

    async size(key) {
      try {
        return (await stat(pathOf(key))).size
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
        throw error
      }
    },

    read(key, range) {
      return createReadStream(pathOf(key), range ? { start: range.start, end: range.end } : {})
    },

    async remove(key) {
      await rm(pathOf(key), { force: true })
    },

    async removeStale(olderThanMs) {
      const names = await readdir(incoming).catch(() => [] as string[])
      const cutoff = Date.now() - olderThanMs
      for (const name of names) {
        const file = join(incoming, name)
        const info = await stat(file).catch(() => undefined)
        if (info && info.mtimeMs < cutoff) await rm(file, { force: true })
      }
    },
  }
}
