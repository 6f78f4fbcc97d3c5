// Where uploaded bytes live. The product talks to this interface only, so a store for an
// S3-compatible service can replace the disk store without touching the rules.
import type { Readable } from 'node:stream'

export interface StoredFile {
  key: string
  size: number
  /** Hex SHA-256 of the content. */
  sha256: string
}

export interface FileStore {
  /**
   * Stores the stream's bytes under a new key. Rejects with FileTooLarge as soon as more
   * than `maxBytes` arrived, and with the stream's error when it fails; either way nothing
   * is left behind, and a stored file appears only once it is complete.
   */
  put(content: Readable, maxBytes: number): Promise<StoredFile>
  /** The file's size, or undefined when it is missing. */
  size(key: string): Promise<number | undefined>
  /** The bytes `start` to `end` inclusive (the whole file without a range). */
  read(key: string, range?: { start: number; end: number }): Readable
  remove(key: string): Promise<void>
  /** Removes leftovers of uploads interrupted by a crash, older than `olderThanMs`. */
  removeStale(olderThanMs: number): Promise<void>
}

export class FileTooLarge extends Error {
  override name = 'FileTooLarge'
  constructor(readonly maxBytes: number) {
    super(`File larger than ${maxBytes} bytes`)
  }
}
