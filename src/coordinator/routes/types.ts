import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyTypeProvider,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import type { FromSchema, JSONSchema } from 'json-schema-to-ts';

/**
 * fastify's type provider for our routes: a request's body, query string and params are typed from
 * the route's JSON schema (json-schema-to-ts `FromSchema`, as `@fastify/type-provider-json-schema-to-ts`
 * does), so a route never restates a type its schema already declares. Replies stay unchecked by
 * the compiler: most response schemas are open objects (`additionalProperties` allowed) that
 * FromSchema would turn into index signatures no store type has; fast-json-stringify still
 * serialises every reply through its schema at run time.
 */
export interface RequestTypeProvider extends FastifyTypeProvider {
  validator: this['schema'] extends JSONSchema ? FromSchema<this['schema']> : unknown;
  serializer: unknown;
}

/** The app as routes see it (see `RequestTypeProvider`). */
export type RouteApp = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  RequestTypeProvider
>;
