import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { AllowList } from '../../agent/allow-list.js';
import { runMasscan } from '../../agent/scanners/masscan.js';

/**
 * Retries are passes of the runner's own: masscan 1.3.2's --retries sends a second of full-rate
 * duplicates per retry (agent/scanners/masscan.ts). A masscan stand-in that sends nothing
 * records its argv and, per pass, reports one open port in its -oD file: the first pass finds
 * 80, the second 443 (a probe the first lost), the third 80 again.
 */
describe('masscan retries as passes (a stand-in on loopback that sends nothing)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pb-passes-'));
  const standIn = join(dir, 'masscan');
  const argvLog = join(dir, 'argv.ndjson');

  beforeAll(() => {
    writeFileSync(
      standIn,
      `#!/usr/bin/env node
const fs = require('node:fs');
const args = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(argvLog)}, JSON.stringify(args) + '\\n');
const pass = fs.readFileSync(${JSON.stringify(argvLog)}, 'utf8').trim().split('\\n').length;
const port = pass === 2 ? 443 : 80;
fs.writeFileSync(args[args.indexOf('-oD') + 1], JSON.stringify({ ip: '127.0.0.7', timestamp: '1795400994', port, proto: 'tcp', rec_type: 'status', data: { status: 'open', reason: 'syn-ack', ttl: 64 } }) + '\\n');
`,
    );
    chmodSync(standIn, 0o755);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('--retries 2 is three runs with --retries 0 whose open ports are merged, started once', async () => {
    let starts = 0;
    const result = await runMasscan({
      targets: ['127.0.0.7'],
      ports: [22, 80, 443],
      allow: AllowList.parse(['127.0.0.0/8']),
      rate: 1000,
      retries: 2,
      waitSeconds: 0,
      route: { adapter: 'lo', adapterIp: '127.0.0.1', routerIp: '127.0.0.1' },
      masscanPath: standIn,
      onStart: () => starts++,
    });
    const runs = readFileSync(argvLog, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as string[]);
    expect(runs).toHaveLength(3);
    for (const args of runs) expect(args[args.indexOf('--retries') + 1]).toBe('0');
    expect([...result.open]).toEqual([['127.0.0.7', [80, 443]]]);
    expect(starts).toBe(1);
    expect(result.args).toEqual(runs[0]);
  });
});
