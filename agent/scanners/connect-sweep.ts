import { connect } from 'node:net';
import { PortbanditError, PortRanges } from '../../src/core/index.js';
import type { AllowList } from '../allow-list.js';

export interface ConnectSweepOptions {
  readonly targets: readonly string[];
  readonly ports: readonly number[];
  readonly allow: AllowList;
  /** Connections in flight at once. */
  readonly concurrency?: number;
  /**
   * The longest per-connection timeout, and the first: before any answer measured the round trip.
   * Once answers come (a connection or a refusal), each probe waits for the target's smoothed
   * round trip plus four deviations (RFC 6298, as nmap times its probes; the sweep's over all
   * targets for one that has not answered yet), at least `minTimeoutMs`, doubled for a retry.
   */
  readonly timeoutMs?: number;
  /** The shortest per-connection timeout the round trips may bring it down to; `timeoutMs` turns adaptation off. */
  readonly minTimeoutMs?: number;
  /**
   * Round trips measured before (an agent's earlier sweeps of the same hosts), updated by this
   * sweep; its bounds replace `timeoutMs` and `minTimeoutMs`. Default: a timer of this sweep's own.
   */
  readonly timer?: ProbeTimer;
  /** Extra attempts after a timeout (a refusal is an answer and is not retried). */
  readonly retries?: number;
  /**
   * Wall-clock time (ms since the epoch) by which the sweep must be done: no attempt starts that
   * could not finish by then (attempt + per-port timeout), and the ports left are returned in
   * `unprobed`. Against a firewall that drops probes every port costs its whole timeout, so an
   * unbounded sweep of many ports can outlive the lease it serves.
   */
  readonly deadline?: number;
  readonly signal?: AbortSignal;
}

export interface ConnectSweepResult {
  /** Open ports per target, ascending; targets with nothing open are absent. */
  readonly open: Map<string, number[]>;
  /** Targets that answered at all (a connection or a refusal). */
  readonly answered: Set<string>;
  /**
   * Ports per target that no attempt decided because the deadline came first, ascending; targets
   * with every port decided are absent. These are unknown, not closed.
   */
  readonly unprobed: Map<string, number[]>;
  readonly durationMs: number;
  readonly attempts: number;
}

export const CONNECT_DEFAULTS = { concurrency: 512, timeoutMs: 1500, minTimeoutMs: 100, retries: 1 } as const;

type Outcome = 'open' | 'refused' | 'timeout';

/** A smoothed round trip and its deviation (RFC 6298, section 2), in ms; per host also when it was last sampled and a port that accepted. */
interface Rtt {
  srtt: number;
  rttvar: number;
  at?: number;
  openPort?: number;
}

/**
 * How long a host's estimate may go without a sample while a sweep probes it before the sweep
 * sends a timing probe (a connect to a port of the host that accepted before), as nmap pings a
 * known port of a host whose probes go unanswered.
 */
export const TIMING_PROBE_AFTER_MS = 250;

function updateRtt(rtt: Rtt | undefined, sampleMs: number): Rtt {
  if (rtt === undefined) return { srtt: sampleMs, rttvar: sampleMs / 2 };
  // A sample below the estimate is no reason for a longer timeout: as Linux does
  // (tcp_rtt_estimator), such a deviation raises rttvar an eighth as fast, so the timeout falls
  // with the round trip instead of rising first (RFC 6298 alone: 200 ms, then answers in 2 ms,
  // took a timeout of 330 ms to 590 ms).
  let change = 0.25 * (Math.abs(rtt.srtt - sampleMs) - rtt.rttvar);
  if (sampleMs < rtt.srtt && change > 0) change /= 8;
  rtt.rttvar += change;
  rtt.srtt = 0.875 * rtt.srtt + 0.125 * sampleMs;
  return rtt;
}

/**
 * Per-probe timeouts from measured round trips, per target and over the sweep (nmap's per-host
 * and group timing): a firewall that drops probes costs every port its whole timeout, and on a
 * LAN a fixed 1.5 s is ~1,000 round trips. Only answers are samples (a connection or a refusal):
 * silence says nothing of the round trip. A measured time is taken less the event loop's recent
 * delay (noteLate), and a host whose probes go unanswered gets timing probes (timingPort).
 */
