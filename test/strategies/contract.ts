import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { loadNmapServices } from '../../src/catalog/index.js';
import { PortRanges } from '../../src/core/ports.js';
import { createRng } from '../../src/core/rng.js';
import { HostSession } from '../../strategies/host-session.js';
import { resolveCommonOptions } from '../../strategies/options.js';
import { type StrategyName, getStrategy } from '../../strategies/registry.js';
import type { CommonOptions, HostContext, HostResult, Strategy, StrategyEnv } from '../../strategies/types.js';

/**
 * The contract every registered strategy passes (one line per spec file:
 * `strategyContract('thompson')`). Strategies are driven through HostSession, exactly as the
 * simulator and the coordinator drive them, over random options, host contexts, probeable sets
 * and observe() histories. A failing property prints its seed and the shrunk counterexample.
 */

const env: StrategyEnv = { catalog: loadNmapServices() };

// Ports that make histories interesting: popular ones, an organisation's custom ones, edges.
const POOL = [1, 21, 22, 23, 25, 53, 80, 110, 143, 443, 445, 2222, 3306, 3389, 5432, 8000, 8080, 8443, 9200, 27017, 31337, 40000, 65535];
const TAGS = ['dmz', 'office', 'lab'];

const portArb = fc.oneof(fc.constantFrom(...POOL), fc.integer({ min: 1, max: 65535 }));

type History = readonly (readonly HostResult[])[];

interface Scenario {
  readonly options: CommonOptions;
  /** Two histories (batches of results) learned on disjoint hosts. */
  readonly histories: readonly [History, History];
  readonly hosts: readonly { readonly host: HostContext; readonly truth: readonly number[] }[];
  readonly seed: string;
}

const optionsArb = fc
  .record({
    mustHave: fc.uniqueArray(fc.constantFrom(...POOL), { maxLength: 4 }),
    exclude: fc.uniqueArray(portArb, { maxLength: 6 }),
    extra: fc.integer({ min: 0, max: 120 }),
    cap: fc.option(fc.integer({ min: 1, max: 150 }), { nil: undefined }),
    pseudoThreshold: fc.integer({ min: 5, max: 2000 }),
  })
  .map(({ mustHave, exclude, extra, cap, pseudoThreshold }) => {
    const ex = exclude.filter((p) => !mustHave.includes(p));
    const maxPerHost = cap === undefined ? undefined : Math.max(cap, mustHave.length, 1);
    return resolveCommonOptions({ budget: mustHave.length + extra, maxPerHost, mustHave, exclude: ex, pseudoThreshold });
  });

const probeableArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant(PortRanges.ALL) },
  { weight: 1, arbitrary: fc.constant(PortRanges.parse('1-1024')) },
  { weight: 2, arbitrary: fc.uniqueArray(portArb, { minLength: 1, maxLength: 60 }).map((ps) => PortRanges.fromPorts(ps)) },
);

function ipOf(group: number, i: number): string {
  return `198.18.${group % 256}.${(i % 254) + 1}`;
}

const resultArb = (group: number) =>
  fc
    .record({
      i: fc.integer({ min: 0, max: 253 }),
      tags: fc.subarray(TAGS, { maxLength: 2 }),
      epoch: fc.integer({ min: 0, max: 4 }),
      probed: fc.uniqueArray(portArb, { minLength: 0, maxLength: 40 }),
      openBits: fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }),
      previousOpen: fc.uniqueArray(fc.constantFrom(...POOL), { maxLength: 4 }),
      sweep: fc.constant(false),
    })
    .map((r): HostResult => ({
      ip: ipOf(group, r.i),
      tags: r.tags,
      prefix: `198.18.${group % 256}.0/24`,
      epoch: r.epoch,
      probed: r.probed,
      open: r.probed.filter((_, k) => r.openBits[k]).sort((a, b) => a - b),
      previousOpen: [...r.previousOpen].sort((a, b) => a - b),
      sweep: r.sweep,
    }));

// Batches of results; each batch sorted by epoch so histories move forward like real scans.
const historyArb = (group: number) => fc.array(fc.array(resultArb(group), { maxLength: 12 }), { maxLength: 4 });

