/**
 * How the server's ajv validates requests (fastify's `ajv.customOptions`): no additional
 * properties removed (they are refused), arrays coerced from single values, schema defaults
 * applied, the first error only. Shared by the routes and the per-result check of a result
 * batch, so both refuse and accept exactly the same input.
 */
export const serverAjvOptions = { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } as const;
