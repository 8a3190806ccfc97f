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