export class ProbeTimer {
  /** Targets whose round trips are kept at most (then the per-target estimates start over). */
  static readonly MAX_HOSTS = 65_536;
  /** How long a lateness of the probes' timers counts as the event loop's current delay. */
  static readonly LAG_VALID_MS = 1000;
  private readonly hosts = new Map<string, Rtt>();
  private all: Rtt | undefined;
  /** How late the probes' timers fired lately (smoothed), and when that was last seen. */
  private lag = 0;
  private lagAt = -Infinity;

  constructor(
    readonly maxMs: number,
    readonly minMs: number,
  ) {}

  /**
   * A probe's timer fired `lateMs` after it was due: the event loop was that busy, and an answer
   * handled meanwhile was measured that much too long. The delay needs no room in the timeout: a
   * timer that fires late lets the answers that came meanwhile count (probe() decides after the
   * poll phase). (In a standalone sweep of a lab host the delay stayed under a millisecond; a busy
   * agent's loop is where it counts.)
   */
  noteLate(lateMs: number, now = performance.now()): void {
    const late = Math.max(0, lateMs);
    this.lag = now - this.lagAt > ProbeTimer.LAG_VALID_MS ? late : 0.875 * this.lag + 0.125 * late;
    this.lagAt = now;
  }

  /**
   * An answer from `host` after `ms`, less the event loop's recent delay (noteLate); `openPort`:
   * the port that accepted (a connection, not a refusal), for timing probes.
   */
  sample(host: string, ms: number, openPort?: number, now = performance.now()): void {
    if (this.hosts.size >= ProbeTimer.MAX_HOSTS && !this.hosts.has(host)) this.hosts.clear();
    const lag = now - this.lagAt > ProbeTimer.LAG_VALID_MS ? 0 : this.lag;
    const rtt = updateRtt(this.hosts.get(host), Math.max(0, ms - lag));
    rtt.at = now;
    if (openPort !== undefined) rtt.openPort = openPort;
    this.hosts.set(host, rtt);
    this.all = updateRtt(this.all, Math.max(0, ms - lag));
  }

  /**
   * A port of `host` to send a timing probe to at `now`: one that accepted before, when the
   * host's estimate has had no sample for TIMING_PROBE_AFTER_MS; else undefined. Against a
   * firewall that drops probes a sweep gets almost no answers, so without these the estimate
   * stays what a few answers once measured, perhaps in a busy moment of the agent.
   */
  timingPort(host: string, now = performance.now()): number | undefined {
    const rtt = this.hosts.get(host);
    if (rtt?.openPort === undefined || rtt.at === undefined || now - rtt.at < TIMING_PROBE_AFTER_MS) return undefined;
    // One at a time: the next is due an interval after this one was sent (or answered).
    rtt.at = now;
    return rtt.openPort;
  }

  /** The timeout of a probe of `host` (attempt 0 the first, 1 its first retry, ...). */
  timeout(host: string, attempt: number): number {
    const rtt = this.hosts.get(host) ?? this.all;
    if (rtt === undefined) return this.maxMs;
    const base = Math.max(this.minMs, Math.ceil(rtt.srtt + 4 * rtt.rttvar));
    return Math.min(this.maxMs, base * 2 ** attempt);
  }
}

/** A ProbeTimer with a sweep's bounds (defaults as CONNECT_DEFAULTS; the floor at most the longest). */
export function probeTimerFor(options: { readonly timeoutMs?: number; readonly minTimeoutMs?: number }): ProbeTimer {
  const longest = options.timeoutMs ?? CONNECT_DEFAULTS.timeoutMs;
  return new ProbeTimer(longest, Math.min(longest, options.minTimeoutMs ?? CONNECT_DEFAULTS.minTimeoutMs));
}

function probe(host: string, port: number, timeoutMs: number, rtt: ProbeTimer): Promise<Outcome> {
  return new Promise((resolve) => {
    const sent = performance.now();
    const socket = connect({ host, port });
    let done = false;
    // The time-out is decided in the check phase after the timer, so that a connection the kernel
    // completed while the event loop was busy (its event queued for this turn's poll phase) is
    // counted as the answer it is rather than as silence (timers run before I/O in a turn).
    const timer = setTimeout(() => {
      rtt.noteLate(performance.now() - sent - timeoutMs);
      setImmediate(() => finish('timeout'));
    }, timeoutMs);
    function finish(outcome: Outcome): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (outcome !== 'timeout') rtt.sample(host, performance.now() - sent, outcome === 'open' ? port : undefined);
      resolve(outcome);
    }
    socket.once('connect', () => finish('open'));
    // ECONNREFUSED is a RST: the host is there, the port is closed. Unreachable/other errors count as no answer.
    socket.once('error', (error: NodeJS.ErrnoException) => finish(error.code === 'ECONNREFUSED' ? 'refused' : 'timeout'));
  });
}

