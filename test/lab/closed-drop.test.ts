import { connect } from 'node:net';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AllowList, runConnectSweep } from '../../agent/index.js';
import {
  LAB_NFT_TABLE,
  closedPortsRuleset,
  labDown,
  labEpoch,
  labLock,
  labStatus,
  labUnavailableReason,
  labTopology,
  labUp,
  parseClosedPolicy,
  type LabState,
} from '../../src/lab/index.js';

async function nftReason(): Promise<string | null> {
  const r = await execa('nft', ['--version'], { reject: false });
  return r.exitCode === 0 ? null : 'nftables is needed for --closed drop (apt-get install nftables)';
}

const reason = (await labUnavailableReason()) ?? (await nftReason());
if (reason) process.stderr.write(`lab drop-mode tests skipped: ${reason}\n`);

type Outcome = 'open' | 'refused' | 'silent';

/** One TCP connect: answered (open), refused (RST) or no answer within `timeoutMs`. */
function probe(ip: string, port: number, timeoutMs = 1500): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connect({ host: ip, port });
    const timer = setTimeout(() => finish('silent'), timeoutMs);
    function finish(outcome: Outcome): void {
      clearTimeout(timer);
      socket.destroy();
      resolve(outcome);
    }
    socket.once('connect', () => finish('open'));
    socket.once('error', (error: NodeJS.ErrnoException) => finish(error.code === 'ECONNREFUSED' ? 'refused' : 'silent'));
  });
}

async function servedSet(ns: string): Promise<number[]> {
  const { stdout } = await execa('ip', ['netns', 'exec', ns, 'nft', '--json', 'list', 'set', 'inet', LAB_NFT_TABLE, 'served']);
  const set = (JSON.parse(stdout) as { nftables: Array<{ set?: { elem?: number[] } }> }).nftables.find((e) => e.set)?.set;
  return [...(set?.elem ?? [])].sort((a, b) => a - b);
}

const unservedOf = (host: LabState['hosts'][number]) => [1, 2, 3, 4, 5].find((p) => !host.services.some((s) => s.port === p))!;

describe('closed-port policy (no root needed)', () => {
  test('parses only reject and drop, naming the flag', () => {
    expect(parseClosedPolicy('drop')).toBe('drop');
    expect(parseClosedPolicy('reject')).toBe('reject');
    expect(() => parseClosedPolicy('filter')).toThrow(/--closed/);
  });

  test('the ruleset replaces the table atomically and drops exactly the unserved TCP ports', () => {
    const rules = closedPortsRuleset([
      { port: 8080, kind: 'http' },
      { port: 22, kind: 'ssh' },
      { port: 22, kind: 'ssh' },
    ]);
    const lines = rules.split('\n');
    // Create-if-missing, delete, define: one transaction with no moment without the rule.
    expect(lines.slice(0, 3)).toEqual([
      `table inet ${LAB_NFT_TABLE} {}`,
      `delete table inet ${LAB_NFT_TABLE}`,
      `table inet ${LAB_NFT_TABLE} {`,
    ]);
    expect(rules).toContain('elements = { 22, 8080 }');
    expect(rules).toContain('iifname "eth0" tcp dport != @served drop');
    expect(closedPortsRuleset([])).not.toContain('elements');
  });
});

