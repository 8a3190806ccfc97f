import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { isCanonicalIp, PortbanditError, PortRanges } from '../../src/core/index.js';
import type { AllowList } from '../allow-list.js';
import { groupFindings, parseMasscanOutput } from '../../src/formats/index.js';
import { type MasscanRoute, resolveMasscanRoute } from './route.js';

export interface MasscanOptions {
  readonly targets: readonly string[];
  readonly ports: readonly number[];
  /** Targets outside it are refused before anything runs. */
  readonly allow: AllowList;
  /**
   * Packets per second. On the lab (16 hosts x 65,535 ports, shared 2-core machine) with one retry:
   * closed ports answering RST, 10,000 lost 0-1 and 30,000-200,000 lost 2-6 of 57 open ports (the
   * capture drowns in RSTs); closed ports silent (`lab up --closed drop`), 50,000 and 100,000 lost none.
   */
  readonly rate?: number;
  readonly retries?: number;
  /** Seconds masscan waits for late answers after sending. */
  readonly waitSeconds?: number;
  /** Explicit adapter/source/router; default: resolved from `ip route get` (see route.ts). */
  readonly route?: MasscanRoute;
  readonly timeoutMs?: number;
  readonly maxOutputBytes?: number;
  readonly masscanPath?: string;
  readonly signal?: AbortSignal;
  /** Called once masscan has been started (after the route lookup), before it ends. */
  readonly onStart?: () => void;
  /**
   * Called once masscan says it is done sending (its status line turns to "waiting N-secs", the
   * --wait for late answers) or, failing that, when it exits. Under CPU load masscan sends slower
   * than its --rate, so the planned send time (`masscanSendPlan`) is only a lower bound.
   */
  readonly onSent?: () => void;
}

export interface MasscanResult {
  /** Open ports per target (ascending, de-duplicated); targets with nothing open are absent. */
  readonly open: Map<string, number[]>;
  readonly durationMs: number;
  readonly args: readonly string[];
}

export const MASSCAN_DEFAULTS = { rate: 10_000, retries: 1, waitSeconds: 2, maxOutputBytes: 64 * 1024 * 1024 } as const;

/**
 * How far apart (in probes, as a multiple of the run's size over its retries) masscan's retry of
 * a probe lands when the run is small: see `masscanSendPlan`. 1.5 puts the retry half a run after
 * the probe (a whole multiple would send them back to back).
 */
export const MASSCAN_RETRY_SPREAD = 1.5;

/** How masscan sends one run: at what --rate, how many packets, for how long. */
export interface MasscanSendPlan {
  /** The --rate the run gets (at most the rate asked for). */
  readonly rate: number;
  /** Packets it sends, retries and masscan's wrap-around included. */
  readonly packets: number;
  /** Milliseconds of sending at `rate` (start-up and --wait not included). */
  readonly sendMs: number;
}

/**
 * How a masscan run of `probes` (ports x targets) is sent at up to `rate` packets/s with
 * `retries`. masscan 1.3.2 spaces a retry one second after its probe by walking its shuffled
 * index `retries x rate` past the end, sending every index's probe and its retries on each step
 * and wrapping around the run: (probes + retries x rate) x (retries + 1) packets. At full rate a
 * small run is flooded (in the lab, with --packet-trace, 6 ports at the agent's 50,000/s with one
 * retry got 100,012 SYNs; by this loop a host's 1,000-port first look at 50,000/s gets 102 per port).
 * So a run smaller than `retries x rate` gets --rate `MASSCAN_RETRY_SPREAD x probes / retries`
 * instead: each probe goes out (retries + 1) x (1 + MASSCAN_RETRY_SPREAD) = 5 times with one
 * retry, and the run sends for (retries + 1) x (probes / rate + retries) s as before, but never
 * less than (retries + 1) x retries x (1 + 1 / MASSCAN_RETRY_SPREAD) s (3.3 s with one retry).
 */
export function masscanSendPlan(probes: number, rate: number, retries: number): MasscanSendPlan {
  const sent = retries === 0 ? rate : Math.min(rate, Math.max(1, Math.ceil((MASSCAN_RETRY_SPREAD * probes) / retries)));
  const packets = (retries + 1) * (probes + retries * sent);
  return { rate: sent, packets, sendMs: (packets / sent) * 1000 };
}

function checkInteger(value: number, min: number, max: number, where: string): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new PortbanditError('PB_ERR_SCAN_OPTION', `expected an integer ${min}-${max}, got ${JSON.stringify(value)}`, {
      where: `masscan ${where}`,
    });
  }
  return value;
}

/** Open one TCP connection to port 9 of `ip`; the answer's packet wakes masscan's blocked capture. */
function poke(ip: string): void {
  const socket = connect({ host: ip, port: 9, timeout: 500 });
  socket.on('error', () => socket.destroy());
  socket.on('timeout', () => socket.destroy());
  socket.on('connect', () => socket.destroy());
}

/**
 * Run masscan over `targets` x `ports` and return the open ports. Always passes --adapter,
 * --adapter-ip and --router-ip (never the default route), refuses targets outside `allow`, writes
 * -oD (NDJSON) to a temp file and de-duplicates findings (retries repeat them).
 *
 * masscan 1.3.2 can block forever in its final "waiting" phase on a quiet interface (libpcap
 * never returns); once the expected send time plus --wait has passed, we open a TCP connection
 * to a target once a second so that a packet arrives and masscan exits normally. A hard timeout
 * bounds it regardless.
 */
