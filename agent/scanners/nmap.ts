import { isCanonicalIp, PortbanditError, PortRanges } from '../../src/core/index.js';
import type { AllowList } from '../allow-list.js';
import { runBounded } from './bounded-process.js';
import { type NmapRun, parseNmapXml } from '../../src/formats/index.js';

export interface NmapOptions {
  readonly targets: readonly string[];
  readonly ports: readonly number[];
  readonly allow: AllowList;
  /** -sV (service/version detection). */
  readonly versionDetection?: boolean;
  /** NSE scripts; each must be on `scriptsAllow` or the run is refused. */
  readonly scripts?: readonly string[];
  readonly scriptsAllow?: ReadonlySet<string>;
  readonly hostTimeoutSeconds?: number;
  readonly scriptTimeoutSeconds?: number;
  /** nmap --version-intensity (0-9); nmap's default (7) when absent. */
  readonly versionIntensity?: number;
  /** -sT instead of nmap's default (-sS as root): the agent's -sV runs on ports found open; the bench compares both. */
  readonly connectScan?: boolean;
  /** Extra timing flags (e.g. ["-T4", "--min-rate", "5000"]); validated against a short list. */
  readonly timing?: readonly string[];
  readonly timeoutMs?: number;
  readonly maxOutputBytes?: number;
  readonly nmapPath?: string;
  readonly signal?: AbortSignal;
  /** Niceness of the nmap process (default NMAP_DEFAULTS.nice; 0: the agent's own priority). */
  readonly nice?: number;
}

export interface NmapResult {
  readonly run: NmapRun;
  readonly durationMs: number;
  readonly args: readonly string[];
}

/**
 * `nice`: nmap runs below the agent's priority. Each -sV process spends ~0.5 s of CPU loading its
 * probes and scripts before it sends anything; a first look hands the agent dozens at once (the
 * ports last known open of every host), and on the lab's 2 cores that storm held the masscan
 * preflight of the same hosts back by ~11 s (the agent's own event loop and `ip route` lookups
 * got a 40th of the CPU). Reniced, nmap takes the CPU the rest leaves, and its probes' time-outs
 * are wall-clock waits that a lower priority does not lengthen.
 */
export const NMAP_DEFAULTS = { hostTimeoutSeconds: 300, scriptTimeoutSeconds: 60, maxOutputBytes: 64 * 1024 * 1024, nice: 10 } as const;

const scriptName = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const timingFlag =
  /^(-T[0-5]|--min-rate|--max-rate|--max-retries|--version-intensity|--min-parallelism|--min-hostgroup|--max-rtt-timeout|\d+(ms|s)?)$/;

/** Longest nmap timeout the agent passes on (the wire schema's bound: one day). */
export const MAX_TIMEOUT_SECONDS = 86_400;

/** A timeout must be a whole number of seconds, 1 to one day (it becomes "<n>s" and a timer). */
function checkSeconds(value: unknown, where: string): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_TIMEOUT_SECONDS) {
    throw new PortbanditError(
      'PB_ERR_SCAN_OPTION',
      `expected an integer number of seconds 1-${MAX_TIMEOUT_SECONDS}, got ${JSON.stringify(value)}`,
      { where },
    );
  }
}

/** Keep the scripts this agent allows; throws PB_ERR_UNSAFE_TARGET naming the first refused one. */
export function checkScripts(scripts: readonly string[], allow: ReadonlySet<string>): string[] {
  for (const s of scripts) {
    if (!scriptName.test(s) || !allow.has(s)) {
      throw new PortbanditError(
        'PB_ERR_UNSAFE_TARGET',
        `NSE script ${JSON.stringify(s)} is not on this agent's --scripts-allow list (${[...allow].join(', ') || 'empty'})`,
        { where: 'scan.scripts' },
      );
    }
  }
  return [...scripts];
}

function checkIntensity(value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 9) {
    throw new PortbanditError('PB_ERR_SCAN_OPTION', `nmap --version-intensity must be an integer 0-9, got ${JSON.stringify(value)}`, {
      where: 'scan.versionIntensity',
    });
  }
  return value;
}

/** The nmap argument array for a run (exported so tests can check it without running nmap). */
export function nmapArgs(options: NmapOptions): string[] {
  const scripts = checkScripts(options.scripts ?? [], options.scriptsAllow ?? new Set());
  // Only canonical address text reaches nmap (it reads "010" as decimal where others read octal).
  for (const t of options.targets) {
    if (!isCanonicalIp(t))
      throw new PortbanditError('PB_ERR_UNSAFE_TARGET', `nmap target ${JSON.stringify(t)} is not an address in canonical text`, {
        where: 'nmap target',
      });
  }
  checkSeconds(options.hostTimeoutSeconds, 'hostTimeoutSeconds');
  checkSeconds(options.scriptTimeoutSeconds, 'scriptTimeoutSeconds');
  for (const t of options.timing ?? []) {
    if (!timingFlag.test(t))
      throw new PortbanditError('PB_ERR_SCAN_OPTION', `nmap timing flag ${JSON.stringify(t)} is not allowed`, { where: 'timing' });
  }
  return [
    ...(options.versionDetection === false ? [] : ['-sV']),
    ...(options.connectScan ? ['-sT'] : []),
    '-Pn',
    '-n',
    '-p',
    PortRanges.fromPorts(options.ports).toString(),
    '--host-timeout',
    `${options.hostTimeoutSeconds ?? NMAP_DEFAULTS.hostTimeoutSeconds}s`,
    ...(options.versionDetection !== false && options.versionIntensity !== undefined
      ? ['--version-intensity', String(checkIntensity(options.versionIntensity))]
      : []),
    ...(scripts.length > 0
      ? ['--script', scripts.join(','), '--script-timeout', `${options.scriptTimeoutSeconds ?? NMAP_DEFAULTS.scriptTimeoutSeconds}s`]
      : []),
    ...(options.timing ?? []),
    '-oX',
    '-',
    '--',
    ...options.targets,
  ];
}

/**
 * `nmap -sV -Pn -n -p PORTS [--script ...] -oX - TARGETS`, bounded by a timeout and an output
 * limit, XML parsed. Refuses targets outside `allow` and scripts not on `scriptsAllow`.
 */
export async function runNmap(options: NmapOptions): Promise<NmapResult> {
  options.allow.assertAllowed(options.targets, 'nmap target');
  if (!Array.isArray(options.targets) || !Array.isArray(options.ports) || options.targets.length === 0 || options.ports.length === 0) {
    throw new PortbanditError('PB_ERR_SCAN_OPTION', 'nmap needs at least one target and one port', { where: 'nmap' });
  }
  const args = nmapArgs(options);
  const hostTimeout = options.hostTimeoutSeconds ?? NMAP_DEFAULTS.hostTimeoutSeconds;
  // nmap scans hosts in parallel groups; its own --host-timeout bounds each, this bounds the run.
  const timeoutMs = options.timeoutMs ?? (hostTimeout * Math.max(1, Math.ceil(options.targets.length / 16)) + 60) * 1000;
  const result = await runBounded(options.nmapPath ?? 'nmap', args, {
    timeoutMs,
    maxOutputBytes: options.maxOutputBytes ?? NMAP_DEFAULTS.maxOutputBytes,
    nice: options.nice ?? NMAP_DEFAULTS.nice,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const run = parseNmapXml(result.stdout, 'nmap -oX');
  if (!run.complete)
    throw new PortbanditError('PB_ERR_SCANNER', 'nmap output ended without <runstats> (killed or cut short)', { where: 'nmap -oX' });
  return { run, durationMs: result.durationMs, args };
}
