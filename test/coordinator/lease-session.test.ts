import { fc, test } from '@fast-check/vitest';
import { expect } from 'vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import { type LeaseSession, leaseSessionRefs, readLeaseSession } from '../../src/coordinator/lease-session.js';
import { MAX_LIKELY_PORTS } from '../../src/protocol/index.js';

const ports = fc.uniqueArray(fc.integer({ min: 1, max: 65535 }), { maxLength: 20 });
const id = fc.stringMatching(/^[a-z0-9_.-]{1,24}$/);
const session: fc.Arbitrary<LeaseSession> = fc.record(
  {
    state: fc.record(
      { allowance: fc.nat(5000), round: fc.nat(8), probed: ports, found: ports, pending: ports, done: fc.boolean(), unknown: ports },
      { requiredKeys: ['allowance', 'round', 'probed', 'found', 'pending', 'done'] },
    ),
    policy: fc.oneof(fc.constant(''), id),
    epoch: fc.nat(),
    prefix: fc.constantFrom('198.18.0.0/24', '127.0.0.0/24'),
    previousOpen: ports,
    previousEpoch: fc.integer({ min: -1, max: 1000 }),
    visitId: id,
    baselineScanId: id,
    priorScanId: id,
    group: id,
    likely: fc.uniqueArray(fc.integer({ min: 1, max: 65535 }), { minLength: 1, maxLength: MAX_LIKELY_PORTS }),
    manual: fc.constant(true as const),
  },
  { requiredKeys: ['state', 'policy', 'epoch', 'prefix', 'previousOpen', 'previousEpoch'] },
);

test.prop([session])('a session written as JSON reads back equal', (s) => {
  expect(readLeaseSession(JSON.parse(JSON.stringify(s)), 'lease l1')).toEqual(s);
  expect(leaseSessionRefs(s)).toEqual({
    ...(s.visitId ? { visitId: s.visitId } : {}),
    ...(s.baselineScanId ? { baselineScanId: s.baselineScanId } : {}),
    ...(s.priorScanId ? { priorScanId: s.priorScanId } : {}),
  });
});

const fields = [
  'state',
  'policy',
  'epoch',
  'prefix',
  'previousOpen',
  'previousEpoch',
  'state.allowance',
  'state.round',
  'state.probed',
  'state.found',
  'state.pending',
  'state.done',
] as const;
const wrong = fc.constantFrom<unknown>(null, 'x', 3, true, [1, 'a'], {}, undefined);
/** The one kind of value each field takes (a draw of that kind is not damage). */
const kindOf: Record<(typeof fields)[number], string> = {
  state: 'object',
  policy: 'string',
  epoch: 'number',
  prefix: 'string',
  previousOpen: 'array',
  previousEpoch: 'number',
  'state.allowance': 'number',
  'state.round': 'number',
  'state.probed': 'array',
  'state.found': 'array',
  'state.pending': 'array',
  'state.done': 'boolean',
};
const kind = (v: unknown) => (Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v);

test.prop([session, fc.constantFrom(...fields), wrong])(
  'a session with a required field missing or of the wrong type is refused with PB_ERR_STORE naming the field',
  (s, field, value) => {
    const damaged = structuredClone(s) as unknown as Record<string, Record<string, unknown>>;
    const [top, inner] = field.split('.') as [string, string | undefined];
    fc.pre(kind(value) !== kindOf[field]);
    if (inner === undefined) (damaged as Record<string, unknown>)[top] = value;
    else damaged[top]![inner] = value;
    let error: unknown;
    try {
      readLeaseSession(damaged, 'lease l2');
    } catch (e) {
      error = e;
    }
    expect(isPortbanditError(error, 'PB_ERR_STORE') && error.where === 'lease l2').toBe(true);
    expect((error as Error).message).toContain(field === 'state' ? 'state' : field);
  },
);

test('non-object sessions are refused, and refs ignore what is not a string', () => {
  for (const v of [null, 3, 'x', []]) expect(() => readLeaseSession(v, 'q1')).toThrow(/session is not an object/);
  expect(leaseSessionRefs({ visitId: 3, baselineScanId: 's1' })).toEqual({ baselineScanId: 's1' });
  expect(leaseSessionRefs(undefined)).toEqual({});
});

test.prop([
  session,
  fc.constantFrom<unknown>(
    '22',
    [0],
    [65536],
    [1.5],
    ['a'],
    Array.from({ length: MAX_LIKELY_PORTS + 1 }, (_, i) => i + 1),
  ),
])('a session whose likely ports are not a short list of ports is refused, naming `likely`', (s, likely) => {
  expect(() => readLeaseSession({ ...s, likely }, 'q3')).toThrow(/likely is not a list of at most 16 ports/);
});

test.prop([session, fc.constantFrom<unknown>(false, 'true', 1, null, {})])(
  'a session whose manual mark is anything but true is refused, naming `manual`',
  (s, manual) => {
    expect(() => readLeaseSession({ ...s, manual }, 'q4')).toThrow(/manual is not true when present/);
  },
);
