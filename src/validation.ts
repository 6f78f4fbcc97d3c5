// Request validation. Bodies are JSON and validated strictly: no type coercion, so `"5"`
// is not an id. Query strings arrive as text and are coerced (`?id=5` is the number 5).
import { Ajv, type Options } from 'ajv'
import addFormats from 'ajv-formats'
import type { FastifySchemaCompiler } from 'fastify'

function createAjv(coerceTypes: boolean) {
  const options: Options = { coerceTypes, useDefaults: true, removeAdditional: false, allErrors: false, strict: false }
  const ajv = new Ajv(options)
  addFormats.default(ajv)
  return ajv
}

export function createValidatorCompiler(): FastifySchemaCompiler<unknown> {
  const strict = createAjv(false)
  const coercing = createAjv(true)
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema as object)
}

// NUL, or a surrogate half without its other half.
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/** Whether a parsed JSON value holds a string (or key) PostgreSQL cannot store as text. */
export function containsUnstorableText(value: unknown): boolean {
  // Iterative: a body may nest thousands of levels deep.
  const pending: unknown[] = [value]
  while (pending.length > 0) {
    const item = pending.pop()
    if (typeof item === 'string') {
      if (UNSTORABLE.test(item)) return true
    } else if (Array.isArray(item)) {
      for (const element of item) pending.push(element)
    } else if (item !== null && typeof item === 'object') {
      for (const [key, element] of Object.entries(item)) {
        if (UNSTORABLE.test(key)) return true
        pending.push(element)
      }
    }
  }
  return false
}