export async function runMasscan(options: MasscanOptions): Promise<MasscanResult> {
  const { targets, ports } = options;
  if (targets.length === 0 || ports.length === 0) return { open: new Map(), durationMs: 0, args: [] };
  // assertAllowed also refuses any target not in canonical text: masscan gets exactly these strings.
  options.allow.assertAllowed(targets, 'masscan target');
  const rate = checkInteger(options.rate ?? MASSCAN_DEFAULTS.rate, 1, 10_000_000, 'rate');
  const retries = checkInteger(options.retries ?? MASSCAN_DEFAULTS.retries, 0, 10, 'retries');
  const wait = checkInteger(options.waitSeconds ?? MASSCAN_DEFAULTS.waitSeconds, 0, 3600, 'waitSeconds');
  const route = options.route ?? (await resolveMasscanRoute(targets));
  // The route becomes arguments too: canonical addresses and a plain interface name only.
  if (
    !isCanonicalIp(route.adapterIp) ||
    !isCanonicalIp(route.routerIp) ||
    !/^[A-Za-z0-9_.:@-]{1,15}$/.test(route.adapter) ||
    route.adapter.startsWith('-')
  ) {
    throw new PortbanditError(
      'PB_ERR_SCAN_OPTION',
      `masscan route ${JSON.stringify(route)} is not an interface name and two addresses in canonical text`,
      { where: 'masscan route' },
    );
  }
  const plan = masscanSendPlan(ports.length * targets.length, rate, retries);
  const expectedSendMs = plan.sendMs;
  // Bounded so the timer stays exact (Node clamps anything above 2^31-1 ms to 1 ms).
  const timeoutMs = Math.min(2 ** 31 - 1, options.timeoutMs ?? Math.max(60_000, expectedSendMs * 3 + (wait + 30) * 1000));
  const dir = mkdtempSync(join(tmpdir(), 'pb-masscan-'));
  const out = join(dir, 'out.ndjson');
  const args = [
    ...targets,
    '-p',
    PortRanges.fromPorts(ports).toString(),
    '--rate',
    String(plan.rate),
    '--retries',
    String(retries),
    '--wait',
    String(wait),
    '--adapter',
    route.adapter,
    '--adapter-ip',
    route.adapterIp,
    '--router-ip',
    route.routerIp,
    '-oD',
    out,
  ];
  const started = performance.now();
  let waker: NodeJS.Timeout | undefined;
  let wakeStart: NodeJS.Timeout | undefined;
  try {
    const child = execa(options.masscanPath ?? 'masscan', args, {
      reject: false,
      timeout: timeoutMs,
      maxBuffer: options.maxOutputBytes ?? MASSCAN_DEFAULTS.maxOutputBytes,
      stdin: 'ignore',
      killSignal: 'SIGKILL',
      ...(options.signal ? { cancelSignal: options.signal } : {}),
    });
    options.onStart?.();
    // masscan writes its status (rate, % done, remaining) to stderr about once a second, also
    // when stderr is no terminal; "waiting N-secs" follows the last packet sent.
    let statusTail = '';
    let sent = false;
    const markSent = (): void => {
      if (sent) return;
      sent = true;
      options.onSent?.();
    };
    child.stderr?.on('data', (chunk: Buffer) => {
      if (sent) return;
      statusTail = (statusTail + chunk.toString('latin1')).slice(-256);
      if (/waiting -?\d+-secs/.test(statusTail)) markSent();
    });
    void child.finally(markSent);
    const wakeAfter = expectedSendMs + wait * 1000 + 500;
    wakeStart = setTimeout(() => {
      waker = setInterval(() => poke(targets[0]!), 1000);
      poke(targets[0]!);
    }, wakeAfter);
    const result = await child;
    if (result.code === 'ENOENT')
      throw new PortbanditError('PB_ERR_SCANNER', 'masscan is not installed (apt-get install nmap masscan); use the connect preflight', {
        where: 'masscan',
      });
    if (result.timedOut)
      throw new PortbanditError('PB_ERR_SCANNER', `masscan did not finish within ${Math.round(timeoutMs)} ms and was killed`, {
        where: 'masscan',
      });
    if (result.isCanceled) throw new PortbanditError('PB_ERR_SCANNER', 'masscan was cancelled (shutdown)', { where: 'masscan' });
    if (result.isMaxBuffer)
      throw new PortbanditError('PB_ERR_SCANNER', 'masscan wrote too much output and was killed', { where: 'masscan' });
    if (result.exitCode !== 0) {
      const tail = String(result.stderr ?? '')
        .trim()
        .split('\n')
        .slice(-3)
        .join(' | ');
      throw new PortbanditError('PB_ERR_SCANNER', `masscan exited with code ${result.exitCode}: ${tail}`, { where: 'masscan' });
    }
    let text = '';
    try {
      text = readFileSync(out, 'utf8');
    } catch {
      // masscan writes no file when nothing at all answered.
    }
    const open = groupFindings(parseMasscanOutput(text, 'masscan -oD', 'ndjson'));
    // Defence in depth: only findings for targets we asked about, on ports we asked about.
    const wanted = new Set(ports);
    const asked = new Set(targets);
    for (const [ip, list] of open) {
      if (!asked.has(ip)) open.delete(ip);
      else
        open.set(
          ip,
          list.filter((p) => wanted.has(p)),
        );
    }
    return { open, durationMs: performance.now() - started, args };
  } finally {
    clearTimeout(wakeStart);
    if (waker) clearInterval(waker);
    rmSync(dir, { recursive: true, force: true });
  }
}
