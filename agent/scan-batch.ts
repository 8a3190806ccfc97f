import { setMaxListeners } from 'node:events';
import type { Preflight, PreflightRequest, PortResult, ResultSubmission, WorkItem } from '../src/protocol/index.js';
import { isPortbanditError, PortRanges, VERSION } from '../src/core/index.js';
import type { AllowList } from './allow-list.js';
import { loadNmapServices } from '../src/catalog/index.js';
import {
  type BlindEvidence,
  MASSCAN_BLIND_MS,
  MASSCAN_SIGHT_CHECK_PORTS,
  MasscanBlindHosts,
  masscanWasBlind,
  sightCheckPorts,
} from './masscan-blind.js';
import { MasscanRateControl } from './masscan-rate.js';
import { CONNECT_DEFAULTS, type ProbeTimer, probeTimerFor, runConnectSweep } from './scanners/connect-sweep.js';
import { MASSCAN_DEFAULTS, MASSCAN_RETRY_SPREAD, masscanSendPlan, runMasscan } from './scanners/masscan.js';
import { runNmap } from './scanners/nmap.js';
import type { MasscanRoute } from './scanners/route.js';
import type { ScannerTools } from './scanners/tools.js';
import type { Screenshotter } from './screenshots.js';
import { DETECTION_DEFAULTS } from './service-detection.js';
import { checkWorkItem } from './work-item.js';

/** Which preflight the agent prefers: auto follows the work item and the machine's abilities. */
export type PreflightChoice = 'auto' | 'masscan' | 'connect';

/** Everything the agent decides about scanning, resolved once at startup. */
export interface ScanConfig {
  readonly allow: AllowList;
  readonly scriptsAllow: ReadonlySet<string>;
  readonly preflight: PreflightChoice;
  readonly tools: ScannerTools;
  readonly masscan: { readonly rate: number; readonly retries: number; readonly waitSeconds: number; readonly route?: MasscanRoute };
  readonly connect: { readonly concurrency: number; readonly timeoutMs: number; readonly minTimeoutMs?: number; readonly retries: number };
  /** A host open on more ports than this in the preflight is a pseudo-service host: no nmap. */
  readonly pseudoServiceThreshold: number;
  /**
   * masscan preflight: ports of a sight check (agent/masscan-blind.ts), a connect to the most
   * likely ports of a host masscan saw nothing of at the first round of a visit when nothing was
   * open at its last visit; 0 turns it off (default MASSCAN_SIGHT_CHECK_PORTS).
   */
  readonly masscanSightCheck?: number;
  /**
   * Retries of the preflight (masscan or connect sweep) of a silent round (a later round of a
   * visit whose earlier rounds found nothing open: a dead or firewalled address, most of a
   * sparse scope); default SILENT_RETRIES. The address answered none of the ports it was most
   * likely to have open, a moment ago: a retry there guards against a lost probe to a host that
   * is almost never there, at the cost of every probe sent twice (the silent sweeps were most of
   * a sparse /24's cycle). A port missed that way is probed again at the next visit.
   */
  readonly silentRetries?: number;
  /** nmap -sV processes at once, across every host the agent holds (default DETECTION_DEFAULTS.parallel). */
  readonly nmapParallel?: number;
  /** Extra nmap timing flags (bench: -T4). */
  readonly nmapTiming?: readonly string[];
  readonly signal?: AbortSignal;
  readonly log: (line: string) => void;
  /** `--screenshots`: render each open HTTP(S) service after service detection. */
  readonly screenshots?: Screenshotter;
}

/** The submission without nmap's `tunnel` and `answersHttp` notes (agent-internal: the wire schema has no such fields). */
function withoutTunnels(submission: ResultSubmission): ResultSubmission {
  if (!submission.ports.some((p) => p.tunnel !== undefined || p.answersHttp !== undefined)) return submission;
  return { ...submission, ports: submission.ports.map(({ tunnel: _tunnel, answersHttp: _answersHttp, ...rest }) => rest) };
}

/** Preflight retries of a silent round by default (ScanConfig.silentRetries). */
export const SILENT_RETRIES = 0;

/** The preflight retries of a work item (unchecked: `silent` read as unknown): a silent round's, or the agent's. */
export function preflightRetries(item: { readonly silent?: unknown }, scan: Pick<ScanConfig, 'masscan' | 'silentRetries'>): number {
  return item.silent === true ? (scan.silentRetries ?? SILENT_RETRIES) : scan.masscan.retries;
}

export const SCAN_DEFAULTS = {
  masscan: { rate: MASSCAN_DEFAULTS.rate, retries: MASSCAN_DEFAULTS.retries, waitSeconds: MASSCAN_DEFAULTS.waitSeconds },
  silentRetries: SILENT_RETRIES,
  connect: { ...CONNECT_DEFAULTS },
  pseudoServiceThreshold: 200,
  masscanSightCheck: MASSCAN_SIGHT_CHECK_PORTS,
} as const;

/**
 * A work item this agent would not scan, and why (the agent reports it; the lease expires on the
 * coordinator). `item` is what arrived, unchecked: read its fields as unknown.
 */
export interface RefusedItem {
  readonly item: WorkItem;
  readonly reason: string;
}

export interface BatchOutcome {
  readonly submissions: ResultSubmission[];
  readonly refused: RefusedItem[];
}

/** One host's outcome, as soon as that host is done. */
export type HostOutcome =
  | { readonly kind: 'result'; readonly item: WorkItem; readonly submission: ResultSubmission }
  | { readonly kind: 'refused'; readonly item: WorkItem; readonly reason: string };

/** The preflight that will run for a work item on this machine. */
export function choosePreflight(requested: PreflightRequest, config: Pick<ScanConfig, 'preflight' | 'tools'>): Preflight {
  const canMasscan = config.tools.masscan !== null && config.tools.rawSockets;
  if (config.preflight === 'connect') return 'connect';
  if (config.preflight === 'masscan') return canMasscan ? 'masscan' : 'connect';
  if (requested === 'none') return config.tools.nmap ? 'none' : 'connect';
  if (requested === 'connect') return 'connect';
  return canMasscan ? 'masscan' : 'connect';
}

/** Why `choosePreflight` picks what it picks for `auto`, for the agent's startup log. */
export function describePreflight(config: Pick<ScanConfig, 'preflight' | 'tools'>): string {
  const { tools } = config;
  if (config.preflight === 'connect') return 'connect sweep (--preflight connect)';
  const why =
    tools.masscan === null
      ? 'masscan is not installed'
      : !tools.rawSockets
        ? 'this process has no raw sockets (not root, no CAP_NET_RAW)'
        : '';
  if (why === '') return `masscan (root, installed; the connect sweep where no route is found)`;
  return `connect sweep (${why})`;
}

/**
 * masscan cannot give each host its own ports: a run probes every port of its list on every
 * target. Items whose lists differ share a run only while the union stays within this factor of
 * the largest member list, so a host gets at most this many times its own probes (results for
 * ports it was not given are dropped); otherwise they run separately.
 */
export const MASSCAN_UNION_FACTOR = 2;

/** masscan runs at once (each at its share of --rate). */
const MASSCAN_PARALLEL = 4;

/** How long waiting items are gathered into one preflight run, unless this many are waiting. */
const GATHER_MS = 500;
const GATHER_ITEMS = 128;

/** Per-attempt timeout of the connect check of ports last known open. */
const VERIFY_TIMEOUT_MS = 2000;

