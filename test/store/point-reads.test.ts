import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pointReads } from '../../src/store/postgres-database.js';

describe('pointReads', () => {
  it('answers reads started together with one load, each with its own row (undefined when missing)', async () => {
    const loads: string[][] = [];
    const read = pointReads<string, number>(async (keys) => {
      loads.push([...keys]);
      return new Map(keys.filter((k) => k !== 'missing').map((k) => [k, k.length]));
    });
    expect(await Promise.all([read('a'), read('bbb'), read('missing'), read('a')])).toEqual([1, 3, undefined, 1]);
    expect(loads).toEqual([['a', 'bbb', 'missing', 'a']]);
    // A read after the group settled is a load of its own (no cache: it sees the rows as they are).
    expect(await read('cc')).toBe(2);
    expect(loads).toHaveLength(2);
  });

  it('fails every read of a group whose load fails, with that error, and recovers for the next', async () => {
    let fail = true;
    const read = pointReads<string, string>(async (keys) => {
      if (fail) throw new Error('no connection');
      return new Map(keys.map((k) => [k, k]));
    });
    const outcomes = await Promise.allSettled([read('a'), read('b')]);
    expect(outcomes.map((o) => (o.status === 'rejected' ? (o.reason as Error).message : o.value))).toEqual([
      'no connection',
      'no connection',
    ]);
    fail = false;
    expect(await read('c')).toBe('c');
  });

  it('gives each caller exactly its own key, however reads are grouped', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(fc.string({ maxLength: 4 }), { maxLength: 20 }), { maxLength: 5 }), async (waves) => {
        const read = pointReads<string, string>(async (keys) => new Map(keys.filter((k) => k.length % 2 === 0).map((k) => [k, `v:${k}`])));
        for (const wave of waves) {
          const got = await Promise.all(wave.map((k) => read(k)));
          expect(got).toEqual(wave.map((k) => (k.length % 2 === 0 ? `v:${k}` : undefined)));
        }
      }),
    );
  });
});
