import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { loadNmapServices } from '../../src/catalog/index.js';
import { PortRanges } from '../../src/core/ports.js';
import { createRng } from '../../src/core/rng.js';
import type { Observation } from '../../src/recording/index.js';
import { simulate } from '../../simulator/index.js';
import { createStrategy } from '../../strategies/build.js';
import { BANDIT_DISCOVERY } from '../../strategies/bandit-base.js';
import { HostSession } from '../../strategies/host-session.js';
import { strategies } from '../../strategies/registry.js';
import { CandidateOrder } from '../../strategies/discovery/candidate-order.js';
import {
  Discovery,
  discoveryParameters,
  emptyDiscoveryState,
  mergeDiscoveryStates,
  type DiscoveryParams,
  type DiscoveryState,
  SLICE_YIELD_FLOOR,
} from '../../strategies/discovery/discovery.js';
import { emptyPortStatsState } from '../../strategies/stats/port-stats.js';
import { SweepYield } from '../../strategies/discovery/sweep-planner.js';
import { resolveCommonOptions } from '../../strategies/options.js';
import type { HostContext, HostResult } from '../../strategies/types.js';
import { makeRecording } from '../simulator/helpers.js';

const catalog = loadNmapServices();
const defaults = Object.fromEntries(
  discoveryParameters({
    discoveryShare: 0.25,
    sweepShare: 0,
    sweepTarget: 10,
    yieldMemory: 1,
    yieldPrior: 1,
    sweepMinBudget: 0,
    sweepWithinShare: false,
  }).map((p) => [p.name, p.default]),
) as unknown as DiscoveryParams;
const PREFIX = '198.18.7.0/24';

function result(pos: number, epoch: number, open: number[]): HostResult {
  return { ip: `198.18.7.${pos}`, tags: ['lab'], prefix: PREFIX, epoch, probed: open, open, previousOpen: [], sweep: false };
}

function host(pos: number, epoch: number, previousOpen: number[], previousEpoch = epoch - 1): HostContext {
  return { ip: `198.18.7.${pos}`, tags: ['lab'], prefix: PREFIX, epoch, previousOpen, previousEpoch, probeable: PortRanges.ALL };
}

describe('the candidate order', () => {
  test('one pass holds every port exactly once: nmap table first, then a per-prefix permutation', () => {
    const order = CandidateOrder.of(catalog);
    expect(order.length).toBe(65535);
    const seen = new Uint8Array(65536);
    for (let k = 0; k < order.length; k++) seen[order.at(12345, k)]! += 1;
    expect(seen.slice(1).every((x) => x === 1)).toBe(true);
    expect(order.at(1, 0)).toBe(catalog.byFrequency[0]);
    // Two prefixes walk the rest of the port space in different orders.
    const k = order.table.length + 10;
    expect(order.at(1, k)).not.toBe(order.at(2, k));
  });
});

