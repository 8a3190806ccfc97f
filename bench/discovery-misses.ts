import { realpathSync } from 'node:fs';
import { loadNmapServices } from '../src/catalog/index.js';
import { simulate } from '../simulator/index.js';
import { generateRecording } from '../simulator/synthetic/index.js';
import { createStrategy, type HostResult, type Strategy } from '../strategies/index.js';

/**
 * Issue 12's diagnosis of what a strategy misses (docs/strategies.md, "What bounds adaptive on
 * orgtail at 100"): every service missed in the late epochs (E/2 .. E-1) of a replay, sorted by
 * what the strategy had found of its port anywhere in the scope before that epoch: never found
 * (outside nmap's table, in its top 1,000, further down it or named there without a frequency)
 * or found open elsewhere before (a ranking miss). Figures are points of late coverage.
 *
 * Sizes by env: PB_BENCH_MISSES_CASES (comma list of profile:seed, default below),
 * PB_BENCH_MISSES_HOSTS (4096), PB_BENCH_MISSES_EPOCHS (12), PB_BENCH_MISSES_BUDGET (100),
 * PB_BENCH_MISSES_STRATEGY (adaptive), PB_BENCH_MISSES_PARAMS (strategy parameters as JSON).
 * The replay seed is `bench`, as bench/discovery.ts's default.
 */
export const MISSES_CASES = ['orgtail:tune-1', 'orgtail:holdout-2', 'orgtail:hx-22'];

/** One case's late misses by class, in points of late coverage. */
export interface MissesRow {
  readonly case: string;
  readonly late: number;
  readonly neverOutsideNmap: number;
  readonly neverTop1000: number;
  readonly neverFurther: number;
  readonly foundElsewhere: number;
  /** Of all the above, on hosts that answered nothing at their last visit. */
  readonly silentLastVisit: number;
  /**
   * The same misses by how many hosts ran the port in that epoch: per class, its share of the
   * late services and the points missed (a port on one host of the scope can only be found on that
   * host; one shared by most of a /24 by any of them).
   */
  readonly byPrevalence: Readonly<Record<PrevalenceClass, { readonly share: number; readonly missed: number }>>;
  /** Full sweeps, and those whose /24 had ports on 6+ hosts that nobody had found yet while the swept host ran none of them. */
  readonly sweeps: number;
  readonly sweepsOnHostsWithout: number;
}

/** How many hosts ran a service's port in its epoch: in the whole scope, or in the host's /24. */
export const PREVALENCE_CLASSES = ['scope:1', '/24:1', '/24:2-5', '/24:6+'] as const;
export type PrevalenceClass = (typeof PREVALENCE_CLASSES)[number];

function prevalenceClass(inScope: number, inPrefix: number): PrevalenceClass {
  if (inScope === 1) return 'scope:1';
  if (inPrefix === 1) return '/24:1';
  return inPrefix <= 5 ? '/24:2-5' : '/24:6+';
}

const prefixOf = (ip: string): string => ip.slice(0, ip.lastIndexOf('.'));

