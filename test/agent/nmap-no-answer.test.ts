import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AllowList, type ScanConfig, scanBatch } from '../../agent/index.js';
import { workItem } from '../helpers/work-item.js';

/**
 * nmap's SYN probes are raw packets like masscan's: a firewall that drops scanners' SYNs (no TCP
 * timestamp option, seen in the lab with an nftables rule) or a lost packet leaves nmap with no
 * answer ("filtered"), while a kernel connect gets through. Stand-ins that send nothing: masscan
 * reports the ports in $PB_STANDIN_MASSCAN_OPEN open; nmap answers every port "filtered"
 * (no-response) but those in $PB_STANDIN_NMAP_CLOSED, which it answers "closed". Real listeners on
 * loopback stand for the services a connect reaches.
 */
describe('a port nmap gets no answer from is not reported closed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pb-nmap-no-answer-'));
  const saved = {
    path: process.env.PATH,
    open: process.env.PB_STANDIN_MASSCAN_OPEN,
    closed: process.env.PB_STANDIN_NMAP_CLOSED,
    log: process.env.PB_STANDIN_NMAP_LOG,
  };
  const nmapLog = join(dir, 'nmap-argv.ndjson');
  const servers: Server[] = [];
  const listening: number[] = [];

  beforeAll(async () => {
    for (let i = 0; i < 2; i++) {
      const server = createServer((socket) => socket.destroy());
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      servers.push(server);
      listening.push((server.address() as { port: number }).port);
    }
    writeFileSync(
      join(dir, 'masscan'),
      `#!/usr/bin/env node
const argv = process.argv.slice(2);
const out = argv[argv.indexOf('-oD') + 1];
const targets = argv.slice(0, argv.indexOf('-p'));
const open = JSON.parse(process.env.PB_STANDIN_MASSCAN_OPEN);
const lines = targets.flatMap((ip) => open.map((port) => JSON.stringify({ ip, timestamp: '0', port, proto: 'tcp', rec_type: 'status', data: { status: 'open', reason: 'syn-ack', ttl: 64 } })));
require('node:fs').writeFileSync(out, lines.join('\\n') + (lines.length ? '\\n' : ''));
`,
    );
    writeFileSync(
      join(dir, 'nmap'),
      `#!/usr/bin/env node
const args = process.argv.slice(2);
const target = args[args.indexOf('--') + 1];
const ports = args[args.indexOf('-p') + 1].split(',').map(Number);
const closed = JSON.parse(process.env.PB_STANDIN_NMAP_CLOSED);
require('node:fs').appendFileSync(process.env.PB_STANDIN_NMAP_LOG, JSON.stringify(args) + '\\n');
process.stdout.write('<?xml version="1.0"?><nmaprun args="nmap" start="1"><host><status state="up"/><address addr="' + target + '" addrtype="ipv4"/><ports>' +
  ports.map((p) => '<port protocol="tcp" portid="' + p + '"><state state="' + (closed.includes(p) ? 'closed" reason="reset' : 'filtered" reason="no-response') + '"/></port>').join('') +
  '</ports></host><runstats><finished time="2"/></runstats></nmaprun>');
`,
    );
    chmodSync(join(dir, 'masscan'), 0o755);
    chmodSync(join(dir, 'nmap'), 0o755);
    process.env.PATH = `${dir}${delimiter}${saved.path ?? ''}`;
    process.env.PB_STANDIN_NMAP_LOG = nmapLog;
  });
  afterAll(async () => {
    for (const [key, value] of [
      ['PATH', saved.path],
      ['PB_STANDIN_MASSCAN_OPEN', saved.open],
      ['PB_STANDIN_NMAP_CLOSED', saved.closed],
      ['PB_STANDIN_NMAP_LOG', saved.log],
    ] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    rmSync(dir, { recursive: true, force: true });
  });

  test('open to masscan or to a connect, unanswered by nmap: reported open without detail, with a note; closed to nmap: not open', async () => {
    // Arrange: `seen` is open to masscan; `known` was open at the last visit, masscan misses it,
    // a connect reaches it; `refused` was open at the last visit and nmap's probe is refused.
    const [seen, known] = listening as [number, number];
    const refused = 9;
    process.env.PB_STANDIN_MASSCAN_OPEN = JSON.stringify([seen]);
    process.env.PB_STANDIN_NMAP_CLOSED = JSON.stringify([refused]);
    const logs: string[] = [];
    const config: ScanConfig = {
      allow: AllowList.parse(['127.0.0.0/8']),
      scriptsAllow: new Set(),
      preflight: 'masscan',
      tools: { nmap: 'nmap', masscan: 'masscan', rawSockets: true },
      masscan: { rate: 1000, retries: 0, waitSeconds: 0, route: { adapter: 'lo', adapterIp: '127.0.0.1', routerIp: '127.0.0.1' } },
      connect: { concurrency: 16, timeoutMs: 500, retries: 0 },
      pseudoServiceThreshold: 100,
      log: (l) => logs.push(l),
    };
    const item = workItem({
      ip: '127.0.0.1',
      ports: [refused, seen, known].sort((a, b) => a - b),
      verify: [refused, known].sort((a, b) => a - b),
      scan: { preflight: 'masscan' },
    });

    // Act
    const out = await scanBatch([item], config);

    // Assert: both reachable ports open, without nmap's detail; nothing reported filtered.
    expect(out.refused).toEqual([]);
    const result = out.submissions[0];
    const states = Object.fromEntries((result?.ports ?? []).map((p) => [p.port, p.state]));
    expect(states, logs.join('\n')).toEqual({ [seen]: 'open', [known]: 'open' });
    expect(result?.ports.every((p) => p.service === undefined)).toBe(true);
    expect(result?.unknownPorts).toBeUndefined();
    expect(result?.incomplete).toContain(`nmap got no answer on port(s) ${[seen, known].sort((a, b) => a - b).join(', ')} (filtered)`);
    expect(logs).toContain(`agent: 127.0.0.1: the masscan preflight missed open port(s) ${known} (confirmed by connect)`);
    // nmap looked through kernel connects (-sT), not raw SYNs, in every run.
    const runs = readFileSync(nmapLog, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as string[]);
    expect(runs.length).toBeGreaterThan(0);
    for (const args of runs) expect(args).toContain('-sT');
  });
});
