import { createServer, type Server } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AllowList, detectScannerTools, detectServices, planDetection } from '../../agent/index.js';

const tools = await detectScannerTools();

describe('planDetection', () => {
  test('every host with open ports is in exactly one run, probed on exactly its own ports', () => {
    const host = fc.tuple(fc.integer({ min: 1, max: 254 }), fc.array(fc.integer({ min: 1, max: 12 }), { maxLength: 5 }));
    fc.assert(
      fc.property(fc.uniqueArray(host, { selector: ([h]) => h, maxLength: 60 }), fc.integer({ min: 1, max: 20 }), (hosts, perRun) => {
        const open = new Map(hosts.map(([h, ports]) => [`127.0.0.${h}`, ports]));
        const runs = planDetection(open, perRun);
        const seen = new Map<string, readonly number[]>();
        for (const run of runs) {
          expect(run.targets.length).toBeGreaterThan(0);
          expect(run.targets.length).toBeLessThanOrEqual(perRun);
          for (const ip of run.targets) {
            expect(seen.has(ip)).toBe(false);
            seen.set(ip, run.ports);
          }
        }
        for (const [ip, ports] of open) {
          const own = [...new Set(ports)].sort((a, b) => a - b);
          if (own.length === 0) expect(seen.has(ip)).toBe(false);
          else expect(seen.get(ip)).toEqual(own);
        }
      }),
    );
  });

  test('hosts sharing an open-port set share a run, up to the per-run bound', () => {
    const open = new Map([
      ['127.0.0.1', [22, 80]],
      ['127.0.0.2', [80, 22]],
      ['127.0.0.3', [80, 22, 22]],
      ['127.0.0.4', [443]],
      ['127.0.0.5', []],
    ]);
    expect(planDetection(open, 2)).toEqual([
      { targets: ['127.0.0.1', '127.0.0.2'], ports: [22, 80] },
      { targets: ['127.0.0.3'], ports: [22, 80] },
      { targets: ['127.0.0.4'], ports: [443] },
    ]);
  });
});

describe.skipIf(!tools.nmap)('detectServices with real nmap on loopback', () => {
  const servers: Server[] = [];
  const listen = async (ip: string, banner: string) => {
    const server = createServer((socket) => {
      socket.on('error', () => socket.destroy());
      socket.write(banner);
      socket.setTimeout(5000, () => socket.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, ip, resolve));
    servers.push(server);
    return (server.address() as { port: number }).port;
  };
  let ssh: number;
  let smtp: number;

  beforeAll(async () => {
    ssh = await listen('127.0.0.1', 'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n');
    smtp = await listen('127.0.0.2', '220 mail.example ESMTP Postfix (Debian/GNU)\r\n');
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  });

  test('each host is probed on its own open ports only, in parallel runs', async () => {
    const allow = AllowList.parse(['127.0.0.0/8']);
    const out = await detectServices(
      new Map([
        ['127.0.0.1', [ssh]],
        ['127.0.0.2', [smtp]],
      ]),
      {
        allow,
        versionDetection: true,
        scripts: [],
        scriptsAllow: new Set(),
        timing: ['-T4', '--version-intensity', '2'],
        parallel: 2,
        hostsPerRun: 16,
      },
    );
    // A failed run first, with what nmap said (a run's ports are empty when it failed).
    for (const d of out.values()) {
      expect(d.error).toBeUndefined();
      expect(d.durationMs).toBeGreaterThan(0);
    }
    // nmap lists every port it was given (closed ones as closed): one port each means no host got
    // the other's port.
    expect(out.get('127.0.0.1')!.ports.map((p) => [p.port, p.state, p.service])).toEqual([[ssh, 'open', 'ssh']]);
    expect(out.get('127.0.0.2')!.ports.map((p) => [p.port, p.state, p.service])).toEqual([[smtp, 'open', 'smtp']]);
  });

  test('a host nmap gives up on at --host-timeout is an error, never an empty (nothing open) answer', async () => {
    // A service that accepts and never says a word: -sV waits on it past a 1 s host time-out.
    const silent = createServer((socket) => {
      socket.on('error', () => socket.destroy());
      socket.setTimeout(5000, () => socket.destroy());
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.3', resolve));
    servers.push(silent);
    const port = (silent.address() as { port: number }).port;
    const out = await detectServices(new Map([['127.0.0.3', [port]]]), {
      allow: AllowList.parse(['127.0.0.0/8']),
      versionDetection: true,
      scripts: [],
      scriptsAllow: new Set(),
      hostTimeoutSeconds: 1,
      parallel: 1,
      hostsPerRun: 16,
    });
    expect(out.get('127.0.0.3')).toMatchObject({ ports: [], error: 'nmap gave up on the host at --host-timeout' });
  });

  test('a failed run marks only its own hosts; the other run still reports', async () => {
    // 127.0.0.2 is outside this allow list, so its run is refused before nmap starts.
    const allow = AllowList.parse(['127.0.0.1/32']);
    const lines: string[] = [];
    const out = await detectServices(
      new Map([
        ['127.0.0.1', [ssh]],
        ['127.0.0.2', [smtp]],
      ]),
      {
        allow,
        versionDetection: true,
        scripts: [],
        scriptsAllow: new Set(),
        timing: ['-T4', '--version-intensity', '2'],
        parallel: 2,
        hostsPerRun: 16,
        log: (l) => lines.push(l),
      },
    );
    expect(out.get('127.0.0.1')!.ports.map((p) => p.service)).toEqual(['ssh']);
    expect(out.get('127.0.0.2')!.ports).toEqual([]);
    expect(out.get('127.0.0.2')!.error).toMatch(/127\.0\.0\.2/);
    expect(lines.join('\n')).toMatch(/nmap failed on 127\.0\.0\.2/);
  });
});
