import { describe, expect, test } from 'vitest';
import { serverAjvOptions, sharedSerializerCompiler, sharedValidatorCompiler } from '../../src/coordinator/ajv-options.js';
import { bearer, manualClock, openApp, tempDataDir } from './helpers.js';

const options = { customOptions: { ...serverAjvOptions } };
const route = (schema: unknown) => ({ schema, method: 'POST', url: '/x', httpPart: 'body' }) as never;
const schemaA = () => ({ type: 'object', properties: { n: { type: 'integer' } }, additionalProperties: false });

describe('validators and serializers compiled once per process', () => {
  test('equal schema text gives the one compiled validator; other text or other options a different one', () => {
    const first = sharedValidatorCompiler({}, options)(route(schemaA()));
    // Another app (another factory call) with an equal schema written anew: the same function.
    const again = sharedValidatorCompiler({}, { customOptions: { ...serverAjvOptions } })(route(schemaA()));
    expect(again).toBe(first);
    const other = sharedValidatorCompiler({}, options)(route({ ...schemaA(), required: ['n'] }));
    expect(other).not.toBe(first);
    const coercing = sharedValidatorCompiler({}, { customOptions: { ...serverAjvOptions, coerceTypes: false } })(route(schemaA()));
    expect(coercing).not.toBe(first);
    // Each still validates by its own schema and options.
    expect(first({ n: 1 })).toBe(true);
    expect(first({ n: 1, m: 2 })).toBe(false);
    expect(other({})).toBe(false);
    expect(first({ n: '3' })).toBe(true); // coerced, as the routes do
    expect(coercing({ n: '3' })).toBe(false);
  });

  test('a factory given shared schemas compiles as fastify would, not from the cache', () => {
    const shared = { 'x#': { $id: 'x#', type: 'string' } };
    const a = sharedValidatorCompiler(shared, options)(route(schemaA()));
    const b = sharedValidatorCompiler({}, options)(route(schemaA()));
    expect(a).not.toBe(b);
  });

  test('serializers: equal schema text gives the one function, which serializes by its schema', () => {
    const schema = () => ({ type: 'object', properties: { n: { type: 'integer' } } });
    const first = sharedSerializerCompiler({}, {})({ schema: schema(), method: 'GET', url: '/x', httpStatus: '200' });
    const again = sharedSerializerCompiler({}, {})({ schema: schema(), method: 'GET', url: '/y', httpStatus: '200' });
    expect(again).toBe(first);
    expect(first({ n: 2, secret: 'dropped' })).toBe('{"n":2}');
  });

  test('a second app in the process validates and refuses exactly as the first', async () => {
    const answers = [];
    for (let i = 0; i < 2; i++) {
      const data = tempDataDir();
      const app = await openApp(data.dir, manualClock().now);
      try {
        const admin = (await app.coordinator.createAdminToken('t')).token;
        const bad = await app.inject({
          method: 'POST',
          url: '/api/v1/admin/scope?list=scope',
          headers: bearer(admin),
          payload: { entries: [], extra: 1 },
        });
        const good = await app.inject({
          method: 'POST',
          url: '/api/v1/admin/scope?list=scope',
          headers: bearer(admin),
          payload: { entries: [{ range: '198.18.7.0/30' }] },
        });
        answers.push({ bad: bad.statusCode, badCode: bad.json<{ code: string }>().code, good: good.statusCode });
      } finally {
        await app.close();
        data.cleanup();
      }
    }
    expect(answers[0]).toEqual({ bad: 400, badCode: expect.any(String), good: 200 });
    expect(answers[1]).toEqual(answers[0]);
  });
});
