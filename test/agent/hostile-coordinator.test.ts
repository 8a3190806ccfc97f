import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Agent, AllowList, type ScanConfig } from '../../agent/index.js';
import type { WorkItem } from '../../src/protocol/protocol.js';
import { workItem } from '../helpers/work-item.js';

/**
 * issue 11: the agent must never trust its coordinator. A hostile coordinator (a small HTTP
 * server here) hands out non-canonical addresses, addresses outside --allow, injected options
 * and malformed items, mixed with honest ones. Scanners are stand-ins that only record their
 * argv and print a canned nmap report: nothing is ever sent to any address.
 */

const dir = mkdtempSync(join(tmpdir(), 'pb-hostile-'));
const argvLog = join(dir, 'argv.ndjson');

// nmap stand-in: records argv, answers with every target after "--" up and every -p port open.
const NMAP_STANDIN = `#!/usr/bin/env node
const fs = require('node:fs');
const args = process.argv.slice(2);
fs.appendFileSync(process.env.PB_STANDIN_LOG, JSON.stringify({ tool: 'nmap', args }) + '\\n');
const targets = args.slice(args.indexOf('--') + 1);
const ports = [];
for (const part of args[args.indexOf('-p') + 1].split(',')) {
  const [a, b] = part.split('-').map(Number);
  for (let p = a; p <= (b || a); p++) ports.push(p);
}
const hosts = targets.map((t) => '<host><status state="up"/><address addr="' + t + '" addrtype="ipv4"/><ports>' +
  ports.map((p) => '<port protocol="tcp" portid="' + p + '"><state state="open"/><service name="http" product="standin"/></port>').join('') + '</ports></host>').join('');
process.stdout.write('<?xml version="1.0"?><nmaprun args="nmap" start="1"><scaninfo type="connect" protocol="tcp" services="1-65535"/>' + hosts + '<runstats><finished time="2"/></runstats></nmaprun>');
`;

interface Hostile {
  server: Server;
  url: string;
  results: Array<{ leaseId: string; ip: string; ports: Array<{ port: number; state: string }> }>;
  refused: Array<{ leaseId: string; reason: string }>;
}

// preflight none (the helper's default): nmap (the stand-in) is the only scanner that runs.
const base = (leaseId: string, ip: string): WorkItem =>
  workItem({ leaseId, ip, ports: [22, 80], cycle: 0, deadline: Date.now() + 600_000 });

const honest = [base('lease_honest1', '198.18.250.1'), { ...base('lease_honest2', '198.18.250.2'), ports: [443] }];
const hostile: unknown[] = [
  base('lease_octal1', '198.022.250.1'),
  base('lease_octal2', '198.18.250.010'),
  base('lease_octal3', '0306.18.250.9'),
  base('lease_short', '198.18.250'),
  base('lease_mapped', '::ffff:198.18.250.3'),
  base('lease_space', '198.18.250.4 '),
  base('lease_outside', '198.18.251.1'),
  base('lease_loopback', '127.0.0.1'),
  base('lease_argv_ip', '198.18.250.5 -oN /tmp/pwned'),
  { ...base('lease_ports', '198.18.250.6'), ports: '1-65535,-oN out.txt' },
  { ...base('lease_ports_null', '198.18.250.6'), ports: null },
  { ...base('lease_timeout', '198.18.250.7'), scan: { ...base('x', 'y').scan, hostTimeoutSeconds: '10s --script=smb-brute' } },
  { ...base('lease_huge', '198.18.250.8'), scan: { ...base('x', 'y').scan, hostTimeoutSeconds: 1e12 } },
  { ...base('lease_script', '198.18.250.9'), scan: { ...base('x', 'y').scan, scripts: ['--script=smb-brute'] } },
  { ...base('lease_extra', '198.18.250.10'), scan: { ...base('x', 'y').scan, extraArgs: ['-oN', 'out.txt'] } },
  { ...base('lease_port0', '198.18.250.11'), ports: [0, 80] },
  'not even an object',
];

async function body(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

async function startHostile(items: unknown[]): Promise<Hostile> {
  const queue = [...items];
  const h: Hostile = { server: createServer(), url: '', results: [], refused: [] };
  h.server.on('request', (req, res) => {
    void (async (): Promise<unknown> => {
      const send = (value: unknown) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value));
      if (req.method === 'GET' && req.url?.startsWith('/api/v1/agent/work')) {
        const work = queue.shift();
        return send(work === undefined ? { work: null, retryAfterMs: 1000 } : { work });
      }
      if (req.method === 'POST' && req.url === '/api/v1/agent/results') {
        h.results.push((await body(req)) as Hostile['results'][number]);
        return send({ scanId: 'x', accepted: true, duplicate: false, followUp: false, events: 0 });
      }
      if (req.method === 'POST' && req.url === '/api/v1/agent/refused') {
        h.refused.push((await body(req)) as Hostile['refused'][number]);
        return send({ recorded: true });
      }
      return res.writeHead(404).end('{}');
    })();
  });
  await new Promise<void>((resolve) => h.server.listen(0, '127.0.0.1', resolve));
  h.url = `http://127.0.0.1:${(h.server.address() as { port: number }).port}`;
  return h;
}