export function runDiscoveryMissesBenchmark(env: NodeJS.ProcessEnv = process.env): MissesRow[] {
  const hosts = Number(env.PB_BENCH_MISSES_HOSTS ?? 4096);
  const epochs = Number(env.PB_BENCH_MISSES_EPOCHS ?? 12);
  const budget = Number(env.PB_BENCH_MISSES_BUDGET ?? 100);
  const strategy = env.PB_BENCH_MISSES_STRATEGY ?? 'adaptive';
  const params = env.PB_BENCH_MISSES_PARAMS ? (JSON.parse(env.PB_BENCH_MISSES_PARAMS) as Record<string, unknown>) : {};
  const cases = env.PB_BENCH_MISSES_CASES?.split(',').map((s) => s.trim()) ?? MISSES_CASES;
  const catalog = loadNmapServices();
  const rows: MissesRow[] = [];
  console.log(
    `discovery-misses: ${strategy} at ${budget}, ${hosts} hosts x ${epochs} epochs; late misses in points of late coverage, by what the scope had shown of the port before`,
  );
  console.log(
    `discovery-misses: ${'case'.padEnd(20)} ${'late'.padStart(6)} ${'never: not nmap'.padStart(16)} ${'top 1000'.padStart(9)} ${'further'.padStart(8)} ${'open elsewhere'.padStart(15)} ${'(silent last)'.padStart(14)}`,
  );
  for (const c of cases) {
    const [profile, seed] = c.split(':') as [string, string];
    const recording = generateRecording({ profile, hosts, epochs, seed }, catalog);
    const inner = createStrategy({ strategy, budget, params }, { catalog });
    // What the strategy was told of each host-visit (its own view, never the truth).
    const seen = new Map<string, HostResult>();
    const watched = new Proxy(inner, {
      get(target, key, receiver) {
        if (key === 'observe')
          return (batch: readonly HostResult[]) => {
            for (const r of batch) seen.set(`${r.ip}/${r.epoch}`, r);
            return target.observe(batch);
          };
        return Reflect.get(target, key, receiver) as unknown;
      },
    }) as Strategy;
    simulate(recording, watched, { seed: 'bench' });
    // The first epoch each port was found open anywhere in the scope, and in each /24.
    const firstAnywhere = new Map<number, number>();
    const firstInPrefix = new Map<string, number>();
    for (const r of seen.values()) {
      for (const p of r.open) {
        firstAnywhere.set(p, Math.min(firstAnywhere.get(p) ?? Infinity, r.epoch));
        const k = `${prefixOf(r.ip)}|${p}`;
        firstInPrefix.set(k, Math.min(firstInPrefix.get(k) ?? Infinity, r.epoch));
      }
    }
    let total = 0;
    const missed = { outside: 0, top: 0, further: 0, elsewhere: 0, silent: 0 };
    const classes = new Map<PrevalenceClass, { all: number; missed: number }>(PREVALENCE_CLASSES.map((c) => [c, { all: 0, missed: 0 }]));
    for (let e = Math.floor(epochs / 2); e < epochs; e++) {
      // How many hosts run each port this epoch, in the scope and in each /24 (pseudo-service hosts aside).
      const inScope = new Map<number, number>();
      const inPrefix = new Map<string, number>();
      const countable = (i: number) => recording.openStart[i + 1]! - recording.openStart[i]! <= inner.options.pseudoThreshold;
      for (let i = recording.epochStart[e]!; i < recording.epochStart[e + 1]!; i++) {
        if (!countable(i)) continue;
        const prefix = prefixOf(recording.hostIp[recording.obsHost[i]!]!);
        for (const p of recording.openPorts.subarray(recording.openStart[i]!, recording.openStart[i + 1]!)) {
          inScope.set(p, (inScope.get(p) ?? 0) + 1);
          inPrefix.set(`${prefix}|${p}`, (inPrefix.get(`${prefix}|${p}`) ?? 0) + 1);
        }
      }
      for (let i = recording.epochStart[e]!; i < recording.epochStart[e + 1]!; i++) {
        const open = recording.openPorts.subarray(recording.openStart[i]!, recording.openStart[i + 1]!);
        // Pseudo-service hosts count in neither total nor found (the simulator's rule).
        if (!countable(i)) continue;
        const ip = recording.hostIp[recording.obsHost[i]!]!;
        const r = seen.get(`${ip}/${e}`)!;
        const got = new Set(r.open);
        for (const p of open) {
          total++;
          const cls = classes.get(prevalenceClass(inScope.get(p)!, inPrefix.get(`${prefixOf(ip)}|${p}`)!))!;
          cls.all++;
          if (got.has(p)) continue;
          cls.missed++;
          if (r.previousOpen.length === 0) missed.silent++;
          if ((firstAnywhere.get(p) ?? Infinity) < e) missed.elsewhere++;
          else if (catalog.rank(p) < 0 && catalog.name(p) === undefined) missed.outside++;
          else if (catalog.rank(p) >= 0 && catalog.rank(p) < 1000) missed.top++;
          // Further down nmap's table, or named there without a frequency.
          else missed.further++;
        }
      }
    }
    // Sweeps that could have found a port of their /24 nobody had found yet (run by 6+ of its
    // hosts that epoch) but swept a host that ran none of them: the luck of the pick.
    let sweeps = 0;
    let sweepsOnHostsWithout = 0;
    const truthOf = new Map<string, Uint16Array>();
    for (let e = 0; e < epochs; e++) {
      for (let i = recording.epochStart[e]!; i < recording.epochStart[e + 1]!; i++) {
        truthOf.set(
          `${recording.hostIp[recording.obsHost[i]!]!}/${e}`,
          recording.openPorts.subarray(recording.openStart[i]!, recording.openStart[i + 1]!),
        );
      }
    }
    for (const r of seen.values()) {
      if (!r.sweep) continue;
      sweeps++;
      const counts = new Map<number, number>();
      const prefix = prefixOf(r.ip);
      for (const [key, open] of truthOf) {
        if (!key.endsWith(`/${r.epoch}`) || prefixOf(key.slice(0, key.indexOf('/'))) !== prefix) continue;
        if (open.length > inner.options.pseudoThreshold) continue;
        for (const p of open) if ((firstAnywhere.get(p) ?? Infinity) >= r.epoch) counts.set(p, (counts.get(p) ?? 0) + 1);
      }
      const unfound = [...counts].filter(([, n]) => n >= 6).map(([p]) => p);
      const own = new Set(truthOf.get(`${r.ip}/${r.epoch}`) ?? []);
      if (unfound.length > 0 && !unfound.some((p) => own.has(p))) sweepsOnHostsWithout++;
    }
    const pts = (n: number) => (total === 0 ? 0 : (100 * n) / total);
    const missedAll = missed.outside + missed.top + missed.further + missed.elsewhere;
    const row: MissesRow = {
      case: c,
      late: 100 - pts(missedAll),
      neverOutsideNmap: pts(missed.outside),
      neverTop1000: pts(missed.top),
      neverFurther: pts(missed.further),
      foundElsewhere: pts(missed.elsewhere),
      silentLastVisit: pts(missed.silent),
      byPrevalence: Object.fromEntries(
        PREVALENCE_CLASSES.map((c) => [c, { share: pts(classes.get(c)!.all), missed: pts(classes.get(c)!.missed) }]),
      ) as MissesRow['byPrevalence'],
      sweeps,
      sweepsOnHostsWithout,
    };
    rows.push(row);
    const f = (x: number, w: number) => x.toFixed(2).padStart(w);
    console.log(
      `discovery-misses: ${c.padEnd(20)} ${`${row.late.toFixed(1)}%`.padStart(6)} ${f(row.neverOutsideNmap, 16)} ${f(row.neverTop1000, 9)} ${f(row.neverFurther, 8)} ${f(row.foundElsewhere, 15)} ${`(${row.silentLastVisit.toFixed(2)})`.padStart(14)}`,
    );
  }
  console.log(
    'discovery-misses: the same misses by how many hosts ran the port that epoch (share of the late services / points missed): one host of the scope, one of its /24 (others elsewhere), 2-5 of its /24, 6 or more',
  );
  for (const row of rows) {
    const cells = PREVALENCE_CLASSES.map((c) => {
      const { share, missed } = row.byPrevalence[c];
      return `${c} ${share.toFixed(2)} / ${missed.toFixed(2)}`.padStart(22);
    });
    console.log(
      `discovery-misses: ${row.case.padEnd(20)} ${cells.join(' ')}; sweeps ${row.sweeps}, of which on a host without its /24's unfound ports ${row.sweepsOnHostsWithout}`,
    );
  }
  return rows;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === new URL(`file://${realpathSync(process.argv[1])}`).href;
if (invokedDirectly) runDiscoveryMissesBenchmark();