/**
 * What a preflight leaves before the earliest lease deadline of its group, besides nmap's host
 * time-out: time to submit (and a retry or two through a brief coordinator hiccup).
 */
const SUBMIT_RESERVE_MS = 10_000;

/**
 * When a group's preflight must be done: the earliest lease deadline of its items, less nmap's
 * host time-out and the time to submit — but the preflight keeps at least half of what is left,
 * so a short lease still gets a partial look rather than none.
 */
export function preflightDeadline(items: readonly Pick<WorkItem, 'deadline' | 'scan'>[], now: number): number {
  let deadline = Infinity;
  let reserve = 0;
  for (const item of items) {
    deadline = Math.min(deadline, item.deadline);
    reserve = Math.max(reserve, item.scan.hostTimeoutSeconds * 1000);
  }
  if (deadline === Infinity) return deadline;
  return deadline - Math.min(reserve + SUBMIT_RESERVE_MS, Math.max(0, (deadline - now) / 2));
}

/**
 * What a masscan run costs besides sending its probes once per try at its rate: start-up, the
 * second its index walks past the end per retry (see `masscanSendPlan`) and its final --wait
 * (measured in the lab: a run of 30 packets takes ~2 s with no retry and no wait, ~5 s with one
 * retry and --wait 2, ~8 s with two retries and --wait 1, before small runs were slowed to
 * their size).
 */
export function masscanOverheadMs(masscan: { readonly retries: number; readonly waitSeconds: number }): number {
  return (2 + (masscan.retries + 1) * masscan.retries + masscan.waitSeconds) * 1000;
}

/**
 * How many of a run's ports (from the start of its list) masscan can probe on every target
 * before `deadline` at up to `rate` packets/s: all of them when the deadline allows (or there
 * is none), else as many as fit, possibly none. A small run is sent slower than `rate`
 * (`masscanSendPlan`), so it takes at least (retries + 1) x retries / MASSCAN_RETRY_SPREAD s
 * of sending however few its probes.
 */
export function masscanPortsThatFit(
  ports: number,
  targets: number,
  rate: number,
  masscan: { readonly retries: number; readonly waitSeconds: number },
  deadline: number,
  now: number,
): number {
  if (deadline === Infinity) return ports;
  const sendMs = deadline - now - masscanOverheadMs(masscan);
  const tries = masscan.retries + 1;
  if (sendMs <= 0 || sendMs < ((tries * masscan.retries) / MASSCAN_RETRY_SPREAD) * 1000) return 0;
  const fit = Math.floor((sendMs / 1000) * rate) / (Math.max(1, targets) * tries);
  return Math.max(0, Math.min(ports, Math.floor(fit)));
}

/** Connect sweeps at once. */
const CONNECT_PARALLEL = 4;

/** The smallest share of --rate a masscan run gets. */
const MIN_MASSCAN_RATE = 1000;

/**
 * A masscan run in flight: what it sends (ports x hosts, once), at what --rate
 * (`masscanSendPlan`'s), since when (ms), and whether masscan said it is done sending (`false`
 * until then; absent: judged by the planned send time alone).
 */
export interface MasscanRunInFlight {
  readonly size: number;
  readonly rate: number;
  readonly started: number;
  readonly sent?: boolean;
  /** Its --retries when not the agent's (a silent round's run). */
  readonly retries?: number;
}

/** When a run started at `run.rate` is done sending by plan, retries and masscan's walk past the end included (ms; its --wait for late answers follows). */
function sendEnds(run: MasscanRunInFlight, retries: number): number {
  return run.started + masscanSendPlan(run.size, Math.max(1, run.rate), run.retries ?? retries).sendMs;
}

/**
 * Whether a run still sends at `now`: until its planned send time has passed and masscan has said
 * it is done. Under CPU load masscan falls behind its --rate (in the lab, with two busy processes
 * beside the live loop, a sweep planned at 20 s ran 48 s); judged by time alone, the next
 * sweeps started at full rate beside it, four runs at 50,000/s at once.
 */
function stillSending(run: MasscanRunInFlight, retries: number, now: number): boolean {
  return run.size > 0 && (sendEnds(run, retries) > now || run.sent === false);
}

/** Packets/s of the runs in flight that are still sending at `now` (each at its fixed rate). */
export function masscanRateInUse(inFlight: Iterable<MasscanRunInFlight>, masscan: { readonly retries: number }, now: number): number {
  let used = 0;
  for (const r of inFlight)
    if (stillSending(r, masscan.retries, now)) used += masscanSendPlan(r.size, Math.max(1, r.rate), r.retries ?? masscan.retries).rate;
  return used;
}

/**
 * The rates of the runs a wave starts (`sizes`: ports x hosts each, 0 for a run that is no
 * masscan) beside the runs in flight: what --rate leaves beside the runs still sending (a run's
 * rate is fixed for its life), shared in proportion to size. Runs at once never send faster
 * together than --rate (but for the MIN_MASSCAN_RATE floor): in the lab (`--closed drop`, 2
 * cores), four runs sized by what each had left sent ~139,000 packets/s together against a
 * --rate of 50,000, and their follow-up sweeps lost open ports (3 of 51 services in one cycle).
 * The pump holds a wave back while less than a quarter of --rate is free (see `pump`).
 */
export function masscanShares(
  sizes: readonly number[],
  inFlight: Iterable<MasscanRunInFlight>,
  masscan: { readonly rate: number; readonly retries: number },
  now: number,
): number[] {
  const free = Math.max(0, masscan.rate - masscanRateInUse(inFlight, masscan, now));
  const total = sizes.reduce((a, b) => a + b, 0);
  return sizes.map((size) => Math.min(masscan.rate, Math.max(MIN_MASSCAN_RATE, Math.floor((free * size) / Math.max(1, total)))));
}

/**
 * How long a wave of masscan runs waits before it may start beside the runs in flight: 0 once at
 * least a quarter of --rate is free, else until the first of the runs still sending is done (a
 * wave gathered meanwhile then starts as one run at the rate that is free, instead of a crawl
 * beside them that overloads the link).
 */
export function masscanWaitMs(
  inFlight: Iterable<MasscanRunInFlight>,
  masscan: { readonly rate: number; readonly retries: number },
  now: number,
): number {
  if (masscanRateInUse(inFlight, masscan, now) <= masscan.rate * 0.75) return 0;
  let first = Infinity;
  for (const r of inFlight) {
    if (!stillSending(r, masscan.retries, now)) continue;
    // Past its planned end but not done by its own account: look again shortly.
    const ends = Math.max(sendEnds(r, masscan.retries), now + BEHIND_POLL_MS);
    first = Math.min(first, ends);
  }
  return first === Infinity ? 0 : Math.ceil(first - now);
}

/** How often the pump looks again at a run that sends past its planned end. */
const BEHIND_POLL_MS = 250;

/** Targets in one masscan run at most. */
const MASSCAN_MAX_TARGETS = 1024;

/**
 * Longest a wave of silent rounds (work items marked `silent`) may send, in seconds at the
 * agent's rates: the rounds of a host that answered wait at most about this long behind them.
 */
export const SILENT_WAVE_SECONDS = 30;

/**
 * The waiting items the next wave starts, and those left for later waves. Items of hosts that
 * answered (first looks, and later rounds not marked `silent`) all start at once; silent rounds
 * (a dead or firewalled address's next sweep: most of a sparse scope) start only when none of
 * those waits, and then no more of them than `capSeconds` of sending (`seconds`, at least one),
 * in the order they came; a silent round that has waited half its lease goes with the next wave
 * regardless. A sparse /24 otherwise sends one run of ~170 sweeps for minutes while the next
 * rounds of its few live hosts wait behind it.
 */
