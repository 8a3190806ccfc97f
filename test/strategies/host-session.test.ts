import { describe, expect, test } from 'vitest';
import { loadNmapServices } from '../../src/catalog/index.js';
import { PortRanges } from '../../src/core/ports.js';
import { HostSession, runHostSession } from '../../strategies/host-session.js';
import { createStrategy } from '../../strategies/build.js';
import { PortPicker } from '../../strategies/port-picker.js';
import { resolveCommonOptions } from '../../strategies/options.js';
import type { Decision, RoundContext, Strategy } from '../../strategies/types.js';
import { hostContext } from '../helpers/host-context.js';

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
