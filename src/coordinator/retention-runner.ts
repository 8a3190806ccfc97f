import type { Logger } from '../core/index.js';
import type { ScanDocument, Store } from '../store/index.js';
import { leaseSessionRefs } from './lease-session.js';
import { type RetentionRule, type RetentionVisit, planHostRetention } from './retention.js';

/** Hosts one background step looks at (each: its history read, its drops deleted). */
export const RETENTION_HOSTS_PER_STEP = 100;

/** A background pass starts at most this often. */
export const RETENTION_PASS_INTERVAL_MS = 3_600_000;

/** Scan ids deleted per store call. */
const DELETE_CHUNK = 500;

/** Drops listed in a report (the first ones met). */
const REPORT_SAMPLE = 50;

/** What a retention pass keeps and drops (the dry-run report, and the log of a real pass). */
export interface RetentionReport {
  readonly dryRun: boolean;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly hosts: number;
  readonly visits: number;
  readonly kept: number;
  /** Visits dropped (dry run: that would be dropped). */
  readonly dropped: number;
  /** Visits kept because an event or a lease in flight references them. */
  readonly protectedVisits: number;
  /** Per policy tag ("" = the default policy), the visits it governs. */
  readonly byPolicy: Array<{ tag: string; kept: number; dropped: number }>;
  readonly sample: Array<{ scanId: string; ip: string; finishedAt: number; tags: readonly string[] }>;
}

/** Where a pass reads its rules: the coordinator's policies. */
export interface RetentionRules {
  /** The rule of a visit with these tags (undefined: keep). */
  ruleFor(tags: readonly string[]): RetentionRule | undefined;
  /** The policy key a visit with these tags falls under (for the report). */
  policyKeyFor(tags: readonly string[]): string;
  /** True when some policy has a rule that can drop anything. */
  anyRule(): boolean;
}

interface PassState {
  cursor: string | undefined;
  protect: Set<string>;
  tally: Tally;
  done: boolean;
}

class Tally {
  hosts = 0;
  visits = 0;
  kept = 0;
  dropped = 0;
  protectedVisits = 0;
  readonly byPolicy = new Map<string, { kept: number; dropped: number }>();
  readonly sample: RetentionReport['sample'] = [];

  constructor(
    readonly dryRun: boolean,
    readonly startedAt: number,
  ) {}

  report(finishedAt: number): RetentionReport {
    return {
      dryRun: this.dryRun,
      startedAt: this.startedAt,
      finishedAt,
      hosts: this.hosts,
      visits: this.visits,
      kept: this.kept,
      dropped: this.dropped,
      protectedVisits: this.protectedVisits,
      byPolicy: [...this.byPolicy].sort(([a], [b]) => (a < b ? -1 : 1)).map(([tag, n]) => ({ tag, ...n })),
      sample: [...this.sample],
    };
  }
}

/**
 * Applies the retention rules to the store's history: a whole pass on demand (`run`, also the
 * dry run) or in bounded steps in the background (`step`, on the coordinator's timer). The
 * latest visit of each host, its latest answered visit, every visit an event references and the
 * visits of leases in flight are never dropped (retention.ts, `planHostRetention`).
 */
export class RetentionRunner {
  private pass: PassState | undefined;
  private lastPassAt = -Infinity;
  private stepping: Promise<RetentionReport | undefined> | undefined;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly rules: RetentionRules,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  /** A whole pass now: the dry-run report, or the drops applied. `onProgress` after each step. */
  async run(options: { dryRun: boolean; onProgress?: (report: RetentionReport) => void }): Promise<RetentionReport> {
    const pass = await this.startPass(options.dryRun);
    while (!pass.done) {
      await this.advance(pass, RETENTION_HOSTS_PER_STEP);
      options.onProgress?.(pass.tally.report(this.now()));
    }
    return pass.tally.report(this.now());
  }

  /**
   * One bounded background step: starts a pass when none runs and the last began an interval
   * ago (and some rule can drop anything), else goes on with the current one. Logs progress.
   */
  async step(): Promise<RetentionReport | undefined> {
    if (this.stepping || this.stopped) return undefined;
    this.stepping = this.stepOnce();
    try {
      return await this.stepping;
    } finally {
      this.stepping = undefined;
    }
  }

