// Request validation and response serialization. Bodies are JSON and validated strictly:
// no type coercion, so `"5"` is not an id. Query strings arrive as text and are coerced
// (`?id=5` is the number 5).
//
// Both are compiled once per process, not once per app: the schemas are module constants,
// so ajv's cache (keyed by the schema object) and the serializer cache below serve every
// app built in the process. A server builds one; the tests build hundreds, and compiling
// every route's schemas took a quarter of a second each time.
import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'
import fastJsonStringify from 'fast-json-stringify'
import type { FastifySchemaCompiler, FastifySerializerCompiler } from 'fastify'

function createAjv(coerceTypes: boolean) {
  // verbose: an error carries its schema, so a oneOf can name its alternatives.
  const options: Options = { coerceTypes, useDefaults: true, removeAdditional: false, allErrors: false, strict: false, verbose: true }
  const ajv = new Ajv(options)
  addFormats.default(ajv)
  return ajv
}

const strictAjv = createAjv(false)
const coercingAjv = createAjv(true)

export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) =>
  (httpPart === 'body' ? strictAjv : coercingAjv).compile(schema as object)

/** A body validator that is also a type guard (the wiki dialect's commands). */
export function compileBodyValidator<T>(schema: object): ValidateFunction<T> {
  return strictAjv.compile<T>(schema)
}

/**
 * One clear sentence for a failed validation: the first problem, naming the field
 * (`body/msg must NOT have fewer than 1 characters`, `body has an unknown field "x"`,
 * `body must have exactly one of to_uid, room_id`).
 */
export function describeValidationErrors(errors: ErrorObject[] | null | undefined, dataVar: string): string {
  const error = errors?.find((e) => e.keyword === 'oneOf') ?? errors?.[0]
  if (!error) return `${dataVar} is invalid`
  const at = `${dataVar}${error.instancePath}`
  switch (error.keyword) {
    case 'additionalProperties':
      return `${at} has an unknown field "${error.params.additionalProperty}"`
    case 'oneOf': {
      const names = Array.isArray(error.schema) ? error.schema.flatMap((branch: { required?: string[] }) => branch.required ?? []) : []
      return names.length > 0 ? `${at} must have exactly one of ${names.join(', ')}` : `${at} ${error.message}`
    }
    case 'const':
      return `${at} must be ${JSON.stringify(error.params.allowedValue)}`
    case 'enum':
      return `${at} must be one of ${(error.params.allowedValues as unknown[]).map((value) => JSON.stringify(value)).join(', ')}`
    default:
      return `${at} ${error.message}`
  }
}

const serializers = new WeakMap<object, (data: unknown) => string>()

export const serializerCompiler: FastifySerializerCompiler<unknown> = ({ schema }) => {
  let serialize = serializers.get(schema as object)
  if (!serialize) {
    serialize = fastJsonStringify(schema as object) as (data: unknown) => string
    serializers.set(schema as object, serialize)
  }
  return serialize
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
