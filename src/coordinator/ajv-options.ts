import { AjvCompiler } from '@fastify/ajv-compiler';
import { SerializerSelector } from '@fastify/fast-json-stringify-compiler';

/**
 * How the server's ajv validates requests (fastify's `ajv.customOptions`): no additional
 * properties removed (they are refused), arrays coerced from single values, schema defaults
 * applied, the first error only. Shared by the routes and the per-result check of a result
 * batch, so both refuse and accept exactly the same input.
 */
export const serverAjvOptions = { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } as const;

/** A compiled request validator, as fastify's ajv compiler returns it. */
export interface Validator {
  (data: unknown): boolean;
  errors?: Array<{ instancePath: string; message?: string }> | null;
}

type ValidatorFactory = ReturnType<typeof AjvCompiler>;
type RouteValidatorCompiler = ReturnType<ValidatorFactory>;
type SerializerFactory = ReturnType<typeof SerializerSelector>;
type RouteSerializerCompiler = ReturnType<SerializerFactory>;

/**
 * Keep what a route compiler builds, per options and schema text, for the life of the process.
 * Route schemas are plain JSON without `$id` or references (schemas shared through
 * `addSchema` make a factory compile as fastify would), so equal text means an equal validator
 * or serializer; many are written inline in the route functions, hence text, not identity.
 */
function keptPerSchema<Route extends { schema?: unknown }, Built>(
  compile: (route: Route) => Built,
  cache: Map<string, Built>,
  optionsKey: string,
): (route: Route) => Built {
  return (route) => {
    const key = `${optionsKey}\u0000${JSON.stringify(route.schema) ?? ''}`;
    let built = cache.get(key);
    if (built === undefined) cache.set(key, (built = compile(route)));
    return built;
  };
}

const hasShared = (externalSchemas: unknown) =>
  typeof externalSchemas === 'object' && externalSchemas !== null && Object.keys(externalSchemas).length > 0;

const validatorPool = AjvCompiler();
const validators = new Map<string, ReturnType<RouteValidatorCompiler>>();

/**
 * fastify's own validator compiler (`@fastify/ajv-compiler`, its default), with what it compiles
 * kept for the life of the process instead of one app: a second app in the same process (the
 * tests build hundreds) reuses the first one's validators instead of compiling all of them again
 * (~100 ms of ajv per app). The same cache serves a result batch's per-result check, so the
 * single-result route and the batch share one compiled validator.
 */
export const sharedValidatorCompiler: ValidatorFactory = (externalSchemas, options) => {
  const build = validatorPool(externalSchemas, options);
  return hasShared(externalSchemas) ? build : keptPerSchema(build, validators, JSON.stringify(options));
};

/** A validator for one schema, compiled by the routes' compiler with the routes' options. */
export function compileServerValidator(schema: unknown): Validator {
  const build = sharedValidatorCompiler({}, { customOptions: { ...serverAjvOptions } }) as unknown as (route: {
    schema: unknown;
  }) => Validator;
  return build({ schema });
}

const serializers = new Map<string, ReturnType<RouteSerializerCompiler>>();

/** fastify's own response serializer compiler (`@fastify/fast-json-stringify-compiler`), kept likewise (~30 ms per app). */
export const sharedSerializerCompiler: SerializerFactory = (externalSchemas, options) => {
  const build = SerializerSelector()(externalSchemas, options);
  return hasShared(externalSchemas) ? build : keptPerSchema(build, serializers, JSON.stringify(options ?? {}));
};