export function pickWave<M extends { item: Pick<WorkItem, 'silent' | 'issuedAt' | 'deadline'> }>(
  waiting: readonly M[],
  seconds: (m: M) => number,
  now: number,
  capSeconds = SILENT_WAVE_SECONDS,
): { wave: M[]; rest: M[] } {
  // A silent round that has waited half its lease goes with the next wave whatever else waits:
  // a steady stream of answering hosts must not hold it until its deadline leaves no time.
  const first = (m: M) => m.item.silent !== true || now >= m.item.issuedAt + (m.item.deadline - m.item.issuedAt) / 2;
  const answering = waiting.filter(first);
  if (answering.length > 0) return { wave: answering, rest: waiting.filter((m) => !first(m)) };
  const wave: M[] = [];
  let total = 0;
  let i = 0;
  for (; i < waiting.length; i++) {
    const cost = seconds(waiting[i]!);
    if (wave.length > 0 && total + cost > capSeconds) break;
    wave.push(waiting[i]!);
    total += cost;
  }
  return { wave, rest: waiting.slice(i) };
}

interface PreflightGroup<M> {
  readonly ran: Preflight;
  readonly ports: number[];
  readonly members: M[];
}

/**
 * Group waiting items into preflight runs: masscan items greedily by bounded port-set union (see
 * MASSCAN_UNION_FACTOR; identical lists, such as full sweeps, always share), connect-sweep items
 * by identical lists (the sweep probes each host's own ports, so nothing is gained by a union).
 */
export function groupForPreflight<M extends { item: Pick<WorkItem, 'ports'>; ran: Preflight }>(
  waiting: readonly M[],
  factor: number,
): PreflightGroup<M>[] {
  const out: PreflightGroup<M>[] = [];
  const exact = new Map<string, PreflightGroup<M>>();
  const masscan: M[] = [];
  for (const m of waiting) {
    if (m.ran === 'masscan') {
      masscan.push(m);
      continue;
    }
    const key = `${m.ran}:${m.item.ports.join(',')}`;
    let g = exact.get(key);
    if (!g) {
      g = { ran: m.ran, ports: [...m.item.ports], members: [] };
      exact.set(key, g);
      out.push(g);
    }
    g.members.push(m);
  }
  // Largest lists first; a list joins a group only while the group's union stays within
  // `factor` times the SHORTEST member list (every member is probed on the whole union).
  masscan.sort((a, b) => b.item.ports.length - a.item.ports.length);
  const open: Array<{ set: Set<number>; smallest: number; members: M[] }> = [];
  for (const m of masscan) {
    let placed = false;
    for (const g of open) {
      if (g.members.length >= MASSCAN_MAX_TARGETS) continue;
      const smallest = Math.min(g.smallest, m.item.ports.length);
      if (g.set.size > factor * smallest) continue;
      let added = 0;
      for (const p of m.item.ports) if (!g.set.has(p)) added++;
      if (g.set.size + added <= factor * smallest) {
        for (const p of m.item.ports) g.set.add(p);
        g.smallest = smallest;
        g.members.push(m);
        placed = true;
        break;
      }
    }
    if (!placed) open.push({ set: new Set(m.item.ports), smallest: m.item.ports.length, members: [m] });
  }
  for (const g of open) out.push({ ran: 'masscan', ports: [...g.set].sort((a, b) => a - b), members: g.members });
  return out;
}

/** nmap processes for one host's open ports at most (a host open on more shares them out). */
const MAX_NMAP_RUNS_PER_HOST = 8;

/**
 * The ports of a work item nmap -sV skips: those the coordinator found silent at the host's last
 * visit (`skipDetection`), unless nmap is the port scan itself (preflight `none`).
 */
function skippedDetection(item: WorkItem, ran: Preflight): ReadonlySet<number> {
  return ran === 'none' || item.skipDetection === undefined ? new Set() : new Set(item.skipDetection);
}

/** Split `ports` into at most `parts` groups, round-robin (each port alone when they are few). */
function splitPorts(ports: readonly number[], parts: number): number[][] {
  const n = Math.min(parts, ports.length);
  const out: number[][] = Array.from({ length: n }, () => []);
  ports.forEach((p, i) => out[i % n]!.push(p));
  return out;
}

/** A counting semaphore: at most `limit` holders at once, FIFO. */
class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly limit: number) {}
  /** Resolves once a holder could start at once. */
  async whenFree(): Promise<void> {
    while (this.active >= this.limit) await new Promise<void>((resolve) => this.freed.push(resolve));
  }
  private readonly freed: Array<() => void> = [];
  async use<T>(work: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await work();
    } finally {
      this.active--;
      this.waiting.shift()?.();
      for (const f of this.freed.splice(0)) f();
    }
  }
}

interface PreflightOutcome {
  readonly ran: Preflight;
  readonly open: ReadonlyMap<string, readonly number[]>;
  /** null: unknown (masscan does not report closed ports). */
  readonly answered: ReadonlySet<string> | null;
  readonly durationMs: number;
  /** Ports per target the preflight did not decide before its deadline (unknown, not closed). */
  readonly unprobed?: ReadonlyMap<string, readonly number[]>;
  /** Set when no preflight could observe the ports (all of them are unknown then). */
  readonly error?: string;
  /** masscan runs: the rate control's generation the run was sent at. */
  readonly generation?: number;
  /** masscan runs: ports a sight check found open on hosts masscan saw nothing of (agent/masscan-blind.ts). */
  readonly sighted?: ReadonlyMap<string, readonly number[]>;
}

/**
 * The agent's scanning pipeline, shared by every work item it holds: a preflight per group of
 * items leased together (identical port sets share a masscan or connect-sweep run; masscan runs
 * one at a time, since each sends at the agent's whole --rate), then nmap on each host's own
 * open ports in a process of its own, at most `nmapParallel` at once across all groups, and each
 * host's result handed to `onResult` the moment that host is done: one slow host never holds
 * another's result back.
 *
 * Unknown is not closed: a host whose nmap timed out or failed keeps the preflight's open ports
 * (without service detail) and is marked incomplete; ports no probe observed are reported in
 * `unknownPorts`, never as closed.
 */
export class ScanPipeline {
  private readonly nmapSlots: Semaphore;
  private readonly masscanSlot = new Semaphore(MASSCAN_PARALLEL);
  private readonly connectSlots = new Semaphore(CONNECT_PARALLEL);
  /** Ports per second one connect sweep got through, smoothed over the sweeps so far (0: none yet). */
  private sweepRate = 0;
  private readonly refusedScriptSets = new Set<string>();
  /**
   * Round trips measured by every connect sweep of this pipeline: a visit's next round (the rest
   * of the port space) rarely holds a port that answers, so a sweep of its own would wait the
   * longest timeout on every port of a host whose first look measured it in under a millisecond.
   */
  private readonly probeTimer: ProbeTimer;
  /** masscan's rate, lowered when runs miss ports known open (agent/masscan-rate.ts). */
  private readonly rateControl: MasscanRateControl;
  /** Hosts masscan saw nothing of while their known ports answered a connect (agent/masscan-blind.ts). */
  private readonly blindHosts = new MasscanBlindHosts();