describe.skipIf(reason !== null)('the lab with --closed drop', () => {
  let state: LabState;

  beforeAll(async () => {
    // Either lab instance; waits while other test files own both.
    state = await labUp({ hosts: 3, profile: 'enterprise', seed: 'lab-drop-test', epochs: 3, closed: 'drop', instance: 'any' });
  }, 900_000);

  afterAll(async () => {
    await labDown();
    labLock.release();
  }, 60_000);

  test('served ports answer; a probe to an unserved port times out instead of being refused', async () => {
    expect(state.closed).toBe('drop');
    const served = state.hosts.filter((h) => h.services.length > 0);
    expect(served.length).toBeGreaterThan(0);
    for (const host of served) {
      for (const service of host.services.slice(0, 3))
        expect(await probe(host.ip, service.port), `${host.ip}:${service.port}`).toBe('open');
      expect(await probe(host.ip, unservedOf(host)), `${host.ip}:${unservedOf(host)}`).toBe('silent');
    }
    // A host that serves nothing is silent on every port (it would answer RST under reject).
    const empty = state.hosts.find((h) => h.services.length === 0);
    if (empty) expect(await probe(empty.ip, 80)).toBe('silent');
  }, 60_000);

  test("each host's nftables set is exactly what it serves, also after an epoch", async () => {
    for (const host of state.hosts)
      expect(await servedSet(host.ns), host.ns).toEqual([...new Set(host.services.map((s) => s.port))].sort((a, b) => a - b));
    const before = state;
    state = await labEpoch();
    for (const host of state.hosts) {
      expect(await servedSet(host.ns), host.ns).toEqual([...new Set(host.services.map((s) => s.port))].sort((a, b) => a - b));
      for (const service of host.services.slice(0, 2))
        expect(await probe(host.ip, service.port), `${host.ip}:${service.port}`).toBe('open');
      // A port served last epoch and not now is dropped, not refused.
      const gone = before.hosts[host.index]!.services.find((s) => !host.services.some((n) => n.port === s.port));
      if (gone) expect(await probe(host.ip, gone.port), `${host.ip}:${gone.port} (gone)`).toBe('silent');
    }
  }, 60_000);

  test('a connect sweep with timeouts from measured round trips finds what one with the fixed 1.5 s timeout finds', async () => {
    // Behind a firewall that drops, every unserved port waits out its timeout on every try: with
    // answers measured in well under a millisecond the sweep waits 100 ms (the floor), not 1.5 s.
    const targets = state.hosts.map((h) => h.ip);
    const served = new Set(state.hosts.flatMap((h) => h.services.map((s) => s.port)));
    const ports = [...new Set([...Array.from({ length: 300 }, (_, i) => i + 1), ...served])].sort((a, b) => a - b);
    const allow = AllowList.parse(['198.18.0.0/15']);
    const expected = new Map(
      state.hosts
        .filter((h) => h.services.length > 0)
        .map((h) => [h.ip, [...new Set(h.services.map((s) => s.port))].sort((a, b) => a - b)] as const),
    );
    const adaptive = await runConnectSweep({ targets, ports, allow });
    const fixed = await runConnectSweep({ targets, ports, allow, minTimeoutMs: 1500 });
    process.stderr.write(
      `[lab] connect sweep of ${ports.length} ports x ${targets.length} hosts behind drop: adaptive ${(adaptive.durationMs / 1000).toFixed(1)} s, fixed 1.5 s ${(fixed.durationMs / 1000).toFixed(1)} s\n`,
    );
    expect(adaptive.open).toEqual(expected);
    expect(fixed.open).toEqual(expected);
    // Every silent port was tried twice by both (one retry), none left unprobed.
    expect(adaptive.attempts).toBe(fixed.attempts);
    expect(adaptive.unprobed.size).toBe(0);
  }, 120_000);

  test('lab down leaves no namespace and no nftables table behind', async () => {
    await labLock.acquire();
    const topology = labTopology(state.instance);
    await labDown();
    expect((await execa('ip', ['netns', 'list'])).stdout.split('\n').filter((ns) => ns.startsWith(topology.hostNsPrefix))).toEqual([]);
    // The tables lived in the hosts' namespaces; none was ever put in the root namespace.
    expect((await execa('nft', ['list', 'tables'])).stdout).not.toContain(LAB_NFT_TABLE);
    expect((await execa('ip', ['route', 'show'])).stdout).not.toContain(`${topology.hostNetwork} via`);
    expect(labStatus()).toBeNull();
  }, 60_000);
});
