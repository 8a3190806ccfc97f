import { connect } from 'node:net';
import { PortbanditError, PortRanges } from '../../src/core/index.js';
import type { AllowList } from '../allow-list.js';

export interface ConnectSweepOptions {
  readonly targets: readonly string[];
  readonly ports: readonly number[];
  readonly allow: AllowList;
  /** Connections in flight at once. */
  readonly concurrency?: number;
  /** Per-connection timeout. */
  readonly timeoutMs?: number;
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

export const CONNECT_DEFAULTS = { concurrency: 512, timeoutMs: 1500, retries: 1 } as const;

type Outcome = 'open' | 'refused' | 'timeout';

function probe(host: string, port: number, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    function finish(outcome: Outcome): void {
      clearTimeout(timer);
      socket.destroy();
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
  const concurrency = Math.max(1, options.concurrency ?? CONNECT_DEFAULTS.concurrency);
  const timeoutMs = options.timeoutMs ?? CONNECT_DEFAULTS.timeoutMs;
  const retries = options.retries ?? CONNECT_DEFAULTS.retries;
  const { targets, ports } = options;
  const total = targets.length * ports.length;
  const open = new Map<string, Set<number>>();
  const answered = new Set<string>();
  const unprobed = new Map<string, Set<number>>();
  const started = performance.now();
  const deadline = options.deadline ?? Infinity;
  /** Whether an attempt started now could not finish before the deadline. */
  const late = (): boolean => Date.now() + timeoutMs > deadline;
  let next = 0;
  let attempts = 0;
  async function worker(): Promise<void> {
    while (next < total && !options.signal?.aborted) {
      // Port-major order spreads consecutive probes over hosts instead of hammering one.
      const i = next++;
      const host = targets[i % targets.length]!;
      const port = ports[Math.floor(i / targets.length)]!;
      if (late()) {
        let set = unprobed.get(host);
        if (!set) unprobed.set(host, (set = new Set()));
        set.add(port);
        continue;
      }
      // A retry that could not finish in time is skipped: one silent attempt decides then.
      for (let attempt = 0; attempt <= retries && (attempt === 0 || !late()); attempt++) {
        attempts++;
        const outcome = await probe(host, port, timeoutMs);
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
