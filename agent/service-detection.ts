import pMap from 'p-map';
import type { PortResult } from '../src/protocol/index.js';
import { isPortbanditError } from '../src/core/index.js';
import type { AllowList } from './allow-list.js';
import { runNmap } from './scanners/nmap.js';

/** The nmap -sV stage's own options (the rest comes from the work item). */
export interface DetectionOptions {
  readonly allow: AllowList;
  readonly versionDetection: boolean;
  readonly scripts: readonly string[];
  readonly scriptsAllow: ReadonlySet<string>;
  readonly hostTimeoutSeconds?: number;
  readonly scriptTimeoutSeconds?: number;
  readonly timing?: readonly string[];
  /** nmap processes at once. */
  readonly parallel: number;
  /** Hosts per nmap process at most (all of them in one nmap host group). */
  readonly hostsPerRun: number;
  readonly signal?: AbortSignal;
  readonly log?: (line: string) => void;
}

/** What nmap said of one host. */
export interface HostDetection {
  /** Ports in nmap's result (open ones and any it found closed or filtered after the preflight). */
  readonly ports: readonly PortResult[];
  /** Wall time of the nmap process that scanned this host. */
  readonly durationMs: number;
  /** Set when that nmap process failed, left the host out or timed it out; `ports` is then empty. */
  readonly error?: string;
}

export const DETECTION_DEFAULTS = { parallel: 64, hostsPerRun: 16 } as const;

/** One nmap run: hosts with identical open-port sets, at most `hostsPerRun` of them. */
export interface DetectionRun {
  readonly targets: readonly string[];
  readonly ports: readonly number[];
}

/**
 * Plan the nmap runs for a preflight's open ports: one per distinct open-port set, split into runs
 * of at most `hostsPerRun` hosts, so each host is probed on exactly its own open ports (never on
 * another host's) and every host of a run sits in nmap's single host group. Hosts with nothing
 * open get no run. Larger runs first, so the longest ones start early.
 */
export function planDetection(open: ReadonlyMap<string, readonly number[]>, hostsPerRun: number): DetectionRun[] {
  const bySet = new Map<string, { ports: number[]; targets: string[] }>();
  for (const [ip, ports] of open) {
    if (ports.length === 0) continue;
    const sorted = [...new Set(ports)].sort((a, b) => a - b);
    const key = sorted.join(',');
    let g = bySet.get(key);
    if (!g) bySet.set(key, (g = { ports: sorted, targets: [] }));
    g.targets.push(ip);
  }
  const runs: DetectionRun[] = [];
  for (const g of bySet.values()) {
    for (let i = 0; i < g.targets.length; i += hostsPerRun) runs.push({ targets: g.targets.slice(i, i + hostsPerRun), ports: g.ports });
  }
  return runs.sort((a, b) => b.targets.length * b.ports.length - a.targets.length * a.ports.length);
}

/**
 * nmap service detection on each host's own open ports, as several nmap processes at once.
 *
 * nmap scans a run's hosts in host groups one after another; with a few open ports per host, the
 * -sV stage's time is set by the slowest service's probe timeouts (a silent service costs its
 * whole probe sequence), so two groups take about twice one. Separate processes overlap those
 * waits. A failed run (PortbanditError: timeout, output limit, truncated XML) marks only its own
 * hosts; an abort or any other error propagates.
 */
export async function detectServices(
  open: ReadonlyMap<string, readonly number[]>,
  options: DetectionOptions,
): Promise<Map<string, HostDetection>> {
  const out = new Map<string, HostDetection>();
  const runs = planDetection(open, Math.max(1, options.hostsPerRun));
  await pMap(
    runs,
    async (run) => {
      const started = performance.now();
      try {
        const r = await runNmap({
          targets: run.targets,
          ports: run.ports,
          allow: options.allow,
          versionDetection: options.versionDetection,
          scripts: options.scripts,
          scriptsAllow: options.scriptsAllow,
          ...(options.hostTimeoutSeconds !== undefined ? { hostTimeoutSeconds: options.hostTimeoutSeconds } : {}),
          ...(options.scriptTimeoutSeconds !== undefined ? { scriptTimeoutSeconds: options.scriptTimeoutSeconds } : {}),
          timing: [...(options.timing ?? []), '--min-hostgroup', String(run.targets.length)],
          ...(options.signal ? { signal: options.signal } : {}),
        });
        const byIp = new Map(r.run.hosts.map((h) => [h.ip, h]));
        for (const ip of run.targets) {
          // A host nmap left out of its report, or gave up on at --host-timeout, was not looked at:
          // an error, never an empty (all closed) answer.
          const host = byIp.get(ip);
          const error = !host ? 'nmap did not report the host' : host.timedOut ? 'nmap gave up on the host at --host-timeout' : undefined;
          out.set(ip, error ? { ports: [], durationMs: r.durationMs, error } : { ports: host!.ports, durationMs: r.durationMs });
        }
      } catch (error) {
        if (!isPortbanditError(error) || options.signal?.aborted) throw error;
        options.log?.(
          `agent: nmap failed on ${run.targets.join(', ')} (${error.message}); reporting preflight ports without service names`,
        );
        for (const ip of run.targets) out.set(ip, { ports: [], durationMs: performance.now() - started, error: error.message });
      }
    },
    { concurrency: Math.max(1, options.parallel), ...(options.signal ? { signal: options.signal } : {}) },
  );
  return out;
}
