import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

/** The coordinator's Prometheus metrics, on a registry of its own (one per app, so tests can build many). */
export interface CoordinatorMetrics {
  readonly registry: Registry;
  readonly workItems: Counter<'reason'>;
  readonly results: Counter<'outcome'>;
  readonly leasesExpired: Counter;
  readonly scopeAddresses: Gauge;
  readonly authFailures: Counter<'kind'>;
}

/** Live values read at scrape time. */
export interface MetricSources {
  leasesInFlight(): Promise<number>;
  queueLength(): Promise<number>;
  cycle(): { cycle: number; fraction: number; completed: number };
  cycleCoverage(): Promise<Array<{ tag: string; fraction: number; finished: number }>>;
  /** Visits of the current cycle finished (no round left), over every tag. */
  cycleVisitsFinished(): Promise<number>;
  estimatedCoverage(): Array<{ tag: string; estimate: number }>;
  /** The outbox feeding the search index, when the store has one (Elasticsearch). */
  outbox?(): Promise<{ depth: number; active: boolean; fed: number; failures: number; failing: number }>;
}

/** Build the registry and metrics; `bind` attaches the live sources once the coordinator exists. */
export function createMetrics(): CoordinatorMetrics & { bind(sources: MetricSources): void } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'portbandit_process_' });
  let sources: MetricSources | undefined;
  const metrics = {
    registry,
    workItems: new Counter({
      name: 'portbandit_work_items_total',
      help: 'Work items handed out, by reason (cycle, manual, expired, followup).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    results: new Counter({
      name: 'portbandit_results_total',
      help: 'Result submissions, by outcome (accepted, duplicate, rejected; refused: an agent refused the work item).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    leasesExpired: new Counter({
      name: 'portbandit_leases_expired_total',
      help: 'Leases that passed their deadline and went back to the queue.',
      registers: [registry],
    }),
    scopeAddresses: new Gauge({ name: 'portbandit_scope_addresses', help: 'Addresses in scope minus blocklist.', registers: [registry] }),
    authFailures: new Counter({
      name: 'portbandit_auth_failures_total',
      help: 'Requests refused for a missing or bad token.',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    bind(s: MetricSources) {
      sources = s;
    },
  };
  new Gauge({
    name: 'portbandit_leases_in_flight',
    help: 'Work items handed out and not yet submitted or expired.',
    registers: [registry],
    async collect() {
      if (sources) this.set(await sources.leasesInFlight());
    },
  });
  new Gauge({
    name: 'portbandit_queue_length',
    help: 'Queued work items (manual rescans, expired leases, follow-ups).',
    registers: [registry],
    async collect() {
      if (sources) this.set(await sources.queueLength());
    },
  });
  new Gauge({
    name: 'portbandit_cycle',
    help: 'Current cycle number.',
    registers: [registry],
    collect() {
      if (sources) this.set(sources.cycle().cycle);
    },
  });
  new Gauge({
    name: 'portbandit_cycle_progress_ratio',
    help: 'Fraction of the current cycle handed out.',
    registers: [registry],
    collect() {
      if (sources) this.set(sources.cycle().fraction);
    },
  });
  new Gauge({
    name: 'portbandit_cycle_visits_finished',
    help: 'Visits of the current cycle with no round left to scan (counted by this process; resumed from the store at start).',
    registers: [registry],
    async collect() {
      if (sources) this.set(await sources.cycleVisitsFinished());
    },
  });
  new Gauge({
    name: 'portbandit_tag_cycle_visits_finished',
    help: 'Per tag: visits of the current cycle with no round left to scan ("" = untagged).',
    labelNames: ['tag'] as const,
    registers: [registry],
    async collect() {
      if (!sources) return;
      const rows = await sources.cycleCoverage();
      this.reset();
      for (const c of rows) this.set({ tag: c.tag }, c.finished);
    },
  });
  new Gauge({
    name: 'portbandit_tag_cycle_coverage_ratio',
    help: 'Per tag: hosts scanned in the current cycle over addresses with the tag ("" = untagged).',
    labelNames: ['tag'] as const,
    registers: [registry],
    async collect() {
      if (!sources) return;
      const rows = await sources.cycleCoverage();
      this.reset();
      for (const c of rows) this.set({ tag: c.tag }, c.fraction);
    },
  });
  new Gauge({
    name: 'portbandit_tag_estimated_service_coverage_ratio',
    help: "Per policy tag: share of the strategy's estimated open-port mass its budget covers.",
    labelNames: ['tag'] as const,
    registers: [registry],
    collect() {
      if (!sources) return;
      this.reset();
      for (const c of sources.estimatedCoverage()) this.set({ tag: c.tag }, c.estimate);
    },
  });
  new Gauge({
    name: 'portbandit_outbox_depth',
    help: 'Records in the outbox not yet applied to the search index (Elasticsearch); 0 without one.',
    registers: [registry],
    async collect() {
      this.set(sources?.outbox ? (await sources.outbox()).depth : 0);
    },
  });
  new Gauge({
    name: 'portbandit_outbox_feed_failing',
    help: 'Failed attempts in a row to apply outbox records to the search index (0 = feeding).',
    registers: [registry],
    async collect() {
      this.set(sources?.outbox ? (await sources.outbox()).failing : 0);
    },
  });
  return metrics;
}
