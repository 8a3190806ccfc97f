import { isIPv4, isIPv6 } from 'node:net';

type Schema = Record<string, unknown>;

const IGNORED = new Set(['$schema', '$id', 'title', 'description', 'examples', '$defs']);

/**
 * A small JSON Schema (2020-12) checker for exactly the keywords docs/recording.schema.json
 * uses; no validator package is installed, and an unknown keyword throws so the schema cannot
 * silently outgrow this checker. Returns the JSON pointers of failures (empty = valid).
 */
export function checkSchema(root: Schema, value: unknown, schema: Schema = root, at = ''): string[] {
  const errors: string[] = [];
  const fail = (what: string) => errors.push(`${at || '/'}: ${what}`);
  for (const [key, rule] of Object.entries(schema)) {
    if (IGNORED.has(key)) continue;
    switch (key) {
      case '$ref': {
        const path = (rule as string).replace(/^#\//, '').split('/');
        let target: unknown = root;
        for (const part of path) target = (target as Schema)[part];
        errors.push(...checkSchema(root, value, target as Schema, at));
        break;
      }
      case 'anyOf':
        if (!(rule as Schema[]).some((s) => checkSchema(root, value, s, at).length === 0)) fail('matches none of anyOf');
        break;
      case 'type': {
        const ok =
          rule === 'object'
            ? typeof value === 'object' && value !== null && !Array.isArray(value)
            : rule === 'array'
              ? Array.isArray(value)
              : rule === 'integer'
                ? Number.isInteger(value)
                : rule === 'string'
                  ? typeof value === 'string'
                  : (() => {
                      throw new Error(`type ${String(rule)} not supported`);
                    })();
        if (!ok) fail(`expected ${String(rule)}`);
        break;
      }
      case 'const':
        if (value !== rule) fail(`expected ${JSON.stringify(rule)}`);
        break;
      case 'minimum':
        if (typeof value === 'number' && value < (rule as number)) fail(`below ${String(rule)}`);
        break;
      case 'maximum':
        if (typeof value === 'number' && value > (rule as number)) fail(`above ${String(rule)}`);
        break;
      case 'minLength':
        if (typeof value === 'string' && [...value].length < (rule as number)) fail('too short');
        break;
      case 'pattern':
        if (typeof value === 'string' && !new RegExp(rule as string, 'u').test(value)) fail(`does not match ${String(rule)}`);
        break;
      case 'format':
        if (typeof value === 'string' && !(rule === 'ipv4' ? isIPv4(value) : rule === 'ipv6' ? isIPv6(value) : false))
          fail(`not ${String(rule)}`);
        break;
      case 'required':
        if (typeof value === 'object' && value !== null) for (const k of rule as string[]) if (!(k in value)) fail(`missing ${k}`);
        break;
      case 'properties':
        if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
          for (const [k, s] of Object.entries(rule as Record<string, Schema>)) {
            if (k in value) errors.push(...checkSchema(root, (value as Schema)[k], s, `${at}/${k}`));
          }
        }
        break;
      case 'propertyNames':
        if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
          for (const k of Object.keys(value)) errors.push(...checkSchema(root, k, rule as Schema, `${at}/${k}(name)`));
        }
        break;
      case 'additionalProperties': {
        // Only the form used here: a schema applied to properties not listed in `properties`.
        const listed = new Set(Object.keys((schema.properties as Schema | undefined) ?? {}));
        if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
          for (const [k, v] of Object.entries(value))
            if (!listed.has(k)) errors.push(...checkSchema(root, v, rule as Schema, `${at}/${k}`));
        }
        break;
      }
      case 'items':
        if (Array.isArray(value)) value.forEach((v, i) => errors.push(...checkSchema(root, v, rule as Schema, `${at}/${i}`)));
        break;
      case 'uniqueItems':
        if (rule === true && Array.isArray(value) && new Set(value.map((v) => JSON.stringify(v))).size !== value.length)
          fail('items not unique');
        break;
      default:
        throw new Error(`mini-schema: keyword "${key}" is not supported; extend test/recording/mini-schema.ts`);
    }
  }
  return errors;
}