describe('coordinated discovery', () => {
  test.prop(
    [
      fc.uniqueArray(fc.integer({ min: 1, max: 254 }), { minLength: 1, maxLength: 120 }),
      fc.integer({ min: 10, max: 2000 }),
      fc.integer({ min: 0, max: 40 }),
    ],
    {
      numRuns: 40,
    },
  )(
    'the hosts of a prefix that answered probe disjoint slices within an epoch, and the next epoch goes on where it ended',
    (live, budget, knownCount) => {
      const options = resolveCommonOptions({ budget });
      const d = new Discovery(options, defaults, catalog, 20);
      // Epoch 0: `live` answered (with ports open elsewhere in the scope), the others were silent.
      const known = Array.from({ length: knownCount }, (_, i) => 40000 + i);
      const epoch0 = Array.from({ length: 254 }, (_, i) => i + 1).map((pos) =>
        result(pos, 0, live.includes(pos) ? [22, ...known.slice(0, 1)] : []),
      );
      epoch0.push({ ...result(1, 0, known), ip: '198.18.8.1', prefix: '198.18.8.0/24' });
      d.observe(epoch0, epoch0, false);
      const slices = live.map((pos) => d.slice(host(pos, 1, [22])));
      const all = slices.flat();
      // Tier-1 ports repeat on measureHosts hosts; the untargeted tiers never repeat.
      const untargeted = all.filter((p) => !known.includes(p) && p !== 22);
      expect(new Set(untargeted).size).toBe(untargeted.length);
      // A port open elsewhere is measured on at most measureHosts hosts (plus once more if the untargeted tiers reach it).
      for (const p of [22, ...known]) expect(all.filter((x) => x === p).length).toBeLessThanOrEqual(defaults.measureHosts + 1);
      // Silent hosts get no slice of the coordinated order; only when the answering hosts cannot use
      // their share of the budget (capped at the port space) do they probe beyond their floor.
      const silent = Array.from({ length: 254 }, (_, i) => i + 1).find((pos) => !live.includes(pos));
      if (silent !== undefined) {
        const extra = d.silentAllowance(1, budget) - d.deadFloor(budget);
        if (d.liveAllowance(1, budget) < 65535) expect(d.slice(host(silent, 1, []))).toEqual([]);
        else expect(d.slice(host(silent, 1, [])).length).toBe(Math.floor(d.silentAllowance(1, budget)) - d.deadFloor(budget));
        expect(extra).toBeGreaterThanOrEqual(0);
      }
      // Epoch 1 results fix epoch 1's plan; epoch 2's untargeted slices continue the order.
      const epoch1 = live.map((pos) => result(pos, 1, [22]));
      d.observe(epoch1, epoch1, false);
      const next = live
        .map((pos) => d.slice(host(pos, 2, [22])))
        .flat()
        .filter((p) => !known.includes(p) && p !== 22);
      // Unless two epochs hold more than a full pass, the second repeats nothing of the first.
      if (untargeted.length + next.length <= 65535 - 1 - known.length) {
        const first = new Set(untargeted);
        expect(next.filter((p) => first.has(p))).toEqual([]);
      }
    },
  );

  test('a state restored from JSON and a state merged with an empty one give the same slices', () => {
    const options = resolveCommonOptions({ budget: 100 });
    const d = new Discovery(options, defaults, catalog, 20);
    const rs = [1, 2, 3, 5, 8, 13].map((pos) => result(pos, 0, [22, 31337]));
    d.observe(rs, rs, false);
    const saved = JSON.parse(JSON.stringify(d.toJSON()));
    const restored = new Discovery(options, defaults, catalog, 20, saved);
    const merged = new Discovery(options, defaults, catalog, 20, mergeDiscoveryStates(saved, emptyDiscoveryState()));
    for (const pos of [1, 5, 13]) {
      expect(restored.slice(host(pos, 1, [22]))).toEqual(d.slice(host(pos, 1, [22])));
      expect(merged.slice(host(pos, 1, [22]))).toEqual(d.slice(host(pos, 1, [22])));
    }
    expect(mergeDiscoveryStates(saved, emptyDiscoveryState())).toEqual(mergeDiscoveryStates(emptyDiscoveryState(), saved));
  });
});

