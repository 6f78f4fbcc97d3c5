// The web client's files (web/), built in memory the first time the page is asked for:
// esbuild bundles web/src/main.ts (with the SDK from sdk/src) into app.js and web/sw.ts into
// sw.js, minified; app.css and index.html are read as they are. Each file is kept with its
// gzip and brotli forms and an ETag. Building on demand keeps the install one command
// (no build step before `npm start`) and costs nothing to a server no browser visits.
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { brotliCompressSync, constants, gzipSync } from 'node:zlib'
import { build, stop } from 'esbuild'

export interface WebAsset {
  contentType: string
  etag: string
  identity: Buffer
  gzip: Buffer
  br: Buffer
}

const WEB_DIR = fileURLToPath(new URL('../web/', import.meta.url))

function asset(contentType: string, content: Buffer | string): WebAsset {
  const identity = Buffer.from(content)
  return {
    contentType,
    etag: `"${createHash('sha256').update(identity).digest('base64url').slice(0, 22)}"`,
    identity,
    gzip: gzipSync(identity, { level: 9 }),
    br: brotliCompressSync(identity, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }),
  }
}

async function bundle(entry: string, format: 'esm' | 'iife'): Promise<string> {
  const result = await build({
    entryPoints: [`${WEB_DIR}${entry}`],
    bundle: true,
    format,
    minify: true,
    target: ['es2022', 'chrome111', 'firefox111', 'safari16'],
    write: false,
    logLevel: 'silent',
    legalComments: 'none',
  })
  return result.outputFiles[0]!.text
}

async function buildAssets(): Promise<Map<string, WebAsset>> {
  const [app, serviceWorker, css, html] = await Promise.all([
    bundle('src/main.ts', 'esm'),
    bundle('sw.ts', 'iife'),
    readFile(`${WEB_DIR}app.css`),
    readFile(`${WEB_DIR}index.html`),
  ]).finally(stop) // esbuild's child process is needed no more: the files are kept
  return new Map([
    ['/', asset('text/html; charset=utf-8', html)],
    ['/app.js', asset('text/javascript; charset=utf-8', app)],
    ['/sw.js', asset('text/javascript; charset=utf-8', serviceWorker)],
    ['/app.css', asset('text/css; charset=utf-8', css)],
  ])
}

let built: Promise<Map<string, WebAsset>> | undefined

/** The web client's files by URL path, built once per process. */
export function webAssets(): Promise<Map<string, WebAsset>> {
  built ??= buildAssets().catch((error) => {
    built = undefined // a later request tries again (a file being edited, say)
    throw error
  })
  return built
}

/** The paths the web client is served on. */
export const WEB_PATHS = ['/', '/app.js', '/sw.js', '/app.css']