function scanConfig(logs: string[]): Omit<ScanConfig, 'signal'> {
  return {
    allow: AllowList.parse(['198.18.250.0/24']),
    scriptsAllow: new Set(['ssl-cert']),
    preflight: 'auto',
    // Only the nmap stand-in (found on PATH); no masscan, no raw sockets, no connect sweep.
    tools: { nmap: 'nmap', masscan: null, rawSockets: false },
    masscan: { rate: 1000, retries: 0, waitSeconds: 0 },
    connect: { concurrency: 4, timeoutMs: 200, retries: 0 },
    pseudoServiceThreshold: 100,
    log: (line) => logs.push(line),
  };
}

function recordedArgv(): string[][] {
  let text = '';
  try {
    text = readFileSync(argvLog, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { args: string[] }).args);
}

describe('the agent against a hostile coordinator', () => {
  const savedPath = process.env.PATH;
  let h: Hostile;

  beforeAll(async () => {
    writeFileSync(join(dir, 'nmap'), NMAP_STANDIN);
    chmodSync(join(dir, 'nmap'), 0o755);
    process.env.PATH = `${dir}${delimiter}${savedPath ?? ''}`;
    process.env.PB_STANDIN_LOG = argvLog;
  });

  afterAll(async () => {
    process.env.PATH = savedPath;
    delete process.env.PB_STANDIN_LOG;
    await new Promise((resolve) => h?.server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  test('a mixed batch: the bad items are refused alone and reported, nothing outside --allow reaches a scanner, the honest items are submitted', async () => {
    // Arrange: honest items first, last and in between the hostile ones.
    h = await startHostile([honest[0], ...hostile.slice(0, 8), honest[1], ...hostile.slice(8)]);
    const logs: string[] = [];
    const agent = new Agent({
      server: h.url,
      token: 'pba_test',
      concurrency: honest.length + hostile.length,
      once: true,
      scan: scanConfig(logs),
    });

    // Act
    const stats = await agent.run();

    // Assert: the honest items were scanned and submitted, with the stand-in's open ports.
    expect(stats).toMatchObject({ submitted: 2, refused: hostile.length, errors: 0 });
    expect(h.results.map((r) => [r.leaseId, r.ip, r.ports.map((p) => p.port)]).sort()).toEqual([
      ['lease_honest1', '198.18.250.1', [22, 80]],
      ['lease_honest2', '198.18.250.2', [443]],
    ]);
    // Every argv a scanner got: targets only canonical addresses inside --allow, no injected option.
    const runs = recordedArgv();
    expect(runs.length).toBeGreaterThan(0);
    const allow = AllowList.parse(['198.18.250.0/24']);
    const targets = runs.flatMap((args) => args.slice(args.indexOf('--') + 1));
    expect(targets.sort()).toEqual(['198.18.250.1', '198.18.250.2']);
    for (const t of targets) expect(allow.allows(t)).toBe(true);
    for (const args of runs) {
      expect(args.join(' ')).not.toMatch(/-oN|out\.txt|smb-brute|pwned|extraArgs/);
      expect(args[args.indexOf('--host-timeout') + 1]).toBe('30s');
    }
    // Every refused item with a readable lease id was reported with its reason; each got a log line.
    const reported = new Map(h.refused.map((r) => [r.leaseId, r.reason]));
    expect([...reported.keys()].sort()).toEqual(
      hostile
        .filter((x): x is WorkItem => typeof x === 'object')
        .map((x) => x.leaseId)
        .sort(),
    );
    expect(reported.get('lease_octal1')).toMatch(/"198\.022\.250\.1" is not an address in canonical text/);
    expect(reported.get('lease_outside')).toMatch(/198\.18\.251\.1 is outside this agent's --allow ranges \(198\.18\.250\.0\/24\)/);
    expect(reported.get('lease_ports')).toMatch(/^ports must be array/);
    expect(reported.get('lease_timeout')).toMatch(/^scan\.hostTimeoutSeconds must be integer/);
    expect(reported.get('lease_huge')).toMatch(/^scan\.hostTimeoutSeconds must be <= 86400/);
    expect(reported.get('lease_extra')).toMatch(/must NOT have additional properties/);
    expect(logs.filter((l) => l.startsWith('agent: refused work item'))).toHaveLength(hostile.length);
    expect(logs.some((l) => l.includes('(no readable lease id)'))).toBe(true);
  }, 60_000);
});
