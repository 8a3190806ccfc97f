import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { CumulativeSampler } from '../../src/core/cumulative-sampler.js';
import { fmix32, fnv1a32, hashText } from '../../src/core/hash.js';
import { createRng } from '../../src/core/rng.js';

describe('the hash family', () => {
  test('FNV-1a matches the published 32-bit test vectors', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  test('murmur3 finaliser: known values, and 0 is its fixed point', () => {
    expect(fmix32(0)).toBe(0);
    expect(fmix32(1)).toBe(0x514e28b7);
    expect(hashText('198.18.0.1\u00001')).toBe(fmix32(fnv1a32('198.18.0.1\u00001')));
  });

  test.prop([fc.integer({ min: -(2 ** 31), max: 2 ** 33 })])(
    'fmix32 reads its input modulo 2^32 and returns an unsigned 32-bit integer',
    (x) => {
      const h = fmix32(x);
      expect(h).toBe(fmix32(x >>> 0));
      expect(Number.isInteger(h) && h >= 0 && h < 2 ** 32).toBe(true);
    },
  );
});

describe('the cumulative sampler', () => {
  test.prop([fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 50 }), fc.string()])(
    'draws only items with positive weight, in proportion to weight',
    (weights, seed) => {
      fc.pre(weights.some((w) => w > 0));
      const items = weights.map((_, i) => i + 1);
      const sampler = new CumulativeSampler(items, (i) => weights[i - 1]!);
      const rng = createRng(seed);
      for (let k = 0; k < 200; k++) expect(weights[sampler.draw(rng) - 1]).toBeGreaterThan(0);
    },
  );

  test('shares follow the weights', () => {
    const sampler = new CumulativeSampler([10, 20, 30], (x) => x);
    const rng = createRng('shares');
    const n = new Map<number, number>();
    for (let k = 0; k < 60000; k++) {
      const x = sampler.draw(rng);
      n.set(x, (n.get(x) ?? 0) + 1);
    }
    expect(n.get(10)! / 60000).toBeCloseTo(1 / 6, 1);
    expect(n.get(30)! / 60000).toBeCloseTo(1 / 2, 1);
  });

  test.prop([fc.array(fc.integer({ min: 0, max: 100 }), { minLength: 1, maxLength: 40 }), fc.nat(45), fc.string()])(
    'drawFrom(start) never returns an item before start while the rest has weight, and drawFrom(0) is draw',
    (weights, start, seed) => {
      const items = weights.map((_, i) => i);
      const sampler = new CumulativeSampler(items, (i) => weights[i]!);
      const a = createRng(seed);
      const restHasWeight = weights.slice(start).some((w) => w > 0);
      for (let k = 0; k < 100; k++) {
        const x = sampler.drawFrom(a, start);
        if (restHasWeight) {
          expect(x).toBeGreaterThanOrEqual(start);
          expect(weights[x]).toBeGreaterThan(0);
        } else expect(x).toBe(items.length - 1);
        expect(sampler.drawFrom(createRng(`${seed}/${k}`), 0)).toBe(sampler.draw(createRng(`${seed}/${k}`)));
      }
    },
  );

  test('drawFrom(start) draws the rest in proportion to its weights (the draw conditioned on skipping the head)', () => {
    const sampler = new CumulativeSampler([1, 2, 3, 4], (x) => x * 10);
    const rng = createRng('conditioned');
    const n = new Map<number, number>();
    for (let k = 0; k < 70000; k++) {
      const x = sampler.drawFrom(rng, 1);
      n.set(x, (n.get(x) ?? 0) + 1);
    }
    expect(n.has(1)).toBe(false);
    expect(n.get(2)! / 70000).toBeCloseTo(2 / 9, 1);
    expect(n.get(4)! / 70000).toBeCloseTo(4 / 9, 1);
  });
});
