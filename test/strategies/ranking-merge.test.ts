import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { PortRanges } from '../../src/core/ports.js';
import { type Ranking, addByScore } from '../../strategies/cooccurrence/ranking.js';
import { PortPicker } from '../../strategies/port-picker.js';
import type { CommonOptions, RoundContext } from '../../strategies/types.js';
import { hostContext } from '../helpers/host-context.js';

/**
 * The k-way merge as first written: every head re-checked at every step (kept here as the
 * reference; addByScore re-checks only the heads equal to the port just picked).
 */
function reference(picker: PortPicker, rankings: readonly Ranking[], count = Infinity): number {
  const cursor = rankings.map(() => 0);
  let added = 0;
  while (added < count && !picker.full) {
    let pick = -1;
    let top = -Infinity;
    for (let r = 0; r < rankings.length; r++) {
      const ranking = rankings[r]!;
      while (
        cursor[r]! < ranking.ports.length &&
        (!picker.canTake(ranking.ports[cursor[r]!]!) || (ranking.skip !== undefined && ranking.skip(ranking.ports[cursor[r]!]!)))
      )
        cursor[r]!++;
      const i = cursor[r]!;
      const score = i < ranking.ports.length ? ranking.scores[i]! * (ranking.scale ?? 1) : -Infinity;
      if (score > top) {
        top = score;
        pick = r;
      }
    }
    if (pick < 0) break;
    if (picker.add(rankings[pick]!.ports[cursor[pick]!]!)) added++;
    cursor[pick]!++;
  }
  return added;
}

// Scores from a small set, so that ties between rankings (and within one) are common.
const rankingArb = fc
  .record({
    entries: fc.array(fc.tuple(fc.integer({ min: 1, max: 40 }), fc.constantFrom(0, 0.1, 0.25, 0.5, 1)), { maxLength: 30 }),
    scale: fc.option(fc.constantFrom(0.5, 1, 2), { nil: undefined }),
    skip: fc.uniqueArray(fc.integer({ min: 1, max: 40 }), { maxLength: 8 }),
  })
  .map(({ entries, scale, skip }): Ranking => {
    const sorted = [...entries].sort((a, b) => b[1] - a[1]);
    const skipped = new Set(skip);
    return {
      ports: sorted.map((e) => e[0]),
      scores: sorted.map((e) => e[1]),
      ...(scale !== undefined ? { scale } : {}),
      ...(skip.length > 0 ? { skip: (p: number) => skipped.has(p) } : {}),
    };
  });

describe('addByScore (the k-way merge of rankings)', () => {
  test.prop([
    fc.array(rankingArb, { maxLength: 4 }),
    fc.integer({ min: 0, max: 25 }),
    fc.option(fc.integer({ min: 0, max: 25 }), { nil: undefined }),
    fc.uniqueArray(fc.integer({ min: 1, max: 40 }), { maxLength: 10 }),
    fc.uniqueArray(fc.integer({ min: 1, max: 40 }), { maxLength: 5 }),
  ])('picks the same ports in the same order as re-checking every head at every step', (rankings, limit, count, probed, exclude) => {
    const options: CommonOptions = { budget: 25, maxPerHost: 65535, mustHave: [], exclude, pseudoThreshold: 200 };
    const round: RoundContext = {
      ...hostContext({ probeable: PortRanges.parse('1-35') }),
      round: 1,
      probed,
      found: [],
      remaining: 25,
    };
    const a = new PortPicker(round, options, limit);
    const addedA = addByScore(a, rankings, count);
    const portsA = [...a.ports];
    const b = new PortPicker(round, options, limit);
    const addedB = reference(b, rankings, count);
    expect(portsA).toEqual([...b.ports]);
    expect(addedA).toBe(addedB);
  });
});