  constructor(private readonly config: ScanConfig) {
    this.nmapSlots = new Semaphore(Math.max(1, config.nmapParallel ?? DETECTION_DEFAULTS.parallel));
    this.probeTimer = probeTimerFor(config.connect);
    this.rateControl = new MasscanRateControl(config.masscan.rate);
    // Every scanner in flight (nmap runs by the dozen, masscan, connect sweeps) listens on the one
    // cancel signal until it ends; past Node's default of 10 listeners the agent would print a
    // MaxListenersExceededWarning ("possible memory leak") on every busy batch, which it is not.
    if (config.signal) setMaxListeners(0, config.signal);
  }

  /** Scan `items`; resolves once every item's outcome was handed to `onResult`. */
  async scan(items: readonly WorkItem[], onResult: (outcome: HostOutcome) => void | Promise<void>): Promise<void> {
    const tasks: Promise<void>[] = [];
    // Every item is checked alone before anything runs (agent/work-item.ts): schema, ranges,
    // canonical address inside --allow. A bad item is refused; the rest proceed.
    for (const raw of items) {
      const checked = checkWorkItem(raw, this.config.allow);
      if (!('item' in checked)) {
        tasks.push(Promise.resolve(onResult({ kind: 'refused', item: raw, reason: checked.reason })));
        continue;
      }
      const item = checked.item;
      tasks.push(
        (async () => {
          const startedAt = Date.now();
          // The ports last known open are most likely open again: nmap starts on them early,
          // beside the preflight's wait, instead of after it (a silent one costs its time-out anyway).
          const ran = this.preflightFor(item);
          const skip = skippedDetection(item, ran);
          const verify =
            ran === 'none' || !this.wantsNmap(item, ran) ? [] : (item.verify ?? []).filter((p) => item.ports.includes(p) && !skip.has(p));
          // ... once the preflight is under way (a masscan run: once it is done sending): started
          // first, the -sV processes' start-up CPU would hold back the preflight itself (the
          // gathering of its run, the route lookup, masscan's start and its sending), and with it
          // every host of the run.
          let preflightStarted!: () => void;
          const early =
            verify.length > 0
              ? new Promise<void>((resolve) => (preflightStarted = resolve)).then(() => this.detect(item, verify, false))
              : undefined;
          // A rejected early run must not go unobserved while the preflight runs.
          early?.catch(() => {});
          const pre = await this.preflightOf(item, () => preflightStarted?.());
          if (this.config.signal?.aborted) return;
          let submission = await this.finishHost(item, pre, startedAt, early);
          if (submission && this.config.screenshots && !this.config.signal?.aborted) {
            const scanned = submission;
            submission = await this.config.screenshots.attach(scanned, item.deadline).catch((error: unknown) => {
              this.config.log(`agent: ${item.ip}: screenshots failed (${(error as Error).message}); submitting the scan without them`);
              return scanned;
            });
          }
          if (submission) await onResult({ kind: 'result', item, submission: withoutTunnels(submission) });
        })(),
      );
    }
    await Promise.all(tasks);
  }

  private readonly waiting: Array<{
    item: WorkItem;
    ran: Preflight;
    /** Called once the item's preflight run is under way (a connect sweep: started; masscan: done sending). */
    started: () => void;
    resolve: (pre: PreflightOutcome) => void;
    reject: (error: unknown) => void;
  }> = [];
  private pumping = false;

  /** The preflight of an item: the configured choice, but the connect sweep for a host masscan cannot see. */
  private preflightFor(item: WorkItem): Preflight {
    const ran = choosePreflight(item.scan.preflight, this.config);
    return ran === 'masscan' && this.blindHosts.has(item.ip, Date.now()) ? 'connect' : ran;
  }

  /** The packets/s masscan runs get now: --rate, or less while runs have been missing ports known open. */
  get masscanRate(): number {
    return this.rateControl.rate;
  }

  /** The masscan settings for the next runs: --rate as the rate control has it. */
  private get masscan(): ScanConfig['masscan'] {
    return { ...this.config.masscan, rate: this.rateControl.rate };
  }

  /**
   * Ports per second the connect sweeps get through together: measured once a sweep has ended,
   * else the worst case (every probe waits out its time-out on every try).
   */
  get connectRate(): number {
    const c = this.config.connect;
    const worst = c.concurrency / (c.timeoutMs / 1000) / (c.retries + 1);
    return (this.sweepRate > 0 ? this.sweepRate : worst) * CONNECT_PARALLEL;
  }

  private noteSweep(ports: number, ms: number): void {
    // Short sweeps say little about the rate (start-up, a few slow answers).
    if (ports < 1000 || ms < 500) return;
    const rate = ports / (ms / 1000);
    this.sweepRate = this.sweepRate === 0 ? rate : 0.7 * this.sweepRate + 0.3 * rate;
  }

