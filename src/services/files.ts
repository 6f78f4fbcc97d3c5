// Files: streamed uploads (never held whole in memory, capped at MAX_FILE_BYTES while
// they stream), downloads with ranges for those who may see a message carrying the
// file, and the removal of uploads no message took within UPLOAD_TTL_SECONDS.
import type { Readable } from 'node:stream'
import parseRange from 'range-parser'
import { deleteUnattached, findFile, insertFile, mayDownload, type FileRow } from '../data/files.js'
import { FileUnavailable, NotFound, RangeNotSatisfiable } from '../errors.js'
import type { FileStore } from '../storage/file-store.js'
import type { ServiceDeps } from './deps.js'

export interface Download {
  file: FileRow
  /** Set for a 206: the bytes sent, inclusive. */
  range?: { start: number; end: number }
  content: Readable
}

/** Upload leftovers of a crashed process are removed after this long. */
const STALE_INCOMING_MS = 3600_000
/** How often each process removes stale uploads. */
export const CLEANUP_INTERVAL_MS = 15 * 60_000

export function createFiles({ db, config, clock, log }: ServiceDeps, store: FileStore) {
  return {
    async upload(ownerId: number, content: Readable, meta: { name: string; contentType: string }) {
      const stored = await store.put(content, config.maxFileBytes)
      const row = { owner_id: ownerId, storage_key: stored.key, name: meta.name, content_type: meta.contentType, size: stored.size, sha256: stored.sha256 }
      try {
        const id = await insertFile(db, row, clock.now())
        return { file_id: id, name: row.name, size: row.size, content_type: row.content_type, sha256: row.sha256 }
      } catch (error) {
        await store.remove(stored.key)
        throw error
      }
    },

    /**
     * Opens a file for the user. Unknown files and files the user may not see are the same
     * 404. `rangeHeader` (one range) gives a 206 part; several ranges get the whole file.
     */
    async open(userId: number, fileId: number, rangeHeader?: string): Promise<Download> {
      const file = await findFile(db, fileId)
      if (!file || !(await mayDownload(db, userId, fileId))) throw new NotFound('No such file')
      const size = await store.size(file.storage_key)
      if (size !== file.size) {
        log.error({ fileId, storageKey: file.storage_key, expected: file.size, found: size ?? null }, 'file content missing or damaged')
        throw new FileUnavailable('The file\'s content is missing or damaged on the server')
      }
      let range: Download['range']
      if (rangeHeader) {
        const ranges = parseRange(size, rangeHeader, { combine: true })
        if (ranges === -1) throw Object.assign(new RangeNotSatisfiable(`Range outside the file's ${size} bytes`), { size })
        if (ranges !== -2 && ranges.type === 'bytes' && ranges.length === 1) range = { start: ranges[0].start, end: ranges[0].end }
      }
      if (size === 0) return { file, content: store.read(file.storage_key) }
      return { file, range, content: store.read(file.storage_key, range ?? { start: 0, end: size - 1 }) }
    },

    /** Removes uploads never attached within UPLOAD_TTL_SECONDS, and crash leftovers. */
    async cleanUp(): Promise<number> {
      const keys = await deleteUnattached(db, clock.now() - config.uploadTtlSeconds * 1000)
      for (const key of keys) await store.remove(key)
      await store.removeStale(STALE_INCOMING_MS)
      return keys.length
    },
  }
}

export type Files = ReturnType<typeof createFiles>
