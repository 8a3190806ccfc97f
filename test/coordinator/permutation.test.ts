import { createHash } from 'node:crypto';
import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { Permutation } from '../../src/coordinator/permutation.js';

/**
 * The permutation as first written, all in bigint: persisted cycle positions index it, so the
 * plain-number path for small domains must give exactly the same images.
 */
function reference(size: bigint, key: string): (index: bigint) => bigint {
  const mix32 = (input: number): number => {
    let x = input >>> 0;
    x ^= x >>> 16;
    x = Math.imul(x, 0x85ebca6b);
    x ^= x >>> 13;
    x = Math.imul(x, 0xc2b2ae35);
    x ^= x >>> 16;
    return x >>> 0;
  };
  const bits = Math.max(2, (size > 1n ? size - 1n : 1n).toString(2).length);
  const half = Math.ceil(bits / 2);
  const mask = (1n << BigInt(half)) - 1n;
  const digest = createHash('sha256').update(`portbandit.permutation\u0000${key}`).digest();
  const keys = Array.from({ length: 6 }, (_, r) => digest.readUInt32LE(r * 4));
  const encrypt = (x: bigint): bigint => {
    let left = x >> BigInt(half);
    let right = x & mask;
    for (const k of keys) {
      const next = left ^ (BigInt(mix32(mix32(Number(right) ^ k) + k)) & mask);
      left = right;
      right = next;
    }
    return (left << BigInt(half)) | right;
  };
  return (index) => {
    let x = index;
    do x = encrypt(x);
    while (x >= size);
    return x;
  };
}

describe('Permutation', () => {
  test.prop(
    [
      fc.bigInt({ min: 1n, max: (1n << 52n) - 1n }),
      fc.string({ maxLength: 12 }),
      fc.array(fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), { minLength: 1, maxLength: 20 }),
    ],
    { numRuns: 300 },
  )('gives the same images as the all-bigint original for domains up to 2^52', (size, key, fractions) => {
    const p = new Permutation(size, key);
    const ref = reference(size, key);
    for (const f of fractions) {
      const index = BigInt(Math.floor(f * Number(size))) % size;
      expect(p.at(index)).toBe(ref(index));
    }
  });
});
