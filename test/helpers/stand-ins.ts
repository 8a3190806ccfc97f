import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { ScanConfig } from '../../agent/index.js';
import { AllowList } from '../../agent/index.js';

/**
 * Stand-in scanners (scripts that send nothing) first on PATH, in a temp directory, with the
 * environment variables they read (given, or made from the directory); `restore` puts PATH and
 * those variables back and removes the directory. `scripts` maps a command name (masscan, nmap)
 * to its script text. A test that changes one of those variables later is undone by `restore` too.
 */
export function installStandIns(
  prefix: string,
  scripts: Readonly<Record<string, string>>,
  variables: Readonly<Record<string, string>> | ((dir: string) => Readonly<Record<string, string>>) = {},
): { dir: string; restore: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const env = typeof variables === 'function' ? variables(dir) : variables;
  for (const [name, text] of Object.entries(scripts)) {
    writeFileSync(join(dir, name), text);
    chmodSync(join(dir, name), 0o755);
  }
  const keys = ['PATH', ...Object.keys(env)];
  const saved = new Map(keys.map((k) => [k, process.env[k]]));
  process.env.PATH = `${dir}${delimiter}${saved.get('PATH') ?? ''}`;
  for (const [k, v] of Object.entries(env)) process.env[k] = v;
  return {
    dir,
    restore: () => {
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The agent's scan config for stand-in masscan and nmap on loopback (masscan routed over `lo`). */
export function standInScanConfig(log: (line: string) => void, masscanRate = 1000): ScanConfig {
  return {
    allow: AllowList.parse(['127.0.0.0/8']),
    scriptsAllow: new Set(),
    preflight: 'masscan',
    tools: { nmap: 'nmap', masscan: 'masscan', rawSockets: true },
    masscan: { rate: masscanRate, retries: 0, waitSeconds: 0, route: { adapter: 'lo', adapterIp: '127.0.0.1', routerIp: '127.0.0.1' } },
    connect: { concurrency: 16, timeoutMs: 500, retries: 0 },
    pseudoServiceThreshold: 100,
    log,
  };
}

/**
 * A masscan stand-in (sends nothing) that reports the ports in $PB_STANDIN_MASSCAN_OPEN (a JSON
 * array) open on every target it is given, and appends its argv to $PB_STANDIN_LOG when set.
 */
export const MASSCAN_REPORTING_STANDIN = `#!/usr/bin/env node
const fs = require('node:fs');
const argv = process.argv.slice(2);
if (process.env.PB_STANDIN_LOG) fs.appendFileSync(process.env.PB_STANDIN_LOG, JSON.stringify(argv) + '\\n');
const out = argv[argv.indexOf('-oD') + 1];
const targets = argv.slice(0, argv.indexOf('-p'));
const open = JSON.parse(process.env.PB_STANDIN_MASSCAN_OPEN);
const lines = targets.flatMap((ip) => open.map((port) => JSON.stringify({ ip, timestamp: '0', port, proto: 'tcp', rec_type: 'status', data: { status: 'open', reason: 'syn-ack', ttl: 64 } })));
fs.writeFileSync(out, lines.join('\\n') + (lines.length ? '\\n' : ''));
`;
