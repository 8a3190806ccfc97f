import type { Preflight, PortResult, ResultSubmission, WorkItem } from '../src/coordinator/protocol.js';
import { isPortbanditError } from '../src/core/errors.js';
import { VERSION } from '../src/core/version.js';
import type { AllowList } from './allow-list.js';
import { CONNECT_DEFAULTS, runConnectSweep } from './scanners/connect-sweep.js';
import { MASSCAN_DEFAULTS, runMasscan } from './scanners/masscan.js';
import type { MasscanRoute } from './scanners/route.js';
import { DETECTION_DEFAULTS, type HostDetection, detectServices } from './service-detection.js';
import type { ScannerTools } from './scanners/tools.js';

/** Which preflight the agent prefers: auto follows the work item and the machine's abilities. */
export type PreflightChoice = 'auto' | 'masscan' | 'connect';

/** Everything the agent decides about scanning, resolved once at startup. */
export interface ScanConfig {
  readonly allow: AllowList;
  readonly scriptsAllow: ReadonlySet<string>;
  readonly preflight: PreflightChoice;
  readonly tools: ScannerTools;
  readonly masscan: { readonly rate: number; readonly retries: number; readonly waitSeconds: number; readonly route?: MasscanRoute };
  readonly connect: { readonly concurrency: number; readonly timeoutMs: number; readonly retries: number };
  /** A host open on more ports than this in the preflight is a pseudo-service host: no nmap. */
  readonly pseudoServiceThreshold: number;
  /** nmap -sV processes at once (default DETECTION_DEFAULTS.parallel). */
  readonly nmapParallel?: number;
  /** Extra nmap timing flags (bench: -T4). */
  readonly nmapTiming?: readonly string[];
  readonly signal?: AbortSignal;
  readonly log: (line: string) => void;
}

export const SCAN_DEFAULTS = {
  masscan: { rate: MASSCAN_DEFAULTS.rate, retries: MASSCAN_DEFAULTS.retries, waitSeconds: MASSCAN_DEFAULTS.waitSeconds },
  connect: { ...CONNECT_DEFAULTS },
  pseudoServiceThreshold: 200,
} as const;

/** A work item this agent would not scan, and why (its lease simply expires on the coordinator). */
export interface RefusedItem {
  readonly item: WorkItem;
  readonly reason: string;
}

export interface BatchOutcome {
  readonly submissions: ResultSubmission[];
  readonly refused: RefusedItem[];
}

interface Group {
  readonly key: string;
  readonly ports: readonly number[];
  readonly scan: WorkItem['scan'];
  readonly scripts: readonly string[];
  readonly refusedScripts: readonly string[];
  readonly items: WorkItem[];
}

/** The preflight that will run for a work item on this machine. */
export function choosePreflight(requested: Preflight, config: Pick<ScanConfig, 'preflight' | 'tools'>): Preflight {
  const canMasscan = config.tools.masscan !== null && config.tools.rawSockets;
  if (config.preflight === 'connect') return 'connect';
  if (config.preflight === 'masscan') return canMasscan ? 'masscan' : 'connect';
  if (requested === 'none') return config.tools.nmap ? 'none' : 'connect';
  if (requested === 'connect') return 'connect';
  return canMasscan ? 'masscan' : 'connect';
}

/** Group items that share port set and scan options: one preflight and one nmap run each. */
function groupItems(items: readonly WorkItem[], config: ScanConfig): Group[] {
  const groups = new Map<string, Group>();
  for (const item of items) {
    const scripts = item.scan.scripts.filter((s) => config.scriptsAllow.has(s));
    const refusedScripts = item.scan.scripts.filter((s) => !config.scriptsAllow.has(s));
    const preflight = choosePreflight(item.scan.preflight, config);
    const key = JSON.stringify([item.ports, preflight, item.scan.versionDetection, scripts, item.scan.hostTimeoutSeconds, item.scan.scriptTimeoutSeconds]);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { key, ports: item.ports, scan: { ...item.scan, preflight }, scripts, refusedScripts, items: [] }));
    g.items.push(item);
  }
  return [...groups.values()];
}

interface PreflightOutcome {
  readonly ran: Preflight;
  readonly open: Map<string, number[]>;
  /** null: unknown (masscan does not report closed ports). */
  readonly answered: Set<string> | null;
  readonly durationMs: number;
}