describe('allowance by liveness', () => {
  test('silent hosts get the floor, answering hosts the rest: the average stays at the budget', () => {
    const options = resolveCommonOptions({ budget: 100 });
    const d = new Discovery(options, defaults, catalog, 20);
    const rs = Array.from({ length: 200 }, (_, i) => result(i + 1, 0, i < 80 ? [22] : []));
    d.observe(rs, rs, false);
    const rng = createRng('a');
    const live = Array.from({ length: 80 }, (_, i) => d.allowance(host(i + 1, 1, [22]), rng));
    const dead = Array.from({ length: 120 }, (_, i) => d.allowance(host(i + 81, 1, []), rng));
    expect(new Set(dead)).toEqual(new Set([10]));
    const mean = [...live, ...dead].reduce((a, b) => a + b, 0) / 200;
    expect(Math.abs(mean - 100)).toBeLessThan(1.5);
  });

  test('under a budget of thousands a never-visited host gets at most firstVisitCap probes, a silent one a floor', () => {
    const options = resolveCommonOptions({ budget: 20000 });
    const d = new Discovery(options, defaults, catalog, 20);
    expect(d.allowance(host(1, 0, [], -1), createRng('b'))).toBe(1000);
    // 200 of 254 hosts answered: their share (b (L + D) - floor D) / L = 25,130 fits the port space.
    const rs = Array.from({ length: 254 }, (_, i) => result(i + 1, 0, i < 200 ? [22] : []));
    d.observe(rs, rs, false);
    expect(d.allowance(host(220, 1, []), createRng('c'))).toBe(1000);
    expect(d.silentAllowance(1, 20000)).toBe(1000);
    expect(d.liveAllowance(1, 20000)).toBeCloseTo((20000 * 254 - 1000 * 54) / 200, 6);
  });

  test.prop(
    [
      fc.integer({ min: 1, max: 254 }),
      fc.integer({ min: 0, max: 254 }),
      fc.integer({ min: 1, max: 65535 }),
      fc.integer({ min: 1, max: 65535 }),
    ],
    {
      numRuns: 200,
    },
  )(
    'budget conservation: the epoch spends b (L + D) unless every host already gets every port it can use; silent hosts never get less than the floor',
    (live, dead, budget, maxPerHost) => {
      const options = resolveCommonOptions({ budget: Math.min(budget, maxPerHost), maxPerHost });
      const d = new Discovery(options, defaults, catalog, 20);
      const rs = Array.from({ length: live + dead }, (_, i) => ({
        ...result((i % 254) + 1, 0, i < live ? [22] : []),
        ip: `198.18.${Math.floor(i / 254)}.${(i % 254) + 1}`,
      }));
      d.observe(rs, rs, false);
      const b = Math.min(budget, maxPerHost);
      const l = d.liveAllowance(1, b);
      const s = d.silentAllowance(1, b);
      expect(l).toBeLessThanOrEqual(maxPerHost);
      expect(s).toBeLessThanOrEqual(maxPerHost);
      expect(s).toBeGreaterThanOrEqual(d.deadFloor(b));
      const spent = l * live + s * dead;
      if (l < maxPerHost || s < maxPerHost) expect(spent).toBeCloseTo(b * (live + dead), 3);
      else expect(spent).toBeLessThanOrEqual(b * (live + dead) + 1e-6);
    },
  );

  test('what answering hosts cannot use goes to the silent ones; a budget that covers the port space gives every host every port', () => {
    // A /28 with 8 answering and 8 silent hosts, as the lab's drop firewall shows it.
    const rs = Array.from({ length: 16 }, (_, i) => result(i + 1, 0, i < 8 ? [22] : []));
    const at = (budget: number) => {
      const d = new Discovery(resolveCommonOptions({ budget }), defaults, catalog, 20);
      d.observe(rs, rs, false);
      return d;
    };
    // 40,000: the answering hosts' share (40,000 x 16 - 1,000 x 8) / 8 = 79,000 exceeds the port space.
    const d = at(40000);
    expect(d.liveAllowance(1, 40000)).toBe(65535);
    expect(d.silentAllowance(1, 40000)).toBe((40000 * 16 - 65535 * 8) / 8);
    expect(d.allowance(host(12, 1, []), createRng('e'))).toBeGreaterThanOrEqual(14465);
    expect(d.describe(1).join('\n')).toMatch(/silent hosts 14465 \(floor 1000 \+ what the answering hosts/);
    // The stretch beyond the floor moves on every epoch: no port twice in two consecutive epochs' stretches.
    const s1 = d.slice(host(12, 1, []));
    const s2 = d.slice(host(12, 2, []));
    expect(s1.length).toBe(14465 - 1000);
    expect(new Set([...s1, ...s2]).size).toBe(s1.length + s2.length);
    // 65,535: every port for silent and never-visited hosts alike.
    const full = at(65535);
    expect(full.allowance(host(12, 1, []), createRng('f'))).toBe(65535);
    expect(full.allowance(host(200, 1, [], -1), createRng('g'))).toBe(65535);
    expect(full.describe(1).join('\n')).toMatch(
      /silent hosts 65535 \(the budget covers all 65535 ports\), never visited 65535 \(every port\)/,
    );
    // At budget 100 nothing changes: the floor (10).
    expect(at(100).silentAllowance(1, 100)).toBe(10);
    // Nobody answered: the whole epoch's budget is the silent hosts'.
    const dark = new Discovery(resolveCommonOptions({ budget: 100 }), defaults, catalog, 20);
    const none = Array.from({ length: 16 }, (_, i) => result(i + 1, 0, []));
    dark.observe(none, none, false);
    expect(dark.allowance(host(3, 1, []), createRng('h'))).toBe(100);
  });
});

describe('small scopes', () => {
  test.each(['ucb', 'thompson', 'cooccurrence', 'adaptive'])(
    '%s: under a budget of thousands a never-visited host that answers gets the live allowance in its follow-up rounds, one that does not stays at firstVisitCap',
    (name) => {
      const strategy = createStrategy({ strategy: name, budget: 20000 }, { catalog });
      const answering = new HostSession(strategy, host(1, 0, [], -1), 's').runToEnd((p) => p === 22);
      expect(answering.probed.length).toBe(20000);
      expect(answering.open).toEqual([22]);
      const silent = new HostSession(strategy, host(2, 0, [], -1), 's').runToEnd(() => false);
      expect(silent.probed.length).toBe(1000);
      // The raised allowance survives a restore mid-visit (the coordinator keeps the session state).
      const session = new HostSession(strategy, host(3, 0, [], -1), 's');
      expect(session.next()).toContain(22);
      session.report([22]);
      expect(session.allowance).toBe(1000);
      const restored = new HostSession(strategy, host(3, 0, [], -1), 's', session.toJSON());
      expect(restored.next()?.length ?? 0).toBeGreaterThan(0);
      expect(restored.allowance).toBe(20000);
    },
  );

  test.each(['epsilon-greedy', 'ucb', 'thompson', 'lin-ucb', 'cooccurrence', 'adaptive'])(
    '%s: under a budget that covers every port, a host silent on its first look (its only open port outside the first 500 probes) is found the next epoch',
    (name) => {
      // The lab's /28 behind a drop firewall: 8 hosts answer on 22, host 9 runs only a port no
      // list holds, the other 7 addresses are dead. The first look was capped (500 probes: the
      // scope was first seen under a smaller derived budget), so host 9 was classified silent.
      const hidden = 47613;
      const openOf = (pos: number): number[] => (pos <= 8 ? [22] : pos === 9 ? [hidden] : []);
      const visit = (strategy: ReturnType<typeof createStrategy>, pos: number, epoch: number, previous?: HostResult) =>
        new HostSession(strategy, host(pos, epoch, [...(previous?.open ?? [])], previous ? epoch - 1 : -1), 's').runToEnd((p) =>
          openOf(pos).includes(p),
        );
      const first = createStrategy({ strategy: name, budget: 2000, params: { firstVisitCap: 500 } }, { catalog });
      const epoch0 = Array.from({ length: 16 }, (_, i) => visit(first, i + 1, 0));
      expect(epoch0[8]!.probed.length).toBe(500);
      expect(epoch0[8]!.open).toEqual([]);
      first.observe(epoch0);
      // The policy's budget now covers the port space: the silent host gets all of it.
      const strategy = createStrategy({ strategy: name, budget: 65535, params: { firstVisitCap: 500 } }, { catalog }, first.state());
      const epoch1 = Array.from({ length: 16 }, (_, i) => visit(strategy, i + 1, 1, epoch0[i]));
      expect(epoch1[8]!.open).toEqual([hidden]);
      expect(epoch1[8]!.probed.length).toBe(65535);
      expect(epoch1[15]!.probed.length).toBe(65535);
      expect(strategy.explain(3).notes!.join('\n')).toMatch(/silent hosts 65535 \(the budget covers all 65535 ports\)/);
      // A never-visited host under that budget gets every port on its first look.
      const fresh = createStrategy({ strategy: name, budget: 65535, params: { firstVisitCap: 500 } }, { catalog });
      expect(visit(fresh, 9, 0).open).toEqual([hidden]);
    },
  );

  test('explain says a budget that covers the port space makes a full pass every epoch on every host', () => {
    // A /26 behind a drop firewall: 3 hosts answer, the rest are silent (they get every port too).
    const observations: Observation[] = [];
    for (let i = 1; i <= 64; i++) observations.push({ epoch: 0, ip: `198.18.3.${i}`, tags: ['lab'], open: i <= 3 ? [22] : [] });
    const full = createStrategy({ strategy: 'adaptive', budget: 65535 }, { catalog });
    simulate(makeRecording(observations), full, { seed: 's' });
    expect(full.explain(1).notes!.find((n) => n.startsWith('full pass'))).toBe(
      'full pass over all 65535 ports: every epoch, on every host (the budget covers the port space)',
    );
    // Nothing is planned there: no line about sweeps, slices or a discovery share, which do not apply.
    const notes = full.explain(1).notes!.join('\n');
    expect(notes).not.toMatch(/full sweeps in epoch|coordinated discovery/);
    expect(notes).toMatch(/answering hosts 65535, silent hosts 65535 \(the budget covers all 65535 ports\)/);
    expect(notes).toMatch(/per-prefix statistics for 1 prefix$/m);
    // Every visit is a sweep there: its split is all exploration, for every learner.
    for (const name of ['adaptive', 'epsilon-greedy', 'ucb', 'thompson', 'lin-ucb', 'cooccurrence']) {
      const learner = createStrategy({ strategy: name, budget: 65535, mustHave: [22] }, { catalog });
      simulate(makeRecording(observations), learner, { seed: 's' });
      expect(learner.explain(1).split, name).toEqual({ mustHave: 1, fixed: 0, history: 0, learned: 0, exploration: 65534 });
    }
    // Below the port space the estimate stands.
    const small = createStrategy({ strategy: 'adaptive', budget: 300 }, { catalog });
    simulate(makeRecording(observations), small, { seed: 's' });
    expect(small.explain(1).notes!.find((n) => n.startsWith('full pass'))).toMatch(/^full pass over all \d+ ports: [\d.]+ epochs/);
  });

  test('a port outside every list is found within the number of epochs explain predicts for a full pass', () => {
    // One /24: 24 hosts answer on 22, and all of them on 47613 (no list knows it); the rest are silent.
    const hidden = 47613;
    expect(catalog.rank(hidden)).toBe(-1);
    const epochs = 40;
    const observations: Observation[] = [];
    for (let e = 0; e < epochs; e++) {
      for (let i = 1; i <= 64; i++) observations.push({ epoch: e, ip: `198.18.3.${i}`, tags: ['lab'], open: i <= 24 ? [22, hidden] : [] });
    }
    const recording = makeRecording(observations);
    const strategy = createStrategy({ strategy: 'ucb', budget: 300 }, { catalog });
    const probe = createStrategy({ strategy: 'ucb', budget: 300 }, { catalog });
    // What explain predicts after one epoch (24 answering hosts, 40 silent).
    simulate(makeRecording(observations.filter((o) => o.epoch === 0)), probe, { seed: 's' });
    const note = probe.explain(5).notes!.find((n) => n.startsWith('full pass'))!;
    const predicted = Number(/: ([\d.]+) epochs/.exec(note)![1]);
    expect(predicted).toBeGreaterThan(1);
    expect(predicted).toBeLessThan(epochs - 2);
    const r = simulate(recording, strategy, { seed: 's' });
    const first = r.perEpoch.findIndex((e) => e.found > 24 * 1);
    expect(first).toBeGreaterThan(0);
    // Epoch 0 has no slices (nothing known about liveness): the pass starts in epoch 1.
    expect(first).toBeLessThanOrEqual(Math.ceil(predicted) + 1);
  });
});

describe('the slice share following its yield (sliceYield)', () => {
  /**
   * Six epochs of one /24 whose 60 answering hosts run 22; each epoch host 1's slice finds a port
   * nobody had seen open, which the other hosts run the next epoch (`spreads`) or not.
   */
  function run(spreads: boolean): Discovery {
    const d = new Discovery(resolveCommonOptions({ budget: 100 }), { ...defaults, sliceYield: true }, catalog, 20);
    const first = Array.from({ length: 100 }, (_, i) => result(i + 1, 0, i < 60 ? [22] : []));
    d.observe(first, first, false);
    let last: number | undefined;
    const found = new Set([22]);
    for (let e = 1; e <= 6; e++) {
      // The first host whose slice holds a port nobody has seen open finds it (a shrunk share
      // leaves host 1 a slice of ports open elsewhere only).
      let finder = 0;
      let find: number | undefined;
      while (find === undefined) find = d.slice(host(++finder, e, [22])).find((p) => !found.has(p));
      found.add(find);
      const rs = Array.from({ length: 60 }, (_, i): HostResult => {
        const open = i === finder - 1 ? [22, find] : spreads && last !== undefined ? [22, last] : [22];
        return { ...result(i + 1, e, open), probed: [...new Set([22, find, ...(last ? [last] : [])])], previousOpen: [22] };
      });
      d.observe(rs, rs, false);
      last = find;
    }
    return d;
  }

  test('slices whose finds are one-offs shrink to a tenth of the share; slices whose finds spread in their prefix keep it', () => {
    const poor = run(false);
    const rich = run(true);
    // Nothing measured yet: the full share.
    expect(poor.sliceFactor(1)).toBe(1);
    expect(poor.sliceFactor(7)).toBe(SLICE_YIELD_FLOOR);
    expect(SLICE_YIELD_FLOOR).toBe(0.1);
    expect(rich.sliceFactor(7)).toBe(1);
    expect(poor.width(7)).toBeLessThan(rich.width(7));
    expect(poor.describe(7).join('\n')).toMatch(/share 0.25 x 0.10 for the slices' measured yield/);
    // The counts are in the state: restored and merged-with-empty states give the same factor, and merge is symmetric.
    const saved = JSON.parse(JSON.stringify(poor.toJSON()));
    expect(saved.sliceYield.counts.length).toBeGreaterThan(0);
    const p = { ...defaults, sliceYield: true };
    const options = resolveCommonOptions({ budget: 100 });
    expect(new Discovery(options, p, catalog, 20, saved).sliceFactor(7)).toBe(SLICE_YIELD_FLOOR);
    expect(new Discovery(options, p, catalog, 20, mergeDiscoveryStates(saved, emptyDiscoveryState())).sliceFactor(7)).toBe(
      SLICE_YIELD_FLOOR,
    );
    const other = JSON.parse(JSON.stringify(rich.toJSON()));
    expect(mergeDiscoveryStates(saved, other)).toEqual(mergeDiscoveryStates(other, saved));
    // Off (adaptive's default), the factor is 1 whatever was measured.
    expect(new Discovery(options, defaults, catalog, 20, saved).sliceFactor(7)).toBe(1);
  });

  test("thompson's draws outside its candidates shrink with the slices' yield: few where slices find one-offs", () => {
    // Ports thompson probes outside its candidates (nmap's top 300, 22) at epoch 7 on 60 answering
    // hosts, restored from each scope's discovery state. No slices or sweeps (discoveryShare and
    // sweepShare 0), so only its own tail draws are outside; the slice factor comes from the counts.
    const outside = (d: Discovery): number => {
      const state = { stats: emptyPortStatsState(), discovery: JSON.parse(JSON.stringify(d.toJSON())) as DiscoveryState };
      const params = { exploreTail: true, discoveryShare: 0, sweepShare: 0 };
      const strategy = createStrategy({ strategy: 'thompson', budget: 100, params }, { catalog }, state);
      const top = new Set(catalog.byFrequency.slice(0, 300));
      let n = 0;
      for (let i = 1; i <= 60; i++) {
        const r = new HostSession(strategy, host(i, 7, [22]), `h${i}`).runToEnd((p) => p === 22);
        n += r.probed.filter((p) => p !== 22 && !top.has(p)).length;
      }
      return n;
    };
    const poor = outside(run(false));
    const rich = outside(run(true));
    // tailShare 0.1 of a ~97-port room: ~10 per host where finds spread, 1-2 at the floor's factor
    // 0.1 (the old code drew ~10 per host in both).
    expect(rich).toBeGreaterThan(300);
    expect(poor).toBeLessThan(rich / 3);
  });

  test('a malformed sliceYield in a state is refused, naming the field', () => {
    const options = resolveCommonOptions({ budget: 100 });
    const bad = { ...emptyDiscoveryState(), sliceYield: { counts: [[1, 2]], watch: 'x' } };
    expect(() => new Discovery(options, defaults, catalog, 20, bad as never)).toThrow(/sliceYield|counts/);
  });
});

describe('the sweep tier', () => {
  test.prop([
    fc.array(fc.tuple(fc.integer({ min: 0, max: 11 }), fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 900 })), {
      maxLength: 12,
    }),
    fc.integer({ min: 0, max: 13 }),
    fc.integer({ min: 1, max: 200 }),
  ])(
    "cumulative mode (memory 1, prior 1) is adaptive's rule from before the tier was shared: (hits + target) / (sweeps + 1) / target",
    (rows, epoch, target) => {
      const counts = [...new Map(rows.map(([e, s, h]) => [e, [e, s, h] as const])).values()].sort((a, b) => a[0] - b[0]);
      const y = new SweepYield({ counts, watch: [] });
      // The old rule: sweeps learned before the last epoch, hits (booked to the result's epoch) before this one.
      const sweeps = counts.filter(([e]) => e < epoch - 1).reduce((a, [, s]) => a + s, 0);
      const hits = counts.filter(([e]) => e < epoch - 1).reduce((a, [, , h]) => a + h, 0);
      const late = counts.filter(([e]) => e === epoch - 1).reduce((a, [, , h]) => a + h, 0);
      expect(y.factor(epoch, target, 1, 1)).toBe(Math.min(1, (hits + late + target) / (sweeps + 1) / target));
      // Recent mode forgets: sweeps that found nothing long ago weigh less than recent ones.
      expect(y.factor(epoch, target, 0.5, 0.5)).toBeGreaterThanOrEqual(0);
      expect(y.factor(epoch, target, 0.5, 0.5)).toBeLessThanOrEqual(1);
    },
  );

  test('with the bandits defaults, sweeps at every budget (none below sweepMinBudget when set); whole sweeps paced where one exceeds the share of an epoch, none with sweepWithinShare', () => {
    const plan = (
      hosts: number,
      budget: number,
      within = BANDIT_DISCOVERY.sweepWithinShare,
      minBudget = BANDIT_DISCOVERY.sweepMinBudget,
    ) => {
      const d = new Discovery(
        resolveCommonOptions({ budget }),
        { ...defaults, ...BANDIT_DISCOVERY, sweepWithinShare: within, sweepMinBudget: minBudget },
        catalog,
        20,
      );
      const rs = Array.from({ length: hosts }, (_, i) => ({
        ...result((i % 254) + 1, 0, [22]),
        ip: `198.18.${Math.floor(i / 254)}.${(i % 254) + 1}`,
        prefix: `198.18.${Math.floor(i / 254)}.0/24`,
      }));
      d.observe(rs, rs, false);
      return d.sweepOdds(1, '', '', 65535).sweeps;
    };
    expect(plan(4096, 100)).toBeGreaterThan(0);
    expect(BANDIT_DISCOVERY.sweepMinBudget).toBe(0);
    expect(plan(4096, 25)).toBeGreaterThan(0);
    expect(plan(4096, 25, BANDIT_DISCOVERY.sweepWithinShare, 50)).toBe(0);
    // 1,024 hosts at 100: half the share (no yield measured yet) cannot hold one whole sweep.
    expect(BANDIT_DISCOVERY.sweepWithinShare).toBe(false);
    expect(plan(1024, 100)).toBeGreaterThan(0);
    expect(plan(1024, 100, true)).toBe(0);
  });
});

