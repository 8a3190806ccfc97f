import { fc, test as prop } from '@fast-check/vitest';
import { describe, expect, test } from 'vitest';
import { loadNmapServices } from '../../src/catalog/index.js';
import { PortRanges } from '../../src/core/ports.js';
import { createRng } from '../../src/core/rng.js';
import { HostSession, runHostSession } from '../../strategies/host-session.js';
import { createStrategy, type StrategySpec } from '../../strategies/build.js';
import type { HostContext, RoundContext, Strategy } from '../../strategies/types.js';
import { hostContext } from '../helpers/host-context.js';

const catalog = loadNmapServices();
const env = { catalog };

const host = hostContext;

/** The ports a strategy probes on one host-epoch, in probe order. */
function probe(spec: StrategySpec, overrides: Partial<HostContext> = {}, seed = 's'): number[] {
  const strategy = createStrategy(spec, env);
  return [...runHostSession(new HostSession(strategy, host(overrides), seed), () => false).probed];
}

function round(overrides: Partial<RoundContext> = {}): RoundContext {
  return { ...host(), round: 0, probed: [], found: [], remaining: 10, ...overrides };
}

describe('fixed', () => {
  test('keeps the list order and truncates it to the budget', () => {
    expect(probe({ strategy: 'fixed', params: { ports: [443, 22, 80, 8080] }, budget: 3 })).toEqual([443, 22, 80]);
    expect(probe({ strategy: 'fixed', params: { ports: '8443,22,1-3,22' }, budget: 10 })).toEqual([8443, 22, 1, 2, 3]);
  });

  test("defaults to nmap's top 1,000 TCP ports", () => {
    expect(probe({ strategy: 'fixed', budget: 1000 })).toEqual(catalog.top(1000));
    expect(probe({ strategy: 'fixed', budget: 2000 })).toEqual(catalog.top(1000));
  });
});

describe('top-k', () => {
  test("follows nmap's frequency order", () => {
    const ports = probe({ strategy: 'top-k', budget: 50 });
    expect(ports).toEqual(catalog.top(50));
    for (let i = 1; i < ports.length; i++) expect(catalog.frequency(ports[i - 1]!)).toBeGreaterThanOrEqual(catalog.frequency(ports[i]!));
  });

  test('skips ports outside the probeable set, and that does not change later hosts', () => {
    const strategy = createStrategy({ strategy: 'top-k', budget: 5 }, env);
    const narrow = runHostSession(new HostSession(strategy, host({ probeable: PortRanges.parse('1-100') }), 's'), () => false).probed;
    expect(narrow).toEqual(
      catalog
        .top(200)
        .filter((p) => p <= 100)
        .slice(0, 5),
    );
    const wide = runHostSession(new HostSession(strategy, host(), 's'), () => false).probed;
    expect(wide).toEqual(catalog.top(5));
  });

  test('a later round skips ports already probed, and callers cannot corrupt the next answer', () => {
    const strategy = createStrategy({ strategy: 'top-k', budget: 5 }, env);
    const first = strategy.select(round({ remaining: 5 }), createRng(1));
    first.ports.length = 0;
    expect(strategy.select(round({ remaining: 5 }), createRng(1)).ports).toEqual(catalog.top(5));
    const later = strategy.select(round({ round: 1, probed: [80, 23], remaining: 3 }), createRng(1)).ports;
    expect(later).toEqual(
      catalog
        .top(10)
        .filter((p) => p !== 80 && p !== 23)
        .slice(0, 3),
    );
  });
});

describe('random', () => {
  test('is seeded: the same seed, epoch and host give the same ports; others differ', () => {
    const spec = { strategy: 'random', budget: 20 };
    const a = probe(spec);
    expect(probe(spec)).toEqual(a);
    expect(probe(spec, {}, 'other')).not.toEqual(a);
    expect(probe(spec, { ip: '198.18.0.11' })).not.toEqual(a);
    expect(probe(spec, { epoch: 1 })).not.toEqual(a);
    expect(new Set(a).size).toBe(20);
  });

  test('spreads over the whole port space', () => {
    const ports = probe({ strategy: 'random', budget: 2000 });
    expect(ports.filter((p) => p > 32768).length).toBeGreaterThan(800);
    expect(ports.filter((p) => p <= 32768).length).toBeGreaterThan(800);
  });

  test('sweeps a probeable set smaller than the budget', () => {
    const ports = probe({ strategy: 'random', budget: 50 }, { probeable: PortRanges.parse('10-19') });
    expect([...ports].sort((x, y) => x - y)).toEqual([10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
  });
});

describe('must-have and excluded ports, for every baseline', () => {
  const baselines = ['fixed', 'top-k', 'random'] as const;

  test.each(baselines)('%s probes must-have ports first, in order', (name) => {
    const ports = probe({ strategy: name, budget: 6, mustHave: [31337, 2222] });
    expect(ports.slice(0, 2)).toEqual([31337, 2222]);
    expect(ports).toHaveLength(6);
  });

  prop.prop([
    fc.constantFrom(...baselines),
    fc.integer({ min: 1, max: 60 }),
    fc.uniqueArray(fc.integer({ min: 1, max: 200 }), { maxLength: 40 }),
    fc.uniqueArray(fc.integer({ min: 1, max: 65535 }), { maxLength: 4 }),
    fc.string(),
  ])('never probes an excluded port, never repeats one, and spends exactly the budget', (name, budget, excludeRaw, mustRaw, seed) => {
    const exclude = excludeRaw.filter((p) => !mustRaw.includes(p));
    const mustHave = mustRaw.slice(0, budget);
    const ports = probe({ strategy: name, budget, mustHave, exclude }, {}, seed);
    expect(ports.filter((p) => exclude.includes(p))).toEqual([]);
    expect(new Set(ports).size).toBe(ports.length);
    expect(ports).toHaveLength(budget);
    expect(ports.slice(0, mustHave.length)).toEqual(mustHave);
  });
});

describe('HostSession fast paths', () => {
  test('a host context with extra fields reaches the strategy whole', () => {
    const rounds: RoundContext[] = [];
    const inner = createStrategy({ strategy: 'top-k', budget: 2 }, env);
    const spy: Strategy = {
      ...inner,
      select(r, rng) {
        rounds.push(r);
        return inner.select(r, rng);
      },
    };
    const extended = { ...host(), asn: 64500 } as HostContext;
    runHostSession(new HostSession(spy, extended, 's'), () => false);
    runHostSession(new HostSession(spy, host(), 's'), () => false);
    expect((rounds[0] as unknown as { asn: number }).asn).toBe(64500);
    expect(rounds[1]).toEqual({ ...host(), round: 0, probed: [], found: [], remaining: 2 });
  });

  test('reported ports are matched against the pending round only, once each', () => {
    const strategy = createStrategy({ strategy: 'fixed', params: { ports: [22, 80, 443] }, budget: 3 }, env);
    const session = new HostSession(strategy, host(), 's');
    expect(session.next()).toEqual([22, 80, 443]);
    session.report([443, 9999, 22, 443]);
    expect(session.next()).toBeNull();
    expect(session.result()).toMatchObject({ probed: [22, 80, 443], open: [22, 443] });
  });
});