async function preflight(group: Group, targets: string[], config: ScanConfig): Promise<PreflightOutcome> {
  const started = performance.now();
  if (group.scan.preflight === 'none') {
    return { ran: 'none', open: new Map(targets.map((t) => [t, [...group.ports]])), answered: null, durationMs: 0 };
  }
  if (group.scan.preflight === 'masscan') {
    try {
      const r = await runMasscan({ targets, ports: group.ports, allow: config.allow, ...config.masscan, ...(config.signal ? { signal: config.signal } : {}) });
      return { ran: 'masscan', open: r.open, answered: null, durationMs: r.durationMs };
    } catch (error) {
      if (!isPortbanditError(error) || config.signal?.aborted) throw error;
      config.log(`agent: masscan preflight failed (${error.message}); using the connect sweep`);
    }
  }
  const r = await runConnectSweep({ targets, ports: group.ports, allow: config.allow, ...config.connect, ...(config.signal ? { signal: config.signal } : {}) });
  return { ran: 'connect', open: r.open, answered: r.answered, durationMs: performance.now() - started };
}

/**
 * Scan a batch of work items: refuse targets outside --allow, group the rest by identical port set
 * and scan options, run one preflight per group, then nmap -sV on each host's own open ports
 * (`detectServices`: one nmap process per distinct open-port set, several at once), and build one
 * result per item. Pseudo-service hosts (more open ports than the threshold) skip nmap.
 */
export async function scanBatch(items: readonly WorkItem[], config: ScanConfig): Promise<BatchOutcome> {
  const refused: RefusedItem[] = [];
  const accepted: WorkItem[] = [];
  for (const item of items) {
    if (config.allow.allows(item.ip)) accepted.push(item);
    else refused.push({ item, reason: `${item.ip} is outside this agent's --allow ranges (${config.allow.specs.join(', ') || 'none given'})` });
  }
  const submissions: ResultSubmission[] = [];
  for (const group of groupItems(accepted, config)) {
    if (config.signal?.aborted) break;
    const startedAt = Date.now();
    const targets = [...new Set(group.items.map((i) => i.ip))];
    if (group.refusedScripts.length > 0) config.log(`agent: refusing NSE scripts not on --scripts-allow: ${group.refusedScripts.join(', ')}`);
    const pre = await preflight(group, targets, config);
    const pseudo = new Set<string>();
    // Each host goes to nmap with exactly its own open ports (within the group's port set).
    const nmapOpen = new Map<string, number[]>();
    for (const ip of targets) {
      const open = pre.open.get(ip) ?? [];
      if (pre.ran !== 'none' && open.length > config.pseudoServiceThreshold) pseudo.add(ip);
      else if (open.length > 0) nmapOpen.set(ip, open);
    }
    const detected = nmapOpen.size > 0 && config.tools.nmap
      ? await detectServices(nmapOpen, {
          allow: config.allow,
          versionDetection: group.scan.versionDetection,
          scripts: group.scripts,
          scriptsAllow: config.scriptsAllow,
          hostTimeoutSeconds: group.scan.hostTimeoutSeconds,
          scriptTimeoutSeconds: group.scan.scriptTimeoutSeconds,
          parallel: config.nmapParallel ?? DETECTION_DEFAULTS.parallel,
          hostsPerRun: DETECTION_DEFAULTS.hostsPerRun,
          ...(config.nmapTiming ? { timing: config.nmapTiming } : {}),
          ...(config.signal ? { signal: config.signal } : {}),
          log: config.log,
        })
      : new Map<string, HostDetection>();
    const finishedAt = Date.now();
    for (const item of group.items) {
      const own = new Set(item.ports);
      const open = (pre.open.get(item.ip) ?? []).filter((p) => own.has(p));
      const d = detected.get(item.ip);
      const useNmap = d !== undefined && d.error === undefined && !pseudo.has(item.ip);
      const ports: PortResult[] = useNmap ? d.ports.filter((p) => p.state === 'open' && own.has(p.port)) : pre.ran === 'none' ? [] : open.map((port) => ({ port, protocol: 'tcp', state: 'open' }));
      const host: Record<string, unknown> = {};
      if (pseudo.has(item.ip)) {
        host.pseudoServices = true;
        host.preflightOpen = open.length;
      }
      if (d?.error !== undefined) host.nmapError = d.error.slice(0, 500);
      if (!config.tools.nmap && open.length > 0) host.serviceDetection = 'unavailable (nmap not installed)';
      if (group.refusedScripts.length > 0) host.refusedScripts = group.refusedScripts;
      const down = pre.answered !== null && !pre.answered.has(item.ip) && open.length === 0;
      submissions.push({
        leaseId: item.leaseId,
        ip: item.ip,
        status: down ? 'down' : 'up',
        startedAt,
        finishedAt,
        preflight: pre.ran,
        ports: down ? [] : ports,
        timings: { preflight: Math.round(pre.durationMs), nmap: Math.round(d?.durationMs ?? 0), total: finishedAt - startedAt },
        ...(Object.keys(host).length > 0 ? { host } : {}),
        agentVersion: VERSION,
      });
    }
  }
  return { submissions, refused };
}