const hostArb = fc
  .record({
    i: fc.integer({ min: 0, max: 253 }),
    tags: fc.subarray(TAGS, { maxLength: 2 }),
    epoch: fc.integer({ min: 3, max: 6 }),
    previousOpen: fc.uniqueArray(fc.constantFrom(...POOL), { maxLength: 4 }),
    probeable: probeableArb,
    truth: fc.uniqueArray(fc.oneof(fc.constantFrom(...POOL), fc.constantFrom(...POOL), portArb), { maxLength: 12 }),
  })
  .map(({ i, tags, epoch, previousOpen, probeable, truth }) => ({
    host: {
      ip: ipOf(200, i),
      tags,
      prefix: '198.18.200.0/24',
      epoch,
      previousOpen: [...previousOpen].sort((a, b) => a - b),
      previousEpoch: previousOpen.length > 0 ? epoch - 1 : -1,
      probeable,
    } satisfies HostContext,
    truth,
  }));

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  options: optionsArb,
  histories: fc.tuple(historyArb(1), historyArb(2)),
  hosts: fc.array(hostArb, { minLength: 1, maxLength: 4 }),
  seed: fc.string({ maxLength: 8 }),
});

/** The learners: strategies that re-verify a host's history first (strategies/history.ts); baselines probe their own lists. */
const LEARNERS: readonly StrategyName[] = ['epsilon-greedy', 'ucb', 'thompson', 'lin-ucb', 'cooccurrence', 'adaptive'];

interface Played {
  readonly decisions: number[][];
  readonly results: HostResult[];
}

/**
 * Run every host's session to the end against its truth, checking the per-decision contract;
 * `historyCap` (a learner's) also checks that the host's previously open ports were re-verified.
 */
function play(strategy: Strategy, scenario: Scenario, historyCap?: number): Played {
  const { options } = strategy;
  const excluded = new Set(options.exclude);
  const decisions: number[][] = [];
  const results: HostResult[] = [];
  for (const { host, truth } of scenario.hosts) {
    const requested = strategy.allowance(host, createRng(`${scenario.seed}/allowance`));
    expect(requested, 'allowance within maxPerHost').toBeLessThanOrEqual(options.maxPerHost);
    const session = new HostSession(strategy, host, scenario.seed);
    expect(session.allowance).toBeLessThanOrEqual(Math.min(options.maxPerHost, host.probeable.size));
    const open = new Set(truth);
    const seen = new Set<number>();
    let round = 0;
    for (let ports = session.next(); ports !== null; ports = session.next()) {
      expect(ports.length, 'decision within the remaining allowance').toBeLessThanOrEqual(session.allowance - seen.size);
      // One assertion per decision (not per port) keeps the suite fast; the message names the port.
      const bad: string[] = [];
      for (const p of ports) {
        if (!Number.isInteger(p) || p < 1 || p > 65535) bad.push(`${p} is not a port`);
        else if (!host.probeable.has(p)) bad.push(`${p} is not probeable`);
        if (excluded.has(p)) bad.push(`${p} is excluded`);
        if (seen.has(p)) bad.push(`${p} was probed twice in a host-epoch`);
        seen.add(p);
      }
      expect(bad, `decision on ${host.ip} round ${round}`).toEqual([]);
      if (round === 0) {
        const must = options.mustHave.filter((p) => host.probeable.has(p));
        if (session.allowance >= must.length) for (const p of must) expect(ports, `must-have ${p} on round 0`).toContain(p);
      }
      decisions.push(ports);
      session.report(ports.filter((p) => open.has(p)));
      round++;
      expect(round, 'a host-epoch ends').toBeLessThanOrEqual(session.allowance + 1);
    }
    expect(seen.size, 'probes within the allowance').toBeLessThanOrEqual(session.allowance);
    if (historyCap !== undefined) {
      const must = options.mustHave.filter((p) => host.probeable.has(p));
      const history = host.previousOpen.slice(0, historyCap).filter((p) => host.probeable.has(p) && !excluded.has(p));
      if (session.allowance >= must.length + history.length) {
        const missed = history.filter((p) => !seen.has(p));
        expect(missed, `previously open ports of ${host.ip} not re-verified (allowance ${session.allowance})`).toEqual([]);
      }
    }
    results.push(session.result());
  }
  return { decisions, results };
}

