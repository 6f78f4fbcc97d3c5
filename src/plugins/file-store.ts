// The file store as `app.fileStore`: on disk under DATA_DIR/files (src/storage/).
import fp from 'fastify-plugin'
import { join } from 'node:path'
import { createDiskStore } from '../storage/disk-store.js'
import type { FileStore } from '../storage/file-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    fileStore: FileStore
  }
}

export default fp(
  async (app) => {
    app.decorate('fileStore', createDiskStore(join(app.config.dataDir, 'files')))
  },
  { name: 'file-store', dependencies: ['config'] },
)
