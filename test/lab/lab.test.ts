import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { parseRouteBatch, parseRouteGet, resolveMasscanRoute } from '../../agent/index.js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  isLabSafeAddress,
  labGuardHeld,
  labGuardPath,
  labDown,
  labEpoch,
  labHostAddress,
  labStatus,
  labLock,
  labUnavailableReason,
  labTopology,
  labUp,
  raiseLabGuard,
  type LabState,
} from '../../src/lab/index.js';

const reason = await labUnavailableReason();
const lockChild = fileURLToPath(new URL('../helpers/lab-lock-child.ts', import.meta.url));
if (reason) process.stderr.write(`lab tests skipped: ${reason}\n`);

function reachable(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: ip, port, timeout: 2000 });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

describe('addresses', () => {
  test('lab addresses stay inside 198.18.0.0/15', () => {
    expect(labHostAddress(0)).toBe('198.18.1.10');
    expect(isLabSafeAddress(labHostAddress(3999))).toBe(true);
    expect(isLabSafeAddress('198.20.0.1')).toBe(false);
    expect(isLabSafeAddress('127.0.0.1')).toBe(false);
    expect(() => labHostAddress(4000)).toThrow(/0-3999/);
    // The second lab (the test run builds two at once) sits in 198.18.128.0/17, apart from the first's hosts.
    expect(labHostAddress(0, 1)).toBe('198.18.129.10');
    expect(isLabSafeAddress(labHostAddress(3999, 1))).toBe(true);
    expect(Number(labHostAddress(3999, 0).split('.')[2])).toBeLessThan(128);
    expect(() => labHostAddress(0, 2)).toThrow(/lab instance 0-1/);
  });
});

describe.skipIf(reason !== null)('the network-namespace lab', () => {
  let state: LabState;

  beforeAll(async () => {
    // Either lab instance; waits while other test files own both.
    state = await labUp({ hosts: 3, profile: 'enterprise', seed: 'lab-test', epochs: 4, instance: 'any' });
  }, 900_000);

  afterAll(async () => {
    await labDown();
    labLock.release();
  }, 60_000);

  test('serves each host its planned ports, reachable from the root namespace', async () => {
    expect(state.hosts).toHaveLength(3);
    for (const host of state.hosts) {
      expect(isLabSafeAddress(host.ip)).toBe(true);
      for (const service of host.services.slice(0, 3)) expect(await reachable(host.ip, service.port)).toBe(true);
    }
    // A port the host does not serve is closed (refused), not silently dropped.
    const host = state.hosts[0]!;
    const unused = [1, 2, 3, 4].find((p) => !host.services.some((s) => s.port === p))!;
    expect(await reachable(host.ip, unused)).toBe(false);
  });

  test('keeps its state on disk and steps through epochs', async () => {
    expect(labStatus()?.hosts.map((h) => h.ip)).toEqual(state.hosts.map((h) => h.ip));
    const next = await labEpoch();
    expect(next.epoch).toBe(1);
    for (const host of next.hosts) {
      for (const service of host.services.slice(0, 2)) expect(await reachable(host.ip, service.port)).toBe(true);
    }
  }, 60_000);

  test('routes nothing in 198.18.0.0/15 outside the lab off the machine', async () => {
    const { stdout } = await execa('ip', ['route', 'show', 'type', 'blackhole']);
    expect(stdout).toContain('198.18.0.0/15');
    // The kernel refuses to route there at all.
    const lookup = await execa('ip', ['route', 'get', '198.19.7.7'], { reject: false });
    expect(lookup.exitCode).not.toBe(0);
    const { rootLink } = labTopology(state.instance);
    expect((await execa('ip', ['route', 'get', state.hosts[0]!.ip])).stdout).toContain(`dev ${rootLink}`);
    // masscan's route for all the hosts at once: one `ip -batch` process, each answer read.
    const ips = state.hosts.map((h) => h.ip);
    const batch = await execa('ip', ['-batch', '-'], { input: ips.map((ip) => `route get ${ip}\n`).join('') });
    expect([...(parseRouteBatch(batch.stdout, ips)?.values() ?? [])].map((line) => parseRouteGet(line, '').dev)).toEqual(
      ips.map(() => rootLink),
    );
    expect(await resolveMasscanRoute(ips)).toEqual({ adapter: rootLink, adapterIp: expect.any(String), routerIp: expect.any(String) });
  });

  test("building the lab again keeps it this process's own: another process cannot take it meanwhile", async () => {
    state = await labUp({ hosts: 3, profile: 'enterprise', seed: 'lab-test', epochs: 4, instance: 'any' });
    // Before the lock, a second labUp let go of the lab while rebuilding it; a waiting test file
    // then took it and tore it down under the first one's scan.
    const other = await execa(process.execPath, ['--import', 'tsx', lockChild, 'try', String(state.instance)], {
      reject: false,
      timeout: 30_000,
    });
    expect(other.exitCode).toBe(3);
  }, 60_000);

  test('lab down removes every namespace, link and route, and is idempotent', async () => {
    // Keep the lab to this file across both labDown calls, so no other test file builds one in between.
    await labLock.acquire();
    const topology = labTopology(state.instance);
    await labDown();
    const { stdout } = await execa('ip', ['netns', 'list']);
    expect(stdout.split('\n').filter((ns) => ns.startsWith(topology.hostNsPrefix))).toEqual([]);
    const links = await execa('ip', ['link', 'show']);
    expect(links.stdout).not.toMatch(new RegExp(`\\b${topology.rootLink}\\b`));
    const routes = await execa('ip', ['route', 'show']);
    expect(routes.stdout).not.toContain(`${topology.hostNetwork} via`);
    // The test run's standing guard (test/helpers/lab-guard.ts) keeps 198.18.0.0/15 blackholed between labs.
    expect(routes.stdout.includes('blackhole 198.18.0.0/15')).toBe(labGuardHeld());
    expect(labStatus()).toBeNull();
    expect((await labDown()).namespaces).toBe(0);
  }, 60_000);
});

describe.skipIf(reason !== null)('the standing blackhole guard', () => {
  test('each holder has its own file: one letting go keeps the route while another lives, and a dead holder is dropped', async () => {
    // Arrange: this worker holds the guard; a live process (a sleep) and a dead pid are listed as
    // holders too, as if they had raised it at the same moment.
    const blackholed = async () => (await execa('ip', ['route', 'show'])).stdout.includes('blackhole 198.18.0.0/15');
    const release = await raiseLabGuard();
    const other = execa('sleep', ['30']);
    const finished = execa('true');
    const deadPid = finished.pid;
    await finished;
    try {
      writeFileSync(join(labGuardPath(), String(other.pid)), '');
      writeFileSync(join(labGuardPath(), String(deadPid)), '');
      expect(await blackholed()).toBe(true);

      // Act
      await release();

      // Assert: the other live holder's file stays, the dead one's is gone, the route is up.
      const holders = readdirSync(labGuardPath());
      expect(holders).toContain(String(other.pid));
      expect(holders).not.toContain(String(deadPid));
      expect(holders).not.toContain(String(process.pid));
      expect(labGuardHeld()).toBe(true);
      expect(await blackholed()).toBe(true);
    } finally {
      other.kill();
      await other.catch(() => undefined);
      rmSync(join(labGuardPath(), String(other.pid)), { force: true });
    }
  });
});
