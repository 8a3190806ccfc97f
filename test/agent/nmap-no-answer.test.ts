import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { scanBatch } from '../../agent/index.js';
import { listenLoopback } from '../helpers/net.js';
import { installStandIns, MASSCAN_REPORTING_STANDIN, standInScanConfig } from '../helpers/stand-ins.js';
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
  let standIns: ReturnType<typeof installStandIns>;
  let listeners: Awaited<ReturnType<typeof listenLoopback>>;
  let nmapLog = '';

  beforeAll(async () => {
    listeners = await listenLoopback(2);
    standIns = installStandIns(
      'pb-nmap-no-answer-',
      {
        masscan: MASSCAN_REPORTING_STANDIN,
        nmap: `#!/usr/bin/env node
const args = process.argv.slice(2);
const target = args[args.indexOf('--') + 1];
const ports = args[args.indexOf('-p') + 1].split(',').map(Number);
const closed = JSON.parse(process.env.PB_STANDIN_NMAP_CLOSED);
require('node:fs').appendFileSync(process.env.PB_STANDIN_NMAP_LOG, JSON.stringify(args) + '\\n');
process.stdout.write('<?xml version="1.0"?><nmaprun args="nmap" start="1"><host><status state="up"/><address addr="' + target + '" addrtype="ipv4"/><ports>' +
  ports.map((p) => '<port protocol="tcp" portid="' + p + '"><state state="' + (closed.includes(p) ? 'closed" reason="reset' : 'filtered" reason="no-response') + '"/></port>').join('') +
  '</ports></host><runstats><finished time="2"/></runstats></nmaprun>');
`,
      },
      (dir) => ({
        PB_STANDIN_MASSCAN_OPEN: '[]',
        PB_STANDIN_NMAP_CLOSED: '[]',
        PB_STANDIN_NMAP_LOG: (nmapLog = join(dir, 'nmap-argv.ndjson')),
      }),
    );
  });
  afterAll(async () => {
    standIns?.restore();
    await listeners?.close();
  });

  test('open to masscan or to a connect, unanswered by nmap: reported open without detail, with a note; closed to nmap: not open', async () => {
    // Arrange: `seen` is open to masscan; `known` was open at the last visit, masscan misses it,
    // a connect reaches it; `refused` was open at the last visit and nmap's probe is refused.
    const [seen, known] = listeners.ports as [number, number];
    const refused = 9;
    process.env.PB_STANDIN_MASSCAN_OPEN = JSON.stringify([seen]);
    process.env.PB_STANDIN_NMAP_CLOSED = JSON.stringify([refused]);
    const logs: string[] = [];
    const config = standInScanConfig((l) => logs.push(l));
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
