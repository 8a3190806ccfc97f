import { describe, expect, test } from 'vitest';
import { loadNmapServices } from '../../src/catalog/index.js';
import { PortRanges } from '../../src/core/ports.js';
import { createStrategy } from '../../strategies/build.js';
import { HostSession } from '../../strategies/host-session.js';
import type { BanditState } from '../../strategies/bandit-base.js';
import type { HostContext, HostResult } from '../../strategies/types.js';

const catalog = loadNmapServices();

// The learners that rank a host's /24 under its tags besides adaptive (test/strategies/adaptive*.test.ts).
describe.each(['epsilon-greedy', 'ucb', 'thompson'] as const)('%s ranks a /24 under its tags', (name) => {
  // 16 /24s of one tag, 40 answering hosts each, all running 22, 80 and 443. A subnet port (5601,
  // which nmap ranks low) runs on every host of 198.18.0.0/24; epoch 0 measured it there on 3
  // hosts (the discovery layer's measureHosts) and on every host of the 15 other /24s, where it
  // is closed. Scope-wide it is a 3-in-603 port; in its /24 it is 3 in 3.
  const subnetPort = 5601;
  const common = [22, 80, 443];
  const probed = [...catalog.top(60), subnetPort];
  const ip = (subnet: number, pos: number) => `198.18.${subnet}.${pos}`;
  const prefix = (subnet: number) => `198.18.${subnet}.0/24`;
  const runs = (subnet: number) => (subnet === 0 ? [...common, subnetPort] : common);

  function epoch0(): HostResult[] {
    const out: HostResult[] = [];
    for (let s = 0; s < 16; s++) {
      for (let pos = 1; pos <= 40; pos++) {
        const measured = s > 0 || pos <= 3;
        const ports = measured ? probed : probed.filter((p) => p !== subnetPort);
        const open = runs(s).filter((p) => ports.includes(p));
        out.push({ ip: ip(s, pos), tags: ['office'], prefix: prefix(s), epoch: 0, probed: ports, open, previousOpen: [], sweep: false });
      }
    }
    return out;
  }

  function visit(strategy: ReturnType<typeof createStrategy>, subnet: number, pos: number, previousOpen: readonly number[]) {
    const host: HostContext = {
      ip: ip(subnet, pos),
      tags: ['office'],
      prefix: prefix(subnet),
      epoch: 1,
      previousOpen,
      previousEpoch: 0,
      probeable: PortRanges.ALL,
    };
    return new HostSession(strategy, host, 'spread').runToEnd((p) => runs(subnet).includes(p));
  }

  test('a port found on some hosts of a /24 is found on the others of that /24 the next epoch, and not probed greedily elsewhere', () => {
    const strategy = createStrategy({ strategy: name, budget: 20 }, { catalog });
    const first = epoch0();
    strategy.observe(first);
    // The /24's hosts that were not probed for it in epoch 0 find it in epoch 1: every one of them.
    const others = Array.from({ length: 37 }, (_, i) => visit(strategy, 0, i + 4, common));
    expect(others.filter((r) => r.open.includes(subnetPort))).toHaveLength(37);
    // The other /24s measured it closed: their hosts do not rank it (at most a discovery or exploration draw).
    const elsewhere = Array.from({ length: 40 }, (_, i) => visit(strategy, 5, i + 1, common));
    // (thompson: its tag draw shrunk by the /24's 40 failures, 5 of 40 with this seed).
    expect(elsewhere.filter((r) => r.probed.includes(subnetPort)).length).toBeLessThanOrEqual(name === 'thompson' ? 8 : 4);
    // The prefix statistics are in the state and survive a restore.
    const state = strategy.state() as BanditState;
    expect(state.prefixes?.tags[prefix(0)]).toBeDefined();
    const restored = createStrategy({ strategy: name, budget: 20 }, { catalog }, state);
    expect(visit(restored, 0, 10, common).open).toContain(subnetPort);
  });

  test('byPrefix=false ranks by the tag alone: the 3-in-603 port is not spread', () => {
    const strategy = createStrategy({ strategy: name, budget: 20, params: { byPrefix: false } }, { catalog });
    strategy.observe(epoch0());
    const others = Array.from({ length: 37 }, (_, i) => visit(strategy, 0, i + 4, common));
    // thompson's draws from the uncertain tag posterior (3 in 603) still reach some hosts by chance (22 of 37 with this seed).
    expect(others.filter((r) => r.open.includes(subnetPort)).length).toBeLessThan(name === 'thompson' ? 30 : 10);
    expect((strategy.state() as BanditState).prefixes).toBeUndefined();
  });
});