describe('adaptive states written before the sweep tier was shared', () => {
  test('a state with top-level sweeps and sweepYield loads and merges into the same choices', () => {
    const observations: Observation[] = [];
    for (let e = 0; e < 3; e++)
      for (let i = 1; i <= 200; i++)
        observations.push({
          epoch: e,
          ip: `198.18.${i % 4}.${i}`,
          tags: ['lab'],
          open: i % 3 === 0 ? [22, 40123] : i % 3 === 1 ? [80] : [],
        });
    const s = createStrategy({ strategy: 'adaptive', budget: 400 }, { catalog });
    simulate(makeRecording(observations), s, { seed: 'legacy' });
    const state = JSON.parse(JSON.stringify(s.state())) as { discovery: Record<string, unknown> } & Record<string, unknown>;
    const { sweeps, sweepYield, ...discovery } = state.discovery;
    expect((sweeps as { prefixes: unknown[] }).prefixes.length).toBeGreaterThan(0);
    const legacy = { ...state, discovery, sweeps, sweepYield };
    const a = createStrategy({ strategy: 'adaptive', budget: 400 }, { catalog }, state);
    const b = createStrategy({ strategy: 'adaptive', budget: 400 }, { catalog }, legacy);
    const empty = createStrategy({ strategy: 'adaptive', budget: 400 }, { catalog }).state();
    const merged = createStrategy(
      { strategy: 'adaptive', budget: 400 },
      { catalog },
      strategies.adaptive.merge(empty as never, legacy as never),
    );
    for (let i = 1; i <= 40; i++) {
      const h = { ...host(i, 3, i % 3 === 0 ? [22, 40123] : []), ip: `198.18.${i % 4}.${i}`, prefix: `198.18.${i % 4}.0/24` };
      const rng = () => createRng(`r${i}`);
      expect(b.allowance(h, rng())).toBe(a.allowance(h, rng()));
      expect(merged.allowance(h, rng())).toBe(a.allowance(h, rng()));
    }
    expect(b.state()).toEqual(a.state());
  });
});