  /** No further background steps; resolves once the one in progress (if any) is done (before the store closes). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.stepping?.catch(() => undefined);
  }

  private async stepOnce(): Promise<RetentionReport | undefined> {
    if (!this.pass) {
      if (this.now() - this.lastPassAt < RETENTION_PASS_INTERVAL_MS || !this.rules.anyRule()) return undefined;
      this.lastPassAt = this.now();
      this.pass = await this.startPass(false);
      this.log.info('retention pass started');
    }
    const pass = this.pass;
    const before = pass.tally.dropped;
    await this.advance(pass, RETENTION_HOSTS_PER_STEP);
    const report = pass.tally.report(this.now());
    if (pass.done) {
      this.pass = undefined;
      this.log.info(
        { hosts: report.hosts, visits: report.visits, kept: report.kept, dropped: report.dropped, protectedVisits: report.protectedVisits },
        'retention pass finished',
      );
    } else if (pass.tally.dropped > before) {
      this.log.info({ hosts: report.hosts, dropped: report.dropped }, 'retention pass in progress');
    }
    return report;
  }

  private async startPass(dryRun: boolean): Promise<PassState> {
    return { cursor: undefined, protect: await this.protectedIds(), tally: new Tally(dryRun, this.now()), done: false };
  }

  /** Scan ids that must stay: referenced by an event, or by a lease in flight (its visit, its baseline). */
  private async protectedIds(): Promise<Set<string>> {
    const ids = new Set<string>();
    let cursor: string | undefined;
    for (;;) {
      const page = await this.store.readEvents({ ...(cursor !== undefined ? { cursor } : {}), limit: 1000 });
      for (const e of page.events) ids.add(e.scanId);
      if (page.events.length === 0 || page.cursor === cursor) break;
      cursor = page.cursor;
    }
    for (const lease of await this.store.listLeases()) {
      const session = leaseSessionRefs(lease.session);
      for (const id of [session.visitId, session.baselineScanId, session.priorScanId]) if (id !== undefined) ids.add(id);
    }
    return ids;
  }

  private async advance(pass: PassState, hosts: number): Promise<void> {
    const page = await this.store.search(undefined, {
      view: 'latest',
      limit: hosts,
      ...(pass.cursor !== undefined ? { cursor: pass.cursor } : {}),
    });
    const drops: string[] = [];
    for (const latest of page.items) {
      const history = await this.hostVisits(latest.ip);
      const { keep, drop } = planHostRetention(history.map(toVisit), (tags) => this.rules.ruleFor(tags), pass.protect, this.now());
      const t = pass.tally;
      t.hosts++;
      t.visits += history.length;
      t.kept += keep.length;
      t.dropped += drop.length;
      for (const v of keep) {
        if (pass.protect.has(v.scanId)) t.protectedVisits++;
        this.count(t, v.tags, 'kept');
      }
      for (const v of drop) {
        this.count(t, v.tags, 'dropped');
        if (t.sample.length < REPORT_SAMPLE) t.sample.push({ scanId: v.scanId, ip: latest.ip, finishedAt: v.finishedAt, tags: v.tags });
        drops.push(v.scanId);
      }
    }
    if (!pass.tally.dryRun) {
      for (let i = 0; i < drops.length; i += DELETE_CHUNK) await this.store.deleteHistory(drops.slice(i, i + DELETE_CHUNK));
    }
    pass.cursor = page.nextCursor;
    pass.done = page.nextCursor === undefined;
  }

  private count(t: Tally, tags: readonly string[], field: 'kept' | 'dropped'): void {
    const key = this.rules.policyKeyFor(tags);
    const entry = t.byPolicy.get(key) ?? { kept: 0, dropped: 0 };
    entry[field]++;
    t.byPolicy.set(key, entry);
  }

  private async hostVisits(ip: string): Promise<ScanDocument[]> {
    const out: ScanDocument[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.store.hostHistory(ip, { limit: 1000, ...(cursor !== undefined ? { cursor } : {}) });
      out.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== undefined);
    return out;
  }
}

function toVisit(scan: ScanDocument): RetentionVisit {
  return {
    scanId: scan.scanId,
    finishedAt: scan.finishedAt,
    tags: scan.tags,
    down: scan.host?.status === 'down',
    ...(scan.group !== undefined ? { group: scan.group } : {}),
  };
}
