import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { type RetentionRule, type RetentionVisit, checkRetention, planHostRetention } from '../../src/coordinator/retention.js';
import { isPortbanditError } from '../../src/core/errors.js';

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 1, 12, 0, 0);

/** A valid rule: optional fields, thinning weekly no earlier than daily, daily before keepDays. */
const ruleArb: fc.Arbitrary<RetentionRule> = fc
  .record(
    {
      keepLast: fc.integer({ min: 1, max: 12 }),
      keepDays: fc.integer({ min: 1, max: 400 }),
      dailyAfterDays: fc.integer({ min: 0, max: 120 }),
      weeklyAfterDays: fc.integer({ min: 0, max: 300 }),
    },
    { requiredKeys: [] },
  )
  .filter(
    (r) =>
      (r.dailyAfterDays === undefined || r.weeklyAfterDays === undefined || r.weeklyAfterDays >= r.dailyAfterDays) &&
      (r.keepDays === undefined || r.dailyAfterDays === undefined || r.dailyAfterDays < r.keepDays),
  );

const historyArb = fc
  .array(
    fc.record({
      ageMs: fc.oneof(fc.integer({ min: 0, max: 400 * DAY }), fc.integer({ min: 0, max: 3 * DAY })),
      tag: fc.constantFrom('ruled', 'ruled', 'ruled', 'free'),
      down: fc.integer({ min: 0, max: 4 }).map((n) => n === 0),
      group: fc.constantFrom(undefined, undefined, 'internal', 'external'),
      referenced: fc.boolean(),
    }),
    { minLength: 1, maxLength: 60 },
  )
  .map((rows) =>
    rows.map((r, i) => ({
      visit: {
        scanId: `s${String(i).padStart(3, '0')}`,
        finishedAt: NOW - r.ageMs,
        tags: [r.tag],
        down: r.down,
        ...(r.group !== undefined ? { group: r.group } : {}),
      } satisfies RetentionVisit,
      referenced: r.referenced && i % 3 === 0,
    })),
  );

function newestFirst(a: RetentionVisit, b: RetentionVisit): number {
  return a.finishedAt !== b.finishedAt ? b.finishedAt - a.finishedAt : a.scanId < b.scanId ? 1 : -1;
}

/** The thinning bucket of a visit under a rule, restated from docs/coordinator.md. */
function bucketOf(rule: RetentionRule, v: RetentionVisit): string | undefined {
  const age = NOW - v.finishedAt;
  if (rule.weeklyAfterDays !== undefined && age > rule.weeklyAfterDays * DAY) return `w${Math.floor(v.finishedAt / (7 * DAY))}`;
  if (rule.dailyAfterDays !== undefined && age > rule.dailyAfterDays * DAY) return `d${Math.floor(v.finishedAt / DAY)}`;
  return undefined;
}

