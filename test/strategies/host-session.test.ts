import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { loadNmapServices } from '../../src/catalog/index.js';
import { PortRanges } from '../../src/core/ports.js';
import { FIRST_LOOK, HostSession, runHostSession } from '../../strategies/host-session.js';
import { strategyNames } from '../../strategies/registry.js';
import { createStrategy } from '../../strategies/build.js';
import { PortPicker } from '../../strategies/port-picker.js';
import { resolveCommonOptions } from '../../strategies/options.js';
import type { Decision, RoundContext, Strategy } from '../../strategies/types.js';
import { hostContext } from '../helpers/host-context.js';
import { simulate } from '../../simulator/index.js';
import { generateRecording } from '../../simulator/synthetic/index.js';
import { portText } from '../helpers/port-text.js';

const env = { catalog: loadNmapServices() };

const host = hostContext;

/** A two-round strategy: probes 80 and 443 first, then 8080..8082 if anything was found. */
function twoRound(): Strategy {
  const options = resolveCommonOptions({ budget: 5 });
  return {
    name: 'two-round',
    options,
    allowance: () => 5,
    select(round: RoundContext): Decision {
      const picker = new PortPicker(round, options);
      if (round.round === 0) {
        picker.addAll([80, 443]);
        return { ports: picker.ports, followUp: true };
      }
      if (round.found.length > 0) picker.addAll([8080, 8081, 8082, 8083]);
      return { ports: picker.ports, followUp: false };
    },
    observe: () => ({ learned: 0, pseudo: 0, lossy: false }),
    state: () => ({}),
    explain: () => ({ strategy: 'two-round', groups: [], split: { mustHave: 0, fixed: 0, history: 0, learned: 0, exploration: 0 } }),
  };
}