function teach(strategy: Strategy, history: History): void {
  for (const batch of history) {
    const sorted = [...batch].sort((a, b) => a.epoch - b.epoch);
    const verdict = strategy.observe(sorted);
    expect(verdict.learned + verdict.pseudo).toBeLessThanOrEqual(sorted.length);
    expect(verdict.learned).toBeGreaterThanOrEqual(0);
    if (verdict.lossy) expect(verdict.learned).toBe(0);
  }
}

export interface ContractOptions {
  /** Strategy parameters (raw, as from the CLI); defaults when omitted. */
  readonly params?: Readonly<Record<string, unknown>>;
  /** fast-check runs per property (default 25: the machine is shared). */
  readonly numRuns?: number;
}

/** The shared property suite every registered strategy must pass. */
export function strategyContract(name: StrategyName, contract: ContractOptions = {}): void {
  const definition = getStrategy(name);
  const params = definition.parseParams(contract.params ?? {});
  const make = (options: CommonOptions, state?: unknown) => definition.create(options, params, env, state);
  const runs = { numRuns: contract.numRuns ?? 25 };

  describe(`strategy contract: ${name}`, () => {
    test.prop([scenarioArb], runs)(
      'decisions respect the allowance, probeable and excluded ports, must-have ports and no duplicates',
      (s) => {
        const strategy = make(s.options);
        teach(strategy, s.histories[0]);
        const played = play(strategy, s);
        strategy.observe(played.results);
        play(strategy, s);
      },
    );

    if (LEARNERS.includes(name)) {
      test.prop([scenarioArb], runs)("a learner re-verifies a host's previously open ports (up to historyCap)", (s) => {
        const strategy = make(s.options);
        const cap = (params as { historyCap?: number }).historyCap;
        expect(cap, 'a learner takes historyCap').toBeTypeOf('number');
        teach(strategy, s.histories[0]);
        strategy.observe(play(strategy, s, cap).results);
        play(strategy, s, cap);
      });
    }

    test.prop([scenarioArb], runs)('the same seed and history give the same choices', (s) => {
      const a = make(s.options);
      const b = make(s.options);
      teach(a, s.histories[0]);
      teach(b, s.histories[0]);
      expect(play(a, s).decisions).toEqual(play(b, s).decisions);
    });

    test.prop([scenarioArb], runs)('a state serialised as JSON and restored makes the same future choices', (s) => {
      const a = make(s.options);
      teach(a, s.histories[0]);
      const saved: unknown = JSON.parse(JSON.stringify(a.state()));
      expect(saved).toEqual(a.state());
      const b = make(s.options, saved);
      const pa = play(a, s);
      const pb = play(b, s);
      expect(pb.decisions).toEqual(pa.decisions);
      a.observe(pa.results);
      b.observe(pb.results);
      teach(a, s.histories[1]);
      teach(b, s.histories[1]);
      expect(play(b, s).decisions).toEqual(play(a, s).decisions);
      expect(JSON.parse(JSON.stringify(b.state()))).toEqual(JSON.parse(JSON.stringify(a.state())));
    });

    test.prop([scenarioArb], runs)('merge is order-independent, and merging with an empty state changes no choice', (s) => {
      const a = make(s.options);
      const b = make(s.options);
      teach(a, s.histories[0]);
      teach(b, s.histories[1]);
      const sa = JSON.parse(JSON.stringify(a.state()));
      const sb = JSON.parse(JSON.stringify(b.state()));
      expect(definition.merge(sa, sb)).toEqual(definition.merge(sb, sa));
      const empty = make(s.options).state();
      const withEmpty = make(s.options, definition.merge(sa, empty));
      expect(play(withEmpty, s).decisions).toEqual(play(make(s.options, sa), s).decisions);
      expect(play(make(s.options, definition.merge(empty, sa)), s).decisions).toEqual(play(make(s.options, sa), s).decisions);
    });

    test.prop([optionsArb], { numRuns: 10 })('explain describes the budget and never throws', (options) => {
      const e = make(options).explain(5);
      expect(e.strategy).toBe(name);
      expect(e.split.mustHave).toBe(options.mustHave.length);
      for (const g of e.groups) expect(g.top.length).toBeLessThanOrEqual(5);
    });
  });
}