describe('retention plan over random histories', () => {
  it('keeps the latest, the latest answered and every referenced visit; keeps the newest N; drops only what the rules allow; thins to one visit per day/week bucket', () => {
    fc.assert(
      fc.property(historyArb, ruleArb, (rows, rule) => {
        const visits = rows.map((r) => r.visit);
        const protect = new Set(rows.filter((r) => r.referenced).map((r) => r.visit.scanId));
        const ruleOf = (tags: readonly string[]) => (tags.includes('ruled') ? rule : undefined);
        const { keep, drop } = planHostRetention(visits, ruleOf, protect, NOW);
        const kept = new Set(keep.map((v) => v.scanId));
        const dropped = new Set(drop.map((v) => v.scanId));

        // A partition of the history.
        expect(kept.size + dropped.size).toBe(visits.length);
        for (const id of kept) expect(dropped.has(id)).toBe(false);

        const sorted = [...visits].sort(newestFirst);
        const latest = sorted[0]!;
        const latestAnswered = sorted.find((v) => !v.down);
        expect(kept.has(latest.scanId)).toBe(true);
        if (latestAnswered) expect(kept.has(latestAnswered.scanId)).toBe(true);
        for (const id of protect) expect(kept.has(id), `event-referenced ${id} dropped`).toBe(true);
        const groupBaselines = new Set<RetentionVisit>(
          ['internal', 'external'].map((g) => sorted.find((v) => v.group === g && !v.down)).filter((v) => v !== undefined),
        );
        for (const v of groupBaselines) expect(kept.has(v.scanId), `the latest answered visit from ${v.group} dropped`).toBe(true);

        const forced = (v: RetentionVisit, rank: number) =>
          rank === 0 ||
          v === latestAnswered ||
          groupBaselines.has(v) ||
          protect.has(v.scanId) ||
          ruleOf(v.tags) === undefined ||
          (rule.keepLast !== undefined && rank < rule.keepLast) ||
          Object.keys(rule).length === 0;
        const thins = rule.dailyAfterDays !== undefined || rule.weeklyAfterDays !== undefined;
        const buckets = new Map<string, Array<{ v: RetentionVisit; rank: number; forced: boolean }>>();
        sorted.forEach((v, rank) => {
          const isForced = forced(v, rank);
          if (isForced) expect(kept.has(v.scanId)).toBe(true);
          const age = NOW - v.finishedAt;
          const eligible = rule.keepDays !== undefined ? age <= rule.keepDays * DAY : thins;
          if (!isForced && !eligible) expect(dropped.has(v.scanId), `${v.scanId} (age ${age / DAY} d) outlived its rule`).toBe(true);
          const bucket = ruleOf(v.tags) ? bucketOf(rule, v) : undefined;
          if (!isForced && eligible && bucket === undefined)
            expect(kept.has(v.scanId), `${v.scanId} is in the un-thinned window`).toBe(true);
          if (bucket !== undefined && (isForced || eligible))
            buckets.set(bucket, [...(buckets.get(bucket) ?? []), { v, rank, forced: isForced }]);
        });
        for (const [bucket, members] of buckets) {
          // Some visit of every thinned bucket survives; beyond forced ones, at most one: the newest, unless a newer forced one holds the bucket.
          expect(
            members.some((m) => kept.has(m.v.scanId)),
            `bucket ${bucket} lost every visit`,
          ).toBe(true);
          const chosen = members.filter((m) => !m.forced && kept.has(m.v.scanId));
          expect(chosen.length).toBeLessThanOrEqual(1);
          if (chosen.length === 1) {
            expect(members[0]!.v).toBe(chosen[0]!.v);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('keeps everything without a rule, with an empty rule, and never drops a lone visit', () => {
    fc.assert(
      fc.property(historyArb, (rows) => {
        const visits = rows.map((r) => r.visit);
        expect(planHostRetention(visits, () => undefined, new Set(), NOW).drop).toEqual([]);
        expect(planHostRetention(visits, () => ({}), new Set(), NOW).drop).toEqual([]);
        expect(planHostRetention(visits.slice(0, 1), () => ({ keepDays: 1, keepLast: 1 }), new Set(), NOW + 1000 * DAY).drop).toEqual([]);
      }),
    );
  });

  it('refuses rules that contradict themselves, naming the field', () => {
    const refused = (rule: RetentionRule, field: string) => {
      try {
        checkRetention(rule, 'policy(dmz).retention');
        return false;
      } catch (error) {
        return isPortbanditError(error, 'PB_ERR_RETENTION_RULE') && error.where === `policy(dmz).retention.${field}`;
      }
    };
    expect(refused({ dailyAfterDays: 30, weeklyAfterDays: 7 }, 'weeklyAfterDays')).toBe(true);
    expect(refused({ keepDays: 30, dailyAfterDays: 30 }, 'dailyAfterDays')).toBe(true);
    expect(refused({ keepLast: 0 }, 'keepLast')).toBe(true);
    expect(refused({ keepDays: 1.5 }, 'keepDays')).toBe(true);
    expect(checkRetention({ keepLast: 5, keepDays: 90, dailyAfterDays: 7, weeklyAfterDays: 30 }, 'r')).toEqual({
      keepLast: 5,
      keepDays: 90,
      dailyAfterDays: 7,
      weeklyAfterDays: 30,
    });
  });
});
