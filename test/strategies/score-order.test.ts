import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { orderByScore, portSet } from '../../strategies/cooccurrence/score-order.js';

/** The order as rankings first wrote it: an index sort with a comparator. */
function reference(ports: readonly number[], scores: readonly number[]): { ports: number[]; scores: number[] } {
  const order = ports.map((_, i) => i);
  order.sort((a, b) => scores[b]! - scores[a]! || ports[a]! - ports[b]!);
  return { ports: order.map((i) => ports[i]!), scores: order.map((i) => scores[i]!) };
}

/** Entries with unique ports; scores drawn to collide: exact ties, neighbours a few ulps apart, 0 and -0. */
const entries = fc.uniqueArray(fc.integer({ min: 0, max: 65535 }), { maxLength: 300 }).chain((ports) =>
  fc.tuple(
    fc.constant(ports),
    fc.array(
      fc.oneof(
        fc.constantFrom(0, -0, 1, 0.5, 1e-300, Number.MIN_VALUE, Infinity),
        fc.double({ min: 0, max: 1, noNaN: true }),
        // Near-equal scores: 0.25 give or take a few ulps (they share the high word).
        fc.integer({ min: -40, max: 40 }).map((ulps) => 0.25 + ulps * Number.EPSILON * 0.25),
        fc.integer({ min: 0, max: 5 }).map((i) => i / 7),
      ),
      { minLength: ports.length, maxLength: ports.length },
    ),
  ),
);

describe('orderByScore', () => {
  test.prop([entries])('orders exactly as the comparator sort does (score descending, then port)', ([ports, scores]) => {
    expect(orderByScore(ports, scores, ports.length)).toEqual(reference(ports, scores));
  });

  test.prop([entries, fc.nat()])('orders the first n entries only', ([ports, scores], cut) => {
    const n = ports.length === 0 ? 0 : cut % (ports.length + 1);
    expect(orderByScore(ports, scores, n)).toEqual(reference(ports.slice(0, n), scores.slice(0, n)));
  });

  test('a long run of near-equal scores (one high word) is ordered exactly', () => {
    const ports = Array.from({ length: 200 }, (_, i) => 65535 - i * 7);
    const scores = ports.map((_, i) => 0.3 + ((i * 37) % 101) * Number.EPSILON * 0.3);
    expect(orderByScore(ports, scores, ports.length)).toEqual(reference(ports, scores));
  });

  test.prop([entries, fc.constantFrom(-1, -1e-9, Number.NaN)])(
    'a score the keys cannot carry (negative, NaN) still gets the comparator order',
    ([ports, scores], bad) => {
      fc.pre(ports.length > 0);
      const with_ = [...scores];
      with_[with_.length >> 1] = bad;
      expect(orderByScore(ports, with_, ports.length)).toEqual(reference(ports, with_));
    },
  );
});

describe('portSet', () => {
  test.prop([fc.uniqueArray(fc.integer({ min: 0, max: 65535 }), { maxLength: 200 }), fc.array(fc.integer({ min: 0, max: 65535 }))])(
    'answers as a Set of the same ports',
    (members, probes) => {
      const has = portSet(Int32Array.from(members), members.length);
      const set = new Set(members);
      for (const p of [...probes, ...members]) expect(has(p)).toBe(set.has(p));
    },
  );
});
