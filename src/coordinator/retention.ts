import { PortbanditError } from '../core/index.js';

/**
 * History retention (docs/coordinator.md, "Retention"): which visits of a host to keep. Pure:
 * the caller passes the host's visits, the rule of each visit, what is protected and `now`.
 */

/** A tag's retention rule (a policy field). Every field optional; `{}` keeps everything. */
export interface RetentionRule {
  /** The host's newest N visits are always kept. */
  readonly keepLast?: number;
  /** Visits older than this many days are dropped (unless kept by another rule). */
  readonly keepDays?: number;
  /** Thinning: past this age (days), keep one visit per UTC day (the newest of the day). */
  readonly dailyAfterDays?: number;
  /** Thinning: past this age (days), keep one visit per week (the newest of the week). */
  readonly weeklyAfterDays?: number;
}

/** What the planner needs of one visit. */
export interface RetentionVisit {
  readonly scanId: string;
  readonly finishedAt: number;
  readonly tags: readonly string[];
  /** The host did not answer (a `status: down` visit): never the baseline of the next visit. */
  readonly down: boolean;
  /** The agent group (vantage point) it was scanned from: each group's latest answered visit is a baseline. */
  readonly group?: string;
}

/** JSON schema of a retention rule (inside a policy body). */
export const retentionSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    keepLast: { type: 'integer', minimum: 1, maximum: 1_000_000 },
    keepDays: { type: 'integer', minimum: 1, maximum: 36_500 },
    dailyAfterDays: { type: 'integer', minimum: 0, maximum: 36_500 },
    weeklyAfterDays: { type: 'integer', minimum: 0, maximum: 36_500 },
  },
} as const;

const DAY_MS = 86_400_000;
const WEEK_MS = 7 * DAY_MS;

/** Validate a rule (the schema checks types; this the relations and values from the CLI). */
export function checkRetention(rule: RetentionRule, where: string): RetentionRule {
  const out: Record<string, number> = {};
  for (const [key, min] of [
    ['keepLast', 1],
    ['keepDays', 1],
    ['dailyAfterDays', 0],
    ['weeklyAfterDays', 0],
  ] as const) {
    const v = rule[key];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || v < min || v > (key === 'keepLast' ? 1_000_000 : 36_500)) {
      throw new PortbanditError('PB_ERR_RETENTION_RULE', `expected an integer ${min} or more, got ${JSON.stringify(v)}`, {
        where: `${where}.${key}`,
      });
    }
    out[key] = v;
  }
  if (out.dailyAfterDays !== undefined && out.weeklyAfterDays !== undefined && out.weeklyAfterDays < out.dailyAfterDays) {
    throw new PortbanditError(
      'PB_ERR_RETENTION_RULE',
      `weekly thinning (after ${out.weeklyAfterDays} d) cannot start before daily thinning (after ${out.dailyAfterDays} d)`,
      { where: `${where}.weeklyAfterDays` },
    );
  }
  if (out.keepDays !== undefined && out.dailyAfterDays !== undefined && out.dailyAfterDays >= out.keepDays) {
    throw new PortbanditError(
      'PB_ERR_RETENTION_RULE',
      `daily thinning after ${out.dailyAfterDays} d never applies: visits older than ${out.keepDays} d are dropped`,
      { where: `${where}.dailyAfterDays` },
    );
  }
  return out;
}

/** True when the rule can drop anything (a rule of `{}`, or none, keeps every visit). */
export function dropsAnything(rule: RetentionRule | undefined): boolean {
  return (
    rule !== undefined &&
    (rule.keepLast !== undefined || rule.keepDays !== undefined || rule.dailyAfterDays !== undefined || rule.weeklyAfterDays !== undefined)
  );
}

/** Newest first: finishedAt desc, then scanId desc (the store's order; the first is the host's latest). */
function newestFirst(a: RetentionVisit, b: RetentionVisit): number {
  if (a.finishedAt !== b.finishedAt) return b.finishedAt - a.finishedAt;
  return a.scanId < b.scanId ? 1 : a.scanId > b.scanId ? -1 : 0;
}

/**
 * Split one host's visits into kept and dropped. A visit is kept when ANY of these holds:
 * 1. it is the host's latest visit, or its latest visit in which the host answered (the next
 *    visit's baseline), or that of an agent group (the baseline of that vantage point's next
 *    visit), or its id is in `protect` (referenced by an event or a lease);
 * 2. its rule has no field that drops anything (no rule, or `{}`);
 * 3. it is among the host's `keepLast` newest visits;
 * 4. it is within `keepDays` (or the rule has no `keepDays` but thins) and thinning keeps it:
 *    younger than `dailyAfterDays` (or no thinning): kept; older: the newest visit of its UTC
 *    day is kept; older than `weeklyAfterDays`: the newest of its week (weeks counted from the
 *    Unix epoch) is kept. Buckets are per host and per stage.
 * A rule with only `keepLast` drops everything past the newest N.
 */
export function planHostRetention(
  visits: readonly RetentionVisit[],
  ruleOf: (tags: readonly string[]) => RetentionRule | undefined,
  protect: ReadonlySet<string>,
  now: number,
): { keep: RetentionVisit[]; drop: RetentionVisit[] } {
  const sorted = [...visits].sort(newestFirst);
  const latestAnswered = sorted.find((v) => !v.down);
  // Per vantage point too: a visit from group G compares with G's latest answered visit.
  const baselines = new Set<RetentionVisit>();
  const groupsSeen = new Set<string>();
  for (const v of sorted) {
    if (v.down || v.group === undefined || groupsSeen.has(v.group)) continue;
    groupsSeen.add(v.group);
    baselines.add(v);
  }
  const seenBuckets = new Set<string>();
  const keep: RetentionVisit[] = [];
  const drop: RetentionVisit[] = [];
  sorted.forEach((v, rank) => {
    const rule = ruleOf(v.tags);
    const age = now - v.finishedAt;
    const bucket = bucketOf(rule, v, age);
    let kept =
      rank === 0 ||
      v === latestAnswered ||
      baselines.has(v) ||
      protect.has(v.scanId) ||
      !dropsAnything(rule) ||
      (rule!.keepLast !== undefined && rank < rule!.keepLast);
    if (!kept) {
      const thins = rule!.dailyAfterDays !== undefined || rule!.weeklyAfterDays !== undefined;
      const eligible = rule!.keepDays !== undefined ? age <= rule!.keepDays * DAY_MS : thins;
      // Newest first: the first visit kept in a bucket is its newest; the bucket keeps no second.
      kept = eligible && (bucket === undefined || !seenBuckets.has(bucket));
    }
    if (kept && bucket !== undefined) seenBuckets.add(bucket);
    (kept ? keep : drop).push(v);
  });
  return { keep, drop };
}

function bucketOf(rule: RetentionRule | undefined, v: RetentionVisit, age: number): string | undefined {
  if (!dropsAnything(rule)) return undefined;
  if (rule!.weeklyAfterDays !== undefined && age > rule!.weeklyAfterDays * DAY_MS) return `w${Math.floor(v.finishedAt / WEEK_MS)}`;
  if (rule!.dailyAfterDays !== undefined && age > rule!.dailyAfterDays * DAY_MS) return `d${Math.floor(v.finishedAt / DAY_MS)}`;
  return undefined;
}
