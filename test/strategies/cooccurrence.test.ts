import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { loadNmapServices } from '../../src/catalog/index.js';
import { createStrategy } from '../../strategies/build.js';
import { HostSession, runHostSession } from '../../strategies/host-session.js';
import type { HostContext, RoundContext } from '../../strategies/types.js';
import { createRng } from '../../src/core/rng.js';
import { strategyContract } from './contract.js';
import { PairCounts, conditionalEstimate, emptyPairCounts, mergePairCounts } from '../../strategies/cooccurrence/pair-counts.js';
import { hostContext } from '../helpers/host-context.js';

const options = { decay: 1, pairCap: 16, byTag: false };

describe('pair counts', () => {
  test('counts B open among the host-epochs where A was open and B was probed', () => {
    const pc = new PairCounts(options);
    pc.learn(0, [], [22, 80], [22, 80, 443]);
    pc.learn(0, [], [22], [22, 80, 443]);
    pc.learn(0, [], [22], [22, 443]); // 80 not probed: no trial for (22, 80)
    const t = pc.table('*');
    expect(t.support(22)).toBe(3);
    expect(t.counts(22, 80)).toEqual([1, 2]);
    expect(t.counts(80, 22)).toEqual([1, 1]);
    expect(t.counts(22, 443)).toEqual([0, 0]); // never open together: no pair kept
  });

  test('hosts with more open ports than the cap teach no pairs', () => {
    const pc = new PairCounts({ ...options, pairCap: 2 });
    pc.learn(0, [], [1, 2, 3], [1, 2, 3]);
    expect(pc.table('*').size).toBe(0);
  });

  test('discounting forgets a pair that stopped co-occurring', () => {
    const pc = new PairCounts({ ...options, decay: 0.5 });
    for (let e = 0; e < 3; e++) pc.learn(e, [], [22, 8022], [22, 8022]);
    const before = pc.table('*').counts(22, 8022);
    for (let e = 3; e < 20; e++) pc.learn(e, [], [22], [22, 8022]);
    const [hits, trials] = pc.table('*').counts(22, 8022);
    expect(before[0] / before[1]).toBe(1);
    expect(hits / trials).toBeLessThan(0.05);
  });

  test('per-tag tables are kept when asked', () => {
    const pc = new PairCounts({ ...options, byTag: true });
    pc.learn(0, ['dmz'], [22, 2222], [22, 2222]);
    expect(pc.keys()).toEqual(['*', 'dmz']);
    expect(pc.table('dmz').counts(22, 2222)).toEqual([1, 1]);
  });

  test('the estimate shrinks toward the marginal', () => {
    expect(conditionalEstimate(0, 0, 0.1, 2)).toBeCloseTo(0.1);
    expect(conditionalEstimate(10, 10, 0.1, 2)).toBeGreaterThan(0.8);
  });

  const history = fc.array(
    fc.record({
      epoch: fc.integer({ min: 0, max: 4 }),
      open: fc.uniqueArray(fc.integer({ min: 1, max: 30 }), { maxLength: 5 }),
      extra: fc.uniqueArray(fc.integer({ min: 1, max: 30 }), { maxLength: 5 }),
    }),
    { maxLength: 12 },
  );

  function learnAll(h: ReadonlyArray<{ epoch: number; open: number[]; extra: number[] }>, decay: number) {
    const pc = new PairCounts({ ...options, decay });
    for (const r of [...h].sort((x, y) => x.epoch - y.epoch)) {
      const open = [...r.open].sort((a, b) => a - b);
      pc.learn(r.epoch, [], open, [...new Set([...open, ...r.extra])]);
    }
    return pc.toState();
  }

  test.prop([history, history])('merge is order-independent and the state round-trips through JSON', (h1, h2) => {
    const a = learnAll(h1, 0.8);
    const b = learnAll(h2, 0.8);
    const opts = { ...options, decay: 0.8 };
    expect(mergePairCounts(a, b)).toEqual(mergePairCounts(b, a));
    expect(mergePairCounts(a, emptyPairCounts())).toEqual(a);
    const restored = new PairCounts(opts, JSON.parse(JSON.stringify(a)));
    expect(restored.toState()).toEqual(a);
  });
});