/**
 * A TCP connect sweep in plain Node, for agents without raw sockets or masscan: bounded
 * concurrency, a per-port timeout and retries on silence. Refuses targets outside `allow`.
 */
export async function runConnectSweep(options: ConnectSweepOptions): Promise<ConnectSweepResult> {
  // Canonical address text inside --allow only; ports and the timeout checked before any socket.
  options.allow.assertAllowed(options.targets, 'connect-sweep target');
  PortRanges.fromPorts(options.ports, 'connect-sweep ports');
  if (options.timeoutMs !== undefined && !(Number.isInteger(options.timeoutMs) && options.timeoutMs >= 1 && options.timeoutMs <= 600_000)) {
    throw new PortbanditError(
      'PB_ERR_SCAN_OPTION',
      `expected a per-port timeout of 1-600000 ms, got ${JSON.stringify(options.timeoutMs)}`,
      { where: 'connect-sweep timeoutMs' },
    );
  }
  if (options.deadline !== undefined && !Number.isFinite(options.deadline)) {
    throw new PortbanditError('PB_ERR_SCAN_OPTION', `expected a deadline in ms since the epoch, got ${JSON.stringify(options.deadline)}`, {
      where: 'connect-sweep deadline',
    });
  }
  if (
    options.minTimeoutMs !== undefined &&
    !(Number.isInteger(options.minTimeoutMs) && options.minTimeoutMs >= 1 && options.minTimeoutMs <= 600_000)
  ) {
    throw new PortbanditError(
      'PB_ERR_SCAN_OPTION',
      `expected a shortest per-port timeout of 1-600000 ms, got ${JSON.stringify(options.minTimeoutMs)}`,
      { where: 'connect-sweep minTimeoutMs' },
    );
  }
  const concurrency = Math.max(1, options.concurrency ?? CONNECT_DEFAULTS.concurrency);
  const timer = options.timer ?? probeTimerFor(options);
  const retries = options.retries ?? CONNECT_DEFAULTS.retries;
  const { targets, ports } = options;
  const total = targets.length * ports.length;
  const open = new Map<string, Set<number>>();
  const answered = new Set<string>();
  const unprobed = new Map<string, Set<number>>();
  const started = performance.now();
  const deadline = options.deadline ?? Infinity;
  /** Whether an attempt of `host` started now could not finish before the deadline. */
  const late = (host: string, attempt: number): boolean => Date.now() + timer.timeout(host, attempt) > deadline;
  let next = 0;
  let attempts = 0;
  async function worker(): Promise<void> {
    while (next < total && !options.signal?.aborted) {
      // Port-major order spreads consecutive probes over hosts instead of hammering one.
      const i = next++;
      const host = targets[i % targets.length]!;
      const port = ports[Math.floor(i / targets.length)]!;
      if (late(host, 0)) {
        let set = unprobed.get(host);
        if (!set) unprobed.set(host, (set = new Set()));
        set.add(port);
        continue;
      }
      // A retry that could not finish in time is skipped: one silent attempt decides then.
      for (let attempt = 0; attempt <= retries && (attempt === 0 || !late(host, attempt)); attempt++) {
        // The host's estimate has gone stale (its probes unanswered): a timing probe to a port
        // that accepted before, beside this attempt (its outcome only feeds the timer).
        const timing = timer.timingPort(host);
        if (timing !== undefined) void probe(host, timing, timer.timeout(host, 0) * 4, timer);
        attempts++;
        const outcome = await probe(host, port, timer.timeout(host, attempt), timer);
        if (outcome === 'timeout') continue;
        answered.add(host);
        if (outcome === 'open') {
          let set = open.get(host);
          if (!set) open.set(host, (set = new Set()));
          set.add(port);
        }
        break;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  const sorted = (m: Map<string, Set<number>>): Map<string, number[]> =>
    new Map([...m].map(([ip, set]) => [ip, [...set].sort((a, b) => a - b)]));
  return { open: sorted(open), answered, unprobed: sorted(unprobed), durationMs: performance.now() - started, attempts };
}
