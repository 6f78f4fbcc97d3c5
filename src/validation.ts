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
