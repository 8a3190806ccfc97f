import { describe, expect, it } from 'vitest';
import { loadNmapServices } from '../../src/catalog/index.js';
import { readRollout, simulate } from '../../simulator/index.js';
import { generateRecording } from '../../simulator/synthetic/index.js';
import { createStrategy } from '../../strategies/index.js';

const catalog = loadNmapServices();

describe('generated scopes in the replay simulator', () => {
  it('lets the simulator read the rollout and count the rolled-out hosts', () => {
    const recording = generateRecording({ profile: 'enterprise', hosts: 1024, epochs: 4, seed: 8 }, catalog);
    const rollout = readRollout(recording);
    expect(rollout).not.toBeNull();
    expect(rollout!.epoch).toBe(2);
    const result = simulate(recording, createStrategy({ strategy: 'top-k', budget: 100 }, { catalog }), { seed: 'r' });
    expect(result.rollout?.port).toBe(rollout!.port);
    // Every live host of the /24 gets the port: ~75% of 256 (25% are dead).
    expect(result.rollout!.hosts).toBeGreaterThan(150);
    // The port is outside nmap's table, so top-k never finds it.
    expect(result.rollout!.within2).toBe(0);
    expect(result.pseudoHosts).toBeGreaterThanOrEqual(2);
  });

  it("gives top-k with budget 100 on the internet profile nmap's top-100 share of services", () => {
    const recording = generateRecording({ profile: 'internet', hosts: 3000, epochs: 1, seed: 8 }, catalog);
    const result = simulate(recording, createStrategy({ strategy: 'top-k', budget: 100 }, { catalog }), { seed: 'r' });
    expect(readRollout(recording)).toBeNull();
    expect(Math.abs(result.coverage! - 0.78)).toBeLessThan(0.04);
  });
});