describe('HostSession', () => {
  test('drives follow-up rounds with what was found, within the allowance', () => {
    const session = new HostSession(twoRound(), host(), 'seed');
    expect(session.next()).toEqual([80, 443]);
    session.report([443, 9999]);
    expect(session.next()).toEqual([8080, 8081, 8082]);
    session.report([8081]);
    expect(session.next()).toBeNull();
    expect(session.result()).toMatchObject({ probed: [80, 443, 8080, 8081, 8082], open: [443, 8081], sweep: false });
  });

  test('stops after round 0 when nothing was found', () => {
    const result = runHostSession(new HostSession(twoRound(), host(), 'seed'), () => false);
    expect(result.probed).toEqual([80, 443]);
    expect(result.open).toEqual([]);
  });

  test('returns the same pending ports until they are reported, and survives a restore', () => {
    const session = new HostSession(twoRound(), host(), 'seed');
    expect(session.next()).toEqual([80, 443]);
    expect(session.next()).toEqual([80, 443]);
    session.report([80]);
    const saved = JSON.parse(JSON.stringify(session.toJSON()));
    const restored = new HostSession(twoRound(), host(), 'seed', saved);
    expect(restored.next()).toEqual([8080, 8081, 8082]);
  });

  test('abandon finishes the session', () => {
    const session = new HostSession(twoRound(), host(), 'seed');
    session.next();
    session.abandon();
    expect(session.next()).toBeNull();
  });

  test('caps the allowance at the probeable ports and maxPerHost', () => {
    const strategy = createStrategy({ strategy: 'random', budget: 100 }, env);
    const session = new HostSession(strategy, host({ probeable: PortRanges.parse('1-10') }), 's');
    expect(session.allowance).toBe(10);
    const result = runHostSession(session, () => false);
    expect([...result.probed].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(result.sweep).toBe(true);
    const capped = new HostSession(createStrategy({ strategy: 'random', budget: 100, maxPerHost: 7 }, env), host(), 's');
    expect(capped.allowance).toBe(7);
  });

  test('a strategy that overspends is stopped with a coded error', () => {
    const bad: Strategy = { ...twoRound(), select: () => ({ ports: [1, 2, 3, 4, 5, 6], followUp: false }) };
    expect(() => new HostSession(bad, host(), 's').next()).toThrow(/chose 6 ports with 5 remaining/);
  });
});

/** Every port, in a priority order of its own (not ascending), with a follow-up round that adds 7 more ports it was told to skip. */
function wholeSpace(seen: RoundContext[]): Strategy {
  const options = resolveCommonOptions({ budget: 65_535 });
  return {
    ...twoRound(),
    name: 'whole-space',
    options,
    allowance: () => 65_535,
    select(round: RoundContext): Decision {
      seen.push({ ...round, probed: [...round.probed], found: [...round.found] });
      if (round.round === 0)
        return { ports: Array.from({ length: Math.min(65_528, round.remaining) }, (_, i) => ((i * 7919) % 65_528) + 1), followUp: true };
      return { ports: round.found.length > 0 ? [65_529, 65_530, 65_531, 65_532, 65_533, 65_534, 65_535] : [], followUp: false };
    },
  };
}

describe('a first look before a large first decision', () => {
  test("hands out the strategy's choice for 1,000 ports alone, then the rest; the strategy decides as often and sees what it saw unsplit", () => {
    const open = new Set([22, 80, 31_337, 60_001]);
    const seenSplit: RoundContext[] = [];
    const session = new HostSession(wholeSpace(seenSplit), host(), 'seed');
    const first = session.next()!;
    expect(first).toHaveLength(FIRST_LOOK.ports);
    expect(first).toEqual(Array.from({ length: FIRST_LOOK.ports }, (_, i) => ((i * 7919) % 65_528) + 1));
    session.report(first.filter((p) => open.has(p)));
    // Stored between rounds (the coordinator keeps it with the next lease) and resumed elsewhere.
    const resumed = new HostSession(wholeSpace(seenSplit), host(), 'seed', JSON.parse(JSON.stringify(session.toJSON())));
    const rest = resumed.next()!;
    expect(rest).toHaveLength(65_528 - FIRST_LOOK.ports);
    expect(new Set([...first, ...rest]).size).toBe(65_528);
    resumed.report(rest.filter((p) => open.has(p)));
    const follow = resumed.next()!;
    expect(follow).toEqual([65_529, 65_530, 65_531, 65_532, 65_533, 65_534, 65_535]);
    resumed.report([]);
    expect(resumed.next()).toBeNull();
    expect(resumed.toJSON()).toMatchObject({ round: 3, split: 1, done: true });

    const seenWhole: RoundContext[] = [];
    const whole = runHostSession(new HostSession(wholeSpace(seenWhole), host(), 'seed', undefined, null), (p) => open.has(p));
    expect(resumed.result()).toEqual(whole);
    // The strategy decided the same rounds from the same contexts; the split only asked it once
    // more, for its choice at a first look's budget.
    const firstLookAsk = (r: RoundContext) => r.round === 0 && r.remaining === FIRST_LOOK.ports;
    expect(seenSplit.filter(firstLookAsk)).toHaveLength(1);
    expect(seenSplit.filter((r) => !firstLookAsk(r)).map((r) => [r.round, r.probed.length, r.found, r.remaining])).toEqual(
      seenWhole.map((r) => [r.round, r.probed.length, r.found, r.remaining]),
    );
    expect(seenWhole.map((r) => r.round)).toEqual([0, 1]);
  });

  test('a state taken stays as it was while the session goes on, and a session resumed from it leaves it alone', () => {
    const session = new HostSession(wholeSpace([]), host(), 'seed');
    const first = session.next()!;
    const state = session.toJSON();
    const copy = JSON.parse(JSON.stringify(state)) as typeof state;
    session.report([first[0]!]);
    const rest = session.next()!;
    rest[0] = -1; // next() hands out a copy: the session's lists are not the caller's
    session.report([]);
    expect(session.next()).not.toBeNull();
    expect(state).toEqual(copy);
    const resumed = new HostSession(wholeSpace([]), host(), 'seed', state);
    const again = resumed.nextPorts()!;
    expect(again).toEqual(copy.pending);
    resumed.report(again.slice(0, 3));
    resumed.next();
    expect(state).toEqual(copy);
  });

  test('leaves decisions under the threshold whole, and states without a split read as before', () => {
    const session = new HostSession(twoRound(), host(), 'seed');
    expect(session.next()).toEqual([80, 443]);
    expect(session.toJSON()).not.toHaveProperty('split');
    expect(session.toJSON()).not.toHaveProperty('deferred');
  });

  test('every registered strategy, funded for the whole port space: the split visit probes and finds exactly what the whole one does', () => {
    const catalogue = env.catalog;
    fc.assert(
      fc.property(
        fc.constantFrom(...strategyNames),
        fc.uniqueArray(fc.integer({ min: 1, max: 65_535 }), { maxLength: 12 }),
        fc.integer({ min: 0, max: 3 }),
        (name, openPorts, epoch) => {
          const open = new Set(openPorts);
          const run = (look: typeof FIRST_LOOK | null) => {
            const strategy = createStrategy({ strategy: name, budget: 65_535 }, { catalog: catalogue });
            const session = new HostSession(strategy, host({ epoch }), 'prop', undefined, look);
            let rounds = 0;
            for (let ports = session.next(); ports !== null; ports = session.next()) {
              rounds++;
              session.report(ports.filter((p) => open.has(p)));
            }
            const r = session.result();
            const probed = [...r.probed].sort((a, b) => a - b);
            return { rounds, probed: portText(probed), probedCount: probed.length, open: [...r.open], sweep: r.sweep };
          };
          const split = run(FIRST_LOOK);
          const whole = run(null);
          expect({ ...split, rounds: undefined }).toEqual({ ...whole, rounds: undefined });
          expect(split.rounds).toBe(whole.probedCount >= FIRST_LOOK.splitAt ? whole.rounds + 1 : whole.rounds);
        },
      ),
      { numRuns: 40 },
    );
  });

  test('every learning strategy, funded for the whole port space: the first look holds the ports the host had open at its last visit', () => {
    const learners = ['epsilon-greedy', 'ucb', 'thompson', 'lin-ucb', 'cooccurrence', 'adaptive'];
    expect(strategyNames).toEqual(expect.arrayContaining(learners));
    fc.assert(
      fc.property(
        fc.constantFrom(...learners),
        // Open last time: mostly ports a first look by port number would never reach.
        fc.uniqueArray(fc.integer({ min: 1, max: 65_535 }), { minLength: 1, maxLength: 20 }),
        (name, previousOpen) => {
          const strategy = createStrategy({ strategy: name, budget: 65_535 }, { catalog: env.catalog });
          const session = new HostSession(strategy, host({ epoch: 3, previousOpen, previousEpoch: 2 }), 'prop');
          const first = session.next()!;
          expect(first).toHaveLength(FIRST_LOOK.ports);
          expect(first).toEqual(expect.arrayContaining(previousOpen));
        },
      ),
      { numRuns: 30 },
    );
  });
});

describe('createStrategy', () => {
  test('rejects unknown strategies and parameters by name', () => {
    expect(() => createStrategy({ strategy: 'nope' }, env)).toThrow(/unknown strategy "nope" \(known: .*top-k/);
    expect(() => createStrategy({ strategy: 'top-k', params: { k: 3 } }, env)).toThrow(/unknown parameter "k" for strategy top-k/);
    expect(() => createStrategy({ strategy: 'fixed', params: { ports: 'ssh' } }, env)).toThrow(/fixed\.ports/);
  });

  test('rejects must-have lists that do not fit the budget, and must-have ports that are excluded', () => {
    expect(() => createStrategy({ strategy: 'top-k', budget: 2, mustHave: [22, 80, 443] }, env)).toThrow(
      /3 must-have ports do not fit a budget of 2/,
    );
    expect(() => createStrategy({ strategy: 'top-k', mustHave: [22], exclude: [22] }, env)).toThrow(/both must-have and excluded/);
  });
});

test("every learner: a replay with the coordinator's first looks learns and finds exactly what one without does (the re-ask is a peek)", () => {
  // The simulator hands large decisions out unsplit unless asked (simulator/replay.ts), the
  // coordinator splits them: both must leave a strategy in the same state. ucb counted the
  // re-ask's 1,000 ports as pending trials, so the hosts after a split one were ranked otherwise.
  const recording = generateRecording({ profile: 'enterprise', hosts: 2048, epochs: 4, seed: 'peek' }, env.catalog);
  for (const name of ['ucb', 'thompson', 'adaptive', 'epsilon-greedy', 'lin-ucb', 'cooccurrence']) {
    const run = (firstLook: boolean) => {
      const result = simulate(recording, createStrategy({ strategy: name, budget: 100 }, env), { seed: 'peek', firstLook, perHost: true });
      return { coverage: result.coverage, found: result.perHost!.found, probes: result.perHost!.probes };
    };
    expect(run(true), name).toEqual(run(false));
  }
});
