import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { PortRanges } from '../../src/core/index.js';
import { unionSpec } from '../../src/coordinator/visit.js';

const port = fc.integer({ min: 1, max: 65535 });
const range = fc.tuple(port, port).map(([a, b]): [number, number] => (a <= b ? [a, b] : [b, a]));
const spec = fc.oneof(
  fc.constant(undefined),
  fc.constant(''),
  fc.array(range, { minLength: 1, maxLength: 20 }).map((rs) => PortRanges.fromPairs(rs.flat()).toString()),
);

describe('a visit merges what its rounds probed (unionSpec)', () => {
  test.prop([spec, fc.array(port, { maxLength: 200 })])('equals the union taken port by port, for sorted and unsorted rounds', (a, b) => {
    const expected = PortRanges.fromPorts([...(a ? PortRanges.parse(a).toArray() : []), ...b]).toString();
    expect(unionSpec(a, b)).toBe(expected);
    expect(
      unionSpec(
        a,
        [...b].sort((x, y) => x - y),
      ),
    ).toBe(expected);
  });

  test.prop([
    fc.array(fc.constantFrom('1', '2', '9', '0', '-', ',', ' ', '65535', '65536', '70000', 'x'), { maxLength: 12 }),
    fc.array(port, { maxLength: 5 }),
  ])('reads any spec a visit may hold, canonical or not, as the full parser does (or refuses it as the parser does)', (pieces, b) => {
    const a = pieces.join('');
    let expected: string | Error;
    try {
      expected = PortRanges.fromPorts([...(a ? PortRanges.parse(a).toArray() : []), ...b]).toString();
    } catch (error) {
      expected = error as Error;
    }
    if (typeof expected === 'string') expect(unionSpec(a, b)).toBe(expected);
    else expect(() => unionSpec(a, b)).toThrow(expected.message);
  });

  test.prop([fc.array(port, { maxLength: 50 })])('keeps a visit that probed every port one range', (b) => {
    expect(unionSpec('1-65535', b)).toBe('1-65535');
  });
});
