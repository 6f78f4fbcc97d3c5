// npm run openapi: writes openapi/openapi.json from the routes' schemas.
import { writeFile } from 'node:fs/promises'
import { formatDocument, generateOpenApiDocument } from '../openapi-document.js'

await writeFile('openapi/openapi.json', formatDocument(await generateOpenApiDocument()))
console.log('wrote openapi/openapi.json')