describe('cooccurrence strategy', () => {
  const env = { catalog: loadNmapServices() };
  const host = (ip: string, epoch: number): HostContext => hostContext({ ip, tags: ['lab'], prefix: '198.18.0.0/24', epoch });

  /** Hosts of kind A run 22 + 47001, kind B run 80 + 47002: one port of each pair is rare in nmap. */
  function truth(i: number): Set<number> {
    return i % 2 === 0 ? new Set([22, 47001]) : new Set([80, 47002]);
  }

  function teach(strategy: ReturnType<typeof createStrategy>, epochs: number): void {
    for (let e = 0; e < epochs; e++) {
      const results = [];
      for (let i = 0; i < 40; i++) {
        const open = truth(i);
        // Seed knowledge: a few hosts are swept so the rare ports are seen at all.
        const session = new HostSession(strategy, host(`198.18.0.${i + 1}`, e), 'seed');
        results.push(runHostSession(session, (p) => open.has(p)));
        if (i < 4) {
          results.push({ ...results.at(-1)!, probed: [...open, 1, 2, 3], open: [...open].sort((a, b) => a - b), ip: `198.18.1.${i}` });
        }
      }
      strategy.observe(results);
    }
  }

  test('follows up on what round 0 found with the learned partner port', () => {
    const strategy = createStrategy({ strategy: 'cooccurrence', budget: 10, params: { seedShare: 0.3 } }, env);
    teach(strategy, 3);
    const round = (found: number[]): RoundContext => ({ ...host('198.18.0.100', 3), round: 1, probed: [22, 80, 443], found, remaining: 7 });
    const afterSsh = strategy.select(round([22]), createRng(1));
    const afterWeb = strategy.select(round([80]), createRng(1));
    expect(afterSsh.ports[0]).toBe(47001);
    expect(afterWeb.ports[0]).toBe(47002);
    expect(afterSsh.followUp).toBe(false);
    // Round 0 asks for a follow-up and spends only the seed share.
    const first = strategy.select({ ...host('198.18.0.101', 3), round: 0, probed: [], found: [], remaining: 10 }, createRng(1));
    expect(first.ports).toHaveLength(3);
    expect(first.followUp).toBe(true);
  });

  test("the last round spends epsilon of the visit on draws from nmap's prior, past what the ranking took", () => {
    const lastRound = (epsilon: number) => {
      const strategy = createStrategy({ strategy: 'cooccurrence', budget: 100, params: { epsilon, discoveryShare: 0 } }, env);
      // Round 1 of a never-taught host: the marginal ranking is nmap's order.
      const round: RoundContext = { ...host('198.18.0.7', 0), round: 1, probed: env.catalog.top(40), found: [], remaining: 60 };
      return strategy.select(round, createRng('explore')).ports;
    };
    const greedy = lastRound(0);
    const explored = lastRound(0.1);
    expect(greedy).toEqual(env.catalog.top(100).slice(40));
    expect(explored).toHaveLength(60);
    // 0.1 of the visit's 100 probes: 10 draws; the ranking keeps the first 50 of its 60.
    expect(explored.slice(0, 50)).toEqual(greedy.slice(0, 50));
    const drawn = explored.slice(50);
    expect(drawn).toHaveLength(10);
    // Drawn from the table past the ranked head (none among nmap's top 90), by frequency: most
    // of them from the next few hundred ranks, not from the 64,000 ports nmap never saw open.
    const rank = (p: number) => env.catalog.top(65535).indexOf(p);
    expect(drawn.every((p) => rank(p) >= 90)).toBe(true);
    expect(drawn.filter((p) => rank(p) < 1000).length).toBeGreaterThanOrEqual(5);
  });

  test('explain lists the learned pairs and the per-tag estimates', () => {
    const strategy = createStrategy({ strategy: 'cooccurrence', budget: 10 }, env);
    teach(strategy, 2);
    const x = strategy.explain(5);
    expect(x.groups.map((g) => g.group)).toEqual(['*', 'lab']);
    expect(x.notes!.some((n) => n.includes('P(47001 open | 22 open)'))).toBe(true);
    expect(x.split.learned + x.split.mustHave + x.split.exploration).toBe(10);
  });
});

strategyContract('cooccurrence');