  /**
   * The preflight of one item. Items wait in a queue and are preflighted together with whatever
   * else is waiting when the previous wave ends: a masscan run costs seconds of start-up and
   * wait whatever its size, so one run per item would make every host wait for all the others.
   */
  private preflightOf(item: WorkItem, started: () => void): Promise<PreflightOutcome> {
    const ran = this.preflightFor(item);
    if (ran === 'none') {
      started();
      return Promise.resolve({ ran: 'none', open: new Map([[item.ip, [...item.ports]]]), answered: null, durationMs: 0 });
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({ item, ran, started, resolve, reject });
      void this.pump();
    });
  }

  /**
   * Form preflight runs from what is waiting whenever a masscan slot is free, and start them.
   * Items that arrive while every slot is busy wait and share the next runs.
   */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.waiting.length > 0) {
        await this.masscanSlot.whenFree();
        // Results come back one host at a time, and so does the work that follows them: gather
        // a moment, so a run carries many hosts instead of one (each run costs seconds of
        // masscan start-up and --wait whatever its size).
        if (this.waiting.length < GATHER_ITEMS) await new Promise((resolve) => setTimeout(resolve, GATHER_MS));
        // A masscan wave waits while the runs in flight use most of --rate (masscanShares). Silent
        // connect sweeps start only while a connect slot is free: started together, a backlog of
        // them would queue on the slots (first come, first served) ahead of the rounds of hosts
        // that answer meanwhile (pickWave); this way such a round takes the next slot that frees.
        for (;;) {
          let wait = this.waiting.some((w) => w.ran === 'masscan') ? masscanWaitMs(this.masscanRuns, this.masscan, Date.now()) : 0;
          if (wait <= 0 && this.silentConnectRuns >= CONNECT_PARALLEL && this.waiting.every((w) => w.item.silent === true)) wait = 200;
          if (wait <= 0 || this.config.signal?.aborted) break;
          await new Promise((resolve) => setTimeout(resolve, Math.min(wait, 5000)));
        }
        const { wave, rest } = pickWave(this.waiting, (w) => this.sendingSeconds(w), Date.now());
        this.waiting.splice(0, this.waiting.length, ...rest);
        const groups = groupForPreflight(wave, MASSCAN_UNION_FACTOR);
        // The wave's runs share what --rate leaves beside the runs still sending, by size, so a
        // sweep does not hold the short lists of its wave behind it (nor they the sweep).
        const sizes = groups.map((g) => (g.ran === 'masscan' ? g.ports.length * g.members.length : 0));
        const rates = masscanShares(sizes, this.masscanRuns, this.masscan, Date.now());
        groups.forEach((group, i) => void this.runGroup(group, rates[i]!, sizes[i]!));
        // Let the runs take their slots before looking at the queue again.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Seconds an item's preflight sends at the agent's rates (masscan's retries included). */
  private sendingSeconds(w: (typeof this.waiting)[number]): number {
    const ports = w.item.ports.length;
    if (w.ran === 'masscan') return (ports * (preflightRetries(w.item, this.config) + 1)) / Math.max(1, this.masscanRate);
    if (w.ran === 'connect') return ports / Math.max(1, this.connectRate);
    return 0;
  }

  /** The masscan runs in flight (for the rate shares of the next ones). */
  private readonly masscanRuns = new Set<MasscanRunInFlight>();

  /** Runs of silent connect sweeps in flight (at most the connect slots; see pump). */
  private silentConnectRuns = 0;

  private async runGroup(group: PreflightGroup<(typeof this.waiting)[number]>, rate: number, size: number): Promise<void> {
    // A run of silent rounds only (a wave of them, or their own group) sends each probe
    // silentRetries + 1 times; a run with any other round keeps the agent's retries.
    const silent = group.members.every((m) => m.item.silent === true);
    const retries = silent ? preflightRetries({ silent }, this.config) : undefined;
    // The run's own --rate: a run smaller than retries x rate is sent slower (masscanSendPlan), and
    // what it does not use is free for the next wave.
    const run: { size: number; rate: number; started: number; sent?: boolean; retries?: number } = {
      size,
      rate: masscanSendPlan(size, Math.min(rate, this.masscanRate), retries ?? this.config.masscan.retries).rate,
      started: Date.now(),
      sent: false,
      ...(retries !== undefined ? { retries } : {}),
    };
    if (size > 0) this.masscanRuns.add(run);
    const silentConnect = group.ran === 'connect' && silent;
    if (silentConnect) this.silentConnectRuns++;
    try {
      const pre = await this.preflight(
        group.ran,
        group.ports,
        [...new Set(group.members.map((m) => m.item.ip))],
        preflightDeadline(
          group.members.map((m) => m.item),
          Date.now(),
        ),
        Math.min(rate, this.masscanRate),
        () => {
          if (group.ran !== 'masscan') for (const m of group.members) m.started();
        },
        () => {
          // The -sV runs of the ports last known open start once masscan is done sending: started
          // beside its sending (dozens of nmap processes starting up at once), they made it miss
          // open ports in the lab, 4 and 6 of 38 in two of three runs of a 32-host first look, 0
          // in four runs this way; a port masscan misses that no one knew is lost for a cycle.
          if (group.ran === 'masscan') for (const m of group.members) m.started();
          run.sent = true;
          // The rate it held is free: a wave held back for it may go now.
          if (this.waiting.length > 0) void this.pump();
        },
        retries,
      );
      const unseen = pre.ran === 'masscan' ? group.members.filter((m) => this.wantsSightCheck(m.item, pre)) : [];
      for (const m of group.members) if (!unseen.includes(m)) m.resolve(pre);
      if (unseen.length > 0) {
        const sighted = await this.sightCheck(
          unseen.map((m) => m.item),
          pre,
        );
        for (const m of unseen) m.resolve(sighted.size > 0 ? { ...pre, sighted } : pre);
      }
    } catch (error) {
      for (const m of group.members) m.reject(error);
    } finally {
      this.masscanRuns.delete(run);
      if (silentConnect) this.silentConnectRuns--;
      if (this.waiting.length > 0) void this.pump();
    }
  }

  /** nmap's ports by open frequency for sight checks (undefined: no table here; loaded once). */
  private sightOrder: ArrayLike<number> | undefined | null = null;

  /**
   * Whether a host needs a sight check after this masscan run: the first round of a visit, nothing
   * open at the last visit to judge masscan by, and masscan saw none of its ports.
   */
  private wantsSightCheck(item: WorkItem, pre: PreflightOutcome): boolean {
    return (
      (this.config.masscanSightCheck ?? MASSCAN_SIGHT_CHECK_PORTS) > 0 &&
      (item.round ?? 0) === 0 &&
      item.silent !== true &&
      (item.verify ?? []).length === 0 &&
      !(pre.open.get(item.ip) ?? []).some((p) => item.ports.includes(p))
    );
  }

  /**
   * Sight checks (agent/masscan-blind.ts) of hosts masscan saw nothing of: a connect to each one's
   * most likely ports among those masscan probed, hosts with the same ports in one sweep. The
   * ports found open, per host; a sweep that fails is logged and counts as no evidence.
   */
  private async sightCheck(items: readonly WorkItem[], pre: PreflightOutcome): Promise<Map<string, number[]>> {
    if (this.sightOrder === null) {
      try {
        this.sightOrder = loadNmapServices().byFrequency;
      } catch {
        this.sightOrder = undefined;
      }
    }
    const count = this.config.masscanSightCheck ?? MASSCAN_SIGHT_CHECK_PORTS;
    const byPorts = new Map<string, { ports: number[]; items: WorkItem[] }>();
    for (const item of items) {
      const unprobed = new Set(pre.unprobed?.get(item.ip) ?? []);
      const probed = unprobed.size === 0 ? item.ports : item.ports.filter((p) => !unprobed.has(p));
      const ports = sightCheckPorts(probed, count, this.sightOrder, item.likely).sort((a, b) => a - b);
      if (ports.length === 0) continue;
      const key = ports.join(',');
      const entry = byPorts.get(key) ?? { ports, items: [] };
      entry.items.push(item);
      byPorts.set(key, entry);
    }
    const found = new Map<string, number[]>();
    await Promise.all(
      [...byPorts.values()].map(async ({ ports, items: checked }) => {
        const targets = [...new Set(checked.map((i) => i.ip))];
        try {
          const run = await this.connectSlots.use(() =>
            runConnectSweep({
              targets,
              ports,
              allow: this.config.allow,
              ...this.config.connect,
              // One try: an address that is down (most of a sparse scope) costs one time-out, not
              // two; a hidden host whose SYN was lost is checked again at its next visit.
              retries: 0,
              timer: this.probeTimer,
              deadline: preflightDeadline(checked, Date.now()),
              ...(this.config.signal ? { signal: this.config.signal } : {}),
            }),
          );
          for (const [ip, open] of run.open) found.set(ip, open);
        } catch (error) {
          if (!isPortbanditError(error) || this.config.signal?.aborted) throw error;
          this.config.log(
            `agent: the sight check of ${targets.length} host(s) masscan saw nothing of failed (${error.message}); masscan's view stands`,
          );
        }
      }),
    );
    return found;
  }

  private async preflight(
    ran: Preflight,
    ports: readonly number[],
    targets: string[],
    deadline: number,
    rate = this.masscanRate,
    onStarted: () => void = () => {},
    onSent: () => void = () => {},
    retries?: number,
  ): Promise<PreflightOutcome> {
    // `retries` (a silent round's run) replaces the agent's for masscan and the connect sweep alike.
    const config =
      retries === undefined
        ? this.config
        : { ...this.config, masscan: { ...this.config.masscan, retries }, connect: { ...this.config.connect, retries } };
    const started = performance.now();
    const signal = config.signal ? { signal: config.signal } : {};
    if (ran === 'masscan') {
      try {
        // Bounded by the leases' deadline, as the connect sweep is: a run that could not end in
        // time probes the ports that fit (from the start of the list) and leaves the rest unknown;
        // a result past its lease would be refused, and its host handed out again meanwhile.
        // The rate control's generation when the run starts: its evidence counts for this rate only.
        const generation = this.rateControl.generation;
        const r = await this.masscanSlot.use(async () => {
          const fit = masscanPortsThatFit(ports.length, targets.length, rate, config.masscan, deadline, Date.now());
          const probed = ports.slice(0, fit);
          if (fit === 0) onStarted();
          try {
            const run =
              fit > 0
                ? await runMasscan({
                    targets,
                    ports: probed,
                    allow: config.allow,
                    ...config.masscan,
                    rate,
                    onStart: onStarted,
                    onSent,
                    ...signal,
                  })
                : { open: new Map<string, number[]>(), durationMs: 0 };
            return { ...run, left: ports.slice(fit) };
          } finally {
            // Nothing sent, or masscan failed (the connect sweep may follow): the rate is free.
            onSent();
          }
        });
        if (r.left.length > 0) {
          config.log(
            `agent: masscan at ${rate} packets/s cannot probe ${ports.length} port(s) of ${targets.length} host(s) before the lease deadline: ${r.left.length} port(s) per host left unknown`,
          );
        }
        return {
          ran: 'masscan',
          open: r.open,
          answered: null,
          durationMs: r.durationMs,
          generation,
          ...(r.left.length > 0 ? { unprobed: new Map(targets.map((t) => [t, r.left])) } : {}),
        };
      } catch (error) {
        if (!isPortbanditError(error) || config.signal?.aborted) throw error;
        config.log(`agent: masscan preflight failed (${error.message}); using the connect sweep`);
      }
    }
    try {
      // Bounded by the leases' deadline (also after a failed masscan run took its time): against
      // dropped probes every port costs the whole time-out, and what is left is unknown.
      const r = await this.connectSlots.use(async () => {
        onStarted();
        const swept = performance.now();
        const run = await runConnectSweep({
          targets,
          ports,
          allow: config.allow,
          ...config.connect,
          timer: this.probeTimer,
          ...(deadline < Infinity ? { deadline } : {}),
          ...signal,
        });
        const decided = targets.length * ports.length - [...run.unprobed.values()].reduce((n, p) => n + p.length, 0);
        this.noteSweep(decided, performance.now() - swept);
        return run;
      });
      if (r.unprobed.size > 0) {
        const left = [...r.unprobed.values()].reduce((n, p) => n + p.length, 0);
        config.log(
          `agent: connect sweep reached its deadline with ${left} of ${targets.length * ports.length} probe(s) not sent; those ports are reported unknown`,
        );
      }
      return {
        ran: 'connect',
        open: r.open,
        answered: r.answered,
        durationMs: performance.now() - started,
        ...(r.unprobed.size > 0 ? { unprobed: r.unprobed } : {}),
      };
    } catch (error) {
      if (!isPortbanditError(error) || config.signal?.aborted) throw error;
      config.log(`agent: connect sweep failed on ${targets.join(', ')} (${error.message}); their ports are reported unknown`);
      return {
        ran: 'connect',
        open: new Map(),
        answered: null,
        durationMs: performance.now() - started,
        error: `preflight failed: ${error.message}`,
      };
    }
  }

  /** nmap on one host's open ports (if any), then its result. Undefined when aborted. */
  /** The NSE scripts of an item this agent runs (the others are logged once and skipped). */
  private scriptsOf(item: WorkItem): string[] {
    const refused = item.scan.scripts.filter((s) => !this.config.scriptsAllow.has(s));
    if (refused.length > 0 && !this.refusedScriptSets.has(refused.join(','))) {
      this.refusedScriptSets.add(refused.join(','));
      this.config.log(`agent: the policy asks for NSE scripts not on --scripts-allow, skipped: ${refused.join(', ')} (logged once)`);
    }
    return item.scan.scripts.filter((s) => this.config.scriptsAllow.has(s));
  }

  /** Whether nmap adds anything to the preflight for this item (and can run). */
  private wantsNmap(item: WorkItem, ran: Preflight): boolean {
    if (!this.config.tools.nmap) return false;
    return ran === 'none' || item.scan.versionDetection || item.scan.scripts.some((s) => this.config.scriptsAllow.has(s));
  }

  /**
   * nmap -sV on `ports` of one host: one run when nmap is the port scan (preflight none),
   * otherwise a process per port (at most MAX_NMAP_RUNS_PER_HOST per host), so a silent service
   * costs its own time-out and never the detail of the host's other ports.
   */
  private async detect(item: WorkItem, ports: readonly number[], whole: boolean): Promise<Detection> {
    const config = this.config;
    const scripts = this.scriptsOf(item);
    const parts = whole ? [[...ports]] : splitPorts(ports, MAX_NMAP_RUNS_PER_HOST);
    const queued = performance.now();
    let waitMs = 0;
    const outcomes = await Promise.all(
      parts.map((part) =>
        this.nmapSlots.use(async () => {
          waitMs = Math.max(waitMs, performance.now() - queued);
          const started = performance.now();
          try {
            const r = await runNmap({
              targets: [item.ip],
              ports: part,
              allow: config.allow,
              versionDetection: item.scan.versionDetection,
              scripts,
              scriptsAllow: config.scriptsAllow,
              hostTimeoutSeconds: item.scan.hostTimeoutSeconds,
              scriptTimeoutSeconds: item.scan.scriptTimeoutSeconds,
              // Ports found open (or last known open) are looked at through kernel connects: nmap's
              // raw SYNs (its default as root) are dropped where masscan's are (a firewall that
              // drops scanners' SYNs), and a connect scan of a few ports costs no more. nmap as the
              // port scan itself (no preflight) keeps its SYN scan.
              connectScan: !whole,
              ...(item.scan.versionIntensity !== undefined ? { versionIntensity: item.scan.versionIntensity } : {}),
              ...(config.nmapTiming ? { timing: config.nmapTiming } : {}),
              ...(config.signal ? { signal: config.signal } : {}),
            });
            const host = r.run.hosts.find((h) => h.ip === item.ip);
            return {
              part,
              ms: performance.now() - started,
              ...(host && !host.timedOut ? { ports: host.ports } : { timedOut: true as const }),
            };
          } catch (error) {
            if (!isPortbanditError(error) || config.signal?.aborted) throw error;
            return { part, ms: performance.now() - started, error: error.message };
          }
        }),
      ),
    );
    const own = new Set(item.ports);
    const detected = new Map<number, PortResult>();
    const timedOut: number[] = [];
    const failed: string[] = [];
    for (const o of outcomes) {
      if ('ports' in o && o.ports) {
        for (const p of o.ports) if (own.has(p.port)) detected.set(p.port, p);
      } else if ('error' in o && o.error !== undefined) {
        failed.push(o.error.slice(0, 200));
      } else timedOut.push(...o.part);
    }
    const unresolved = outcomes.filter((o) => !('ports' in o && o.ports)).flatMap((o) => o.part);
    return { detected, timedOut, failed, unresolved, ms: Math.max(0, ...outcomes.map((o) => o.ms)), waitMs };
  }

  /**
   * How masscan did on this host: of the ports open at its last visit that masscan probed, those
   * open now (seen by masscan, nmap or the connect re-check), those of them masscan did not see,
   * and how many of the host's ports it saw at all.
   */
  private masscanEvidence(
    item: WorkItem,
    pre: PreflightOutcome,
    early: Detection | undefined,
    confirmed: readonly number[],
    sighted: readonly number[],
  ): BlindEvidence {
    const saw = new Set(pre.open.get(item.ip) ?? []);
    const unprobed = new Set(pre.unprobed?.get(item.ip) ?? []);
    const own = new Set(item.ports);
    let known = 0;
    let missed = 0;
    for (const p of item.verify ?? []) {
      if (!own.has(p) || unprobed.has(p)) continue;
      const seen = saw.has(p);
      if (!seen && early?.detected.get(p)?.state !== 'open' && !confirmed.includes(p)) continue;
      known++;
      if (!seen) missed++;
    }
    // A sight check ran only where masscan saw nothing: each port it found open is one missed.
    known += sighted.length;
    missed += sighted.length;
    return { known, missed, saw: item.ports.filter((p) => saw.has(p)).length };
  }

  /** Tell the rate control how a run sent at `generation` did on one host, and log a change of rate. */
  private judgeRate(generation: number, { known, missed }: BlindEvidence): void {
    const change = this.rateControl.observe(generation, known, missed);
    if (change === null) return;
    this.config.log(
      change.notTheRate
        ? `agent: masscan missed ${change.missed} of ${change.known} port(s) known open and confirmed at ${change.from} packets/s, about as many as at ${change.to} (${change.notTheRate.missed} of ${change.notTheRate.known}) before it was halved: not lost to the rate; back to ${change.to} packets/s, and only misses twice as frequent lower it from now on`
        : change.to < change.from
          ? `agent: masscan missed ${change.missed} of ${change.known} port(s) known open and confirmed (lost packets): its rate goes from ${change.from} to ${change.to} packets/s`
          : `agent: masscan missed none of ${change.known} port(s) known open: its rate goes from ${change.from} to ${change.to} packets/s (--rate ${this.rateControl.max})`,
    );
  }

  /**
   * One host after its preflight: the ports last known open are confirmed, nmap runs on the open
   * ports (those last known open were started with the preflight already), and the result says
   * which ports are open, which unknown, and why it is partial.
   */
  private async finishHost(
    item: WorkItem,
    pre: PreflightOutcome,
    startedAt: number,
    early: Promise<Detection> | undefined,
  ): Promise<ResultSubmission | undefined> {
    const config = this.config;
    const own = new Set(item.ports);
    const base = {
      leaseId: item.leaseId,
      ip: item.ip,
      startedAt,
      preflight: pre.ran,
      agentVersion: VERSION,
    };
    const earlyResult = early ? await early : undefined;
    if (pre.error !== undefined) {
      const finishedAt = Date.now();
      // Nothing observed these ports, except what nmap (started early) did.
      const seen = [...(earlyResult?.detected.values() ?? [])];
      const unknown = item.ports.filter((p) => !earlyResult?.detected.has(p));
      return {
        ...base,
        status: 'up',
        finishedAt,
        ports: seen,
        ...(unknown.length > 0 ? { unknownPorts: PortRanges.fromPorts(unknown).toString() } : {}),
        incomplete: pre.error,
        timings: { preflight: Math.round(pre.durationMs), total: finishedAt - startedAt },
      };
    }
    const open = (pre.open.get(item.ip) ?? []).filter((p) => own.has(p));
    const seen = new Set(open);
    const skip = skippedDetection(item, pre.ran);
    // A sight check's finds (masscan saw nothing of the host): open, by a kernel connect.
    const sighted = (pre.sighted?.get(item.ip) ?? []).filter((p) => own.has(p) && !seen.has(p));
    for (const p of sighted) {
      seen.add(p);
      open.push(p);
    }
    // nmap already answered for these (a SYN probe of its own, then -sV): open or not, it decides.
    for (const [port, r] of earlyResult?.detected ?? []) {
      if (r.state !== 'open' || seen.has(port)) continue;
      seen.add(port);
      open.push(port);
    }
    // Ports last known open that neither the preflight nor nmap saw: a lost packet is not a
    // closed service. Two connect attempts each decide (open, refused, or silent twice). nmap
    // decided only where it got an answer (a refusal: closed): its SYN probes are raw packets like
    // masscan's, and what drops one (a loss, a firewall that drops scanners' SYNs) drops the other.
    let confirmed: readonly number[] = [];
    const doubt =
      pre.ran === 'none'
        ? []
        : (item.verify ?? []).filter((p) => own.has(p) && !seen.has(p) && earlyResult?.detected.get(p)?.state !== 'closed');
    if (doubt.length > 0) {
      const recheck = await this.connectSlots.use(() =>
        runConnectSweep({
          targets: [item.ip],
          ports: doubt,
          allow: config.allow,
          concurrency: 64,
          // A fixed wait: these ports were open last time, so silence must be silence.
          timeoutMs: VERIFY_TIMEOUT_MS,
          minTimeoutMs: VERIFY_TIMEOUT_MS,
          retries: 1,
          ...(config.signal ? { signal: config.signal } : {}),
        }),
      );
      confirmed = recheck.open.get(item.ip) ?? [];
      if (confirmed.length > 0) {
        config.log(`agent: ${item.ip}: the ${pre.ran} preflight missed open port(s) ${confirmed.join(', ')} (confirmed by connect)`);
        open.push(...confirmed);
      }
    }
    const rechecked = new Set(doubt);
    // Ports nothing has decided yet: not seen open, not re-checked, not answered by nmap.
    const undecidedYet = (p: number): boolean => !seen.has(p) && !rechecked.has(p) && !earlyResult?.detected.has(p);
    // masscan saw nothing of this host, yet its ports known open answer a connect: its silence on
    // the other ports is no observation (agent/masscan-blind.ts). They go to the connect sweep now,
    // and the host's next preflights too. Its misses still count for the rate control: lost
    // packets can leave a host with a port or two unseen just as a firewall does, and leaving
    // those out would hide the losses from it (see masscan-rate.ts).
    let swept: { outcome: PreflightOutcome; ports: number[] } | undefined;
    const evidence = pre.generation !== undefined ? this.masscanEvidence(item, pre, earlyResult, confirmed, sighted) : undefined;
    if (pre.generation !== undefined && evidence !== undefined) this.judgeRate(pre.generation, evidence);
    if (evidence !== undefined && masscanWasBlind(evidence)) {
      this.blindHosts.mark(item.ip, Date.now());
      const rest = item.ports.filter(undecidedYet);
      config.log(
        `agent: ${item.ip}: masscan saw ${sighted.length > 0 ? `nothing of the host, yet a sight check's connect found port(s) ${sighted.join(', ')} open` : 'none of its port(s) known open that answer a connect'} (a firewall that drops masscan's probes, or lost packets): ` +
          `${rest.length} more port(s) of this round go to the connect sweep, and so does this host's preflight for ${MASSCAN_BLIND_MS / 60_000} min`,
      );
      if (rest.length > 0) {
        // The sweep starts with a port found open (the host's one answer, else its estimate would
        // be the longest timeout on every port it drops, and it has no port for timing probes).
        const anchor = open[0];
        const ports = anchor === undefined ? rest : [anchor, ...rest];
        const outcome = await this.preflight('connect', ports, [item.ip], preflightDeadline([item], Date.now()));
        swept = { outcome, ports: rest };
        open.push(...(outcome.open.get(item.ip) ?? []).filter((p) => p !== anchor));
      }
    }
    open.sort((a, b) => a - b);
    const host: Record<string, unknown> = {};
    const pseudo = pre.ran !== 'none' && open.length > config.pseudoServiceThreshold;
    if (pseudo) {
      host.pseudoServices = true;
      host.preflightOpen = open.length;
    }
    // Ports the preflight never decided (its deadline came first) and nothing else looked at:
    // unknown, not closed (and a host silent on the rest is still reported down for those). Where
    // the connect sweep took over from masscan: what it did not reach, or all it was given when it failed.
    const ran: Preflight = swept ? 'connect' : pre.ran;
    const undecided = !swept
      ? (pre.unprobed?.get(item.ip) ?? [])
      : swept.outcome.error !== undefined
        ? swept.ports
        : (swept.outcome.unprobed?.get(item.ip) ?? []);
    const unprobed = undecided.filter((p) => own.has(p) && undecidedYet(p));
    const notes: string[] = [];
    if (swept?.outcome.error !== undefined)
      notes.push(`after masscan saw nothing of the host, the connect sweep failed: ${swept.outcome.error}`);
    else if (unprobed.length > 0)
      notes.push(
        `the ${ran} preflight reached the lease deadline with ${unprobed.length} of ${item.ports.length} port(s) not probed (unknown, not closed)`,
      );
    // Down: no answer on any port probed — a host the deadline left wholly unprobed is unknown.
    const down = pre.answered !== null && !pre.answered.has(item.ip) && open.length === 0 && unprobed.length < own.size;
    const preflightPorts: PortResult[] = pre.ran === 'none' ? [] : open.map((port) => ({ port, protocol: 'tcp', state: 'open' }));
    let ports: PortResult[] = preflightPorts;
    let unknownPorts: string | undefined = unprobed.length > 0 ? PortRanges.fromPorts(unprobed).toString() : undefined;
    let nmapMs = earlyResult?.ms ?? 0;
    let waitMs = earlyResult?.waitMs ?? 0;
    let timedOutPorts: readonly number[] = [];
    const nmapAdds = pre.ran === 'none' || item.scan.versionDetection || item.scan.scripts.some((x) => config.scriptsAllow.has(x));
    if (!down && !pseudo && open.length > 0 && nmapAdds) {
      if (!config.tools.nmap) host.serviceDetection = 'unavailable (nmap not installed)';
      else {
        // Open ports nmap has not looked at yet (those started early are done or given up on).
        // ... and those silent at the last visit, which the coordinator said to skip.
        const early = new Set(earlyResult ? [...earlyResult.detected.keys(), ...earlyResult.unresolved] : []);
        const rest = open.filter((p) => !early.has(p) && !skip.has(p));
        const late = rest.length > 0 ? await this.detect(item, rest, pre.ran === 'none') : undefined;
        nmapMs = Math.max(nmapMs, late?.ms ?? 0);
        waitMs = Math.max(waitMs, late?.waitMs ?? 0);
        const detected = new Map([...(earlyResult?.detected ?? []), ...(late?.detected ?? [])]);
        const timedOut = [...(earlyResult?.timedOut ?? []), ...(late?.timedOut ?? [])]
          .filter((p) => seen.has(p) || open.includes(p))
          .sort((a, b) => a - b);
        const failed = [...(earlyResult?.failed ?? []), ...(late?.failed ?? [])];
        timedOutPorts = timedOut;
        if (timedOut.length > 0)
          notes.push(`nmap gave up on port(s) ${timedOut.join(', ')} at the ${item.scan.hostTimeoutSeconds} s timeout`);
        if (failed.length > 0) notes.push(`nmap failed: ${[...new Set(failed)].join('; ')}`);
        if (failed.length > 0)
          config.log(`agent: ${item.ip}: ${notes.join('; ')}; reporting the preflight's open ports without service detail`);
        if (pre.ran === 'none') {
          ports = [...detected.values()];
          // nmap was the port scan: what it did not finish is unknown, not closed.
          if (notes.length > 0) unknownPorts = PortRanges.fromPorts(item.ports).toString();
        } else {
          // Open per the preflight (or nmap, or the connect check); nmap adds the detail where it
          // finished. A port nmap found closed after the preflight saw it open is reported closed;
          // one whose probes nmap got no answer to (filtered) stays open without detail: no answer
          // is no observation.
          const openPorts = new Set(open);
          const unanswered = [...detected.values()]
            .filter((p) => openPorts.has(p.port) && p.state !== 'open' && p.state !== 'closed')
            .sort((a, b) => a.port - b.port);
          if (unanswered.length > 0)
            notes.push(
              `nmap got no answer on port(s) ${unanswered.map((p) => p.port).join(', ')} (${[...new Set(unanswered.map((p) => p.state))].join(', ')}) that the ${pre.ran} preflight${confirmed.length > 0 ? ' or a connect' : ''} found open: reported open without service detail`,
            );
          const silent = new Set(unanswered.map((p) => p.port));
          ports = [
            ...[...detected.values()].filter((p) => !silent.has(p.port) && (openPorts.has(p.port) || p.state === 'open')),
            ...preflightPorts.filter((p) => !detected.has(p.port) || silent.has(p.port)),
          ].sort((a, b) => a.port - b.port);
        }
      }
    }
    // Open ports with no service detail because -sV got no answer (now, or at the last visit:
    // skipped) are marked `silent`, for a coordinator that reads it (its item carried skipDetection).
    if (item.skipDetection !== undefined && !down && !pseudo && pre.ran !== 'none') {
      const silent = new Set([...timedOutPorts, ...skip]);
      ports = ports.map((p) => (p.state === 'open' && silent.has(p.port) && p.service === undefined ? { ...p, silent: true as const } : p));
    }
    if (config.signal?.aborted) return undefined;
    const incomplete = notes.length > 0 ? notes.join('; ') : undefined;
    const finishedAt = Date.now();
    return {
      ...base,
      // The preflight whose observations the result holds: the connect sweep, where it took over.
      preflight: ran,
      status: down ? 'down' : 'up',
      finishedAt,
      ports: down ? [] : ports,
      ...(unknownPorts !== undefined ? { unknownPorts } : {}),
      ...(incomplete !== undefined ? { incomplete } : {}),
      timings: {
        preflight: Math.round(pre.durationMs + (swept?.outcome.durationMs ?? 0)),
        nmapWait: Math.round(waitMs),
        nmap: Math.round(nmapMs),
        total: finishedAt - startedAt,
      },
      ...(Object.keys(host).length > 0 ? { host } : {}),
    };
  }
}

/** What nmap said of some ports of one host. */
interface Detection {
  /** Ports nmap reported on (any state), with service detail where -sV finished. */
  readonly detected: Map<number, PortResult>;
  /** Ports whose nmap run hit the time-out. */
  readonly timedOut: number[];
  /** Error messages of failed runs. */
  readonly failed: string[];
  /** Ports nmap said nothing about (timed out or failed). */
  readonly unresolved: number[];
  readonly ms: number;
  readonly waitMs: number;
}

/**
 * Scan a batch of work items and collect every outcome (the agent streams them instead; tests
 * and the benchmark use this): refuses targets outside --allow, preflights, then nmap per host.
 */
export async function scanBatch(items: readonly WorkItem[], config: ScanConfig): Promise<BatchOutcome> {
  const submissions: ResultSubmission[] = [];
  const refused: RefusedItem[] = [];
  await new ScanPipeline(config).scan(items, (o) => {
    if (o.kind === 'refused') refused.push({ item: o.item, reason: o.reason });
    else submissions.push(o.submission);
  });
  return { submissions, refused };
}
