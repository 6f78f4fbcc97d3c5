// Writes sdk/src/api.ts: the `paths` types openapi-typescript generates from the OpenAPI
// document. One function for everyone who generates them: `npm run openapi` (after it
// wrote openapi/openapi.json), the package's own `npm run generate`, and
// test/sdk.test.ts, which fails while the committed file differs from what this makes of
// the document the server serves.
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath, pathToFileURL } from 'node:url'
import openapiTS, { astToString } from 'openapi-typescript'

export const DOCUMENT_PATH = fileURLToPath(new URL('../../openapi/openapi.json', import.meta.url))
export const TYPES_PATH = fileURLToPath(new URL('../src/api.ts', import.meta.url))

const HEADER = `// Generated from openapi/openapi.json by openapi-typescript: do not edit.
// Regenerate with \`npm run openapi\` at the repository's root.

`

/** The text of sdk/src/api.ts for `document` (the parsed OpenAPI document). */
export async function generateTypes(document: unknown): Promise<string> {
  return HEADER + astToString(await openapiTS(JSON.stringify(document)))
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await writeFile(TYPES_PATH, await generateTypes(JSON.parse(await readFile(DOCUMENT_PATH, 'utf8'))))
  console.log('wrote sdk/src/api.ts')
}
