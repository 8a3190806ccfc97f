import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import pMap from 'p-map';
import { PortbanditError } from '../core/index.js';
import { generateObservations } from '../../simulator/synthetic/index.js';
import { LAB, assertLabSafeAddress, labHostAddress, labHostNs, labMasscanRoute } from './topology.js';
import { type LabService, labServiceKind } from './services.js';
import { type LabClosedPolicy, applyClosedPolicy, nftUnavailableReason, parseClosedPolicy } from './closed-ports.js';

/** One lab host: its namespace, address, tags and what it serves this epoch. */
export interface LabHost {
  readonly index: number;
  readonly ns: string;
  readonly ip: string;
  readonly tags: readonly string[];
  readonly services: readonly LabService[];
  readonly pid: number | null;
}

/** Everything `lab up` made, kept on disk so `lab epoch`/`lab down` work from another process. */
export interface LabState {
  readonly version: 1;
  readonly profile: string;
  readonly seed: string;
  readonly epochs: number;
  readonly epoch: number;
  readonly maxPortsPerHost: number;
  /** What hosts do with TCP to ports they do not serve (absent in older state files: reject). */
  readonly closed?: LabClosedPolicy;
  readonly hosts: readonly LabHost[];
  readonly masscan: ReturnType<typeof labMasscanRoute>;
}

export interface LabUpOptions {
  hosts: number;
  profile: string;
  seed: string;
  /** Epochs the lab can step through with `lab epoch` (the profile's churn). */
  epochs?: number;
  /** Lab hosts serve at most this many ports (pseudo-service hosts are cut down to it). */
  maxPortsPerHost?: number;
  /** TCP to an unserved port: `reject` (RST, default) or `drop` (silence, as behind a firewall). */
  closed?: LabClosedPolicy;
  /** How long to wait for another process's lab to be taken down (default 10 minutes). */
  waitMs?: number;
  log?: (line: string) => void;
}

/** Where the lab's state lives ($PORTBANDIT_LAB_STATE overrides). */
export function labStatePath(env: NodeJS.ProcessEnv = process.env): string {
  return env.PORTBANDIT_LAB_STATE ?? '/run/portbandit-lab/state.json';
}

/** Whether this process may build a lab (root, `ip` present). Returns the reason when not. */
export async function labUnavailableReason(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'the lab needs root (network namespaces and veth links)';
  try {
    await execa('ip', ['-V']);
  } catch {
    return 'the lab needs iproute2 (apt-get install iproute2)';
  }
  return null;
}

async function ip(args: readonly string[]): Promise<void> {
  try {
    await execa('ip', args, { timeout: 10_000 });
  } catch (cause) {
    throw new PortbanditError('PB_ERR_LAB', `ip ${args.join(' ')} failed: ${(cause as { stderr?: string }).stderr ?? String(cause)}`, {
      cause,
    });
  }
}

async function ipQuiet(args: readonly string[]): Promise<boolean> {
  try {
    await execa('ip', args, { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

function readState(path = labStatePath()): LabState | null {
  if (!existsSync(path)) return null;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as LabState;
  } catch (cause) {
    throw new PortbanditError('PB_ERR_LAB', 'the lab state file is unreadable; run `portbandit lab down` to clean up', {
      where: path,
      cause,
    });
  }
}

function writeState(state: LabState, path = labStatePath()): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, JSON.stringify(state, null, 2));
  renameSync(`${path}.tmp`, path);
}

/**
 * While this file exists the blackhole route for 198.18.0.0/15 stays up when no lab is: the test
 * run sets it (test/helpers/lab-guard.ts) so that a probe of a lab address while no lab is up
 * can never leave the machine.
 */
export function labGuardPath(): string {
  return join(dirname(labStatePath()), 'guard');
}

/** Holders of the guard still running: the pids in the guard file whose process is alive. */
function guardHolders(): number[] {
  let text = '';
  try {
    text = readFileSync(labGuardPath(), 'utf8');
  } catch {
    return [];
  }
  return [...new Set(text.split(/\s+/).filter(Boolean).map(Number))].filter((pid) => Number.isInteger(pid) && pid > 0 && isAlive(pid));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Put up the standing blackhole guard for 198.18.0.0/15 (root only); returns a function that
 * takes it down. Several processes may hold it at once (`npm test` runs the unit and the lab
 * files as two vitest processes): the guard file lists their pids, and the guard goes when the
 * last living holder lets go.
 */
export async function raiseLabGuard(): Promise<() => Promise<void>> {
  mkdirSync(dirname(labGuardPath()), { recursive: true });
  // An append (atomic for a line) so that two runs starting together both stay listed.
  appendFileSync(labGuardPath(), `${process.pid}\n`);
  await ip(['route', 'replace', 'blackhole', LAB.safetyNetwork]);
  return async () => {
    const others = guardHolders().filter((pid) => pid !== process.pid);
    if (others.length > 0) {
      writeFileSync(labGuardPath(), others.join('\n'));
      return;
    }
    rmSync(labGuardPath(), { force: true });
    if (!existsSync(labStatePath())) await ipQuiet(['route', 'del', 'blackhole', LAB.safetyNetwork]);
  };
}

function lockPath(): string {
  return join(dirname(labStatePath()), 'owner.pid');
}

/**
 * The lab's owner holds an abstract Unix socket (Linux): binding it is atomic, only one live
 * process can hold it, and the kernel lets go when that process dies — no stale lock to clean up,
 * no check-then-write race between two processes that start a lab at the same moment. The
 * owner's pid is also written to owner.pid, for the messages only.
 */
function lockSocketName(): string {
  return `\0portbandit-lab:${labStatePath()}`;
}

let heldLock: Server | null = null;

/** Try to take the lab's lock; true when this process holds it (now or already). */
async function tryLock(): Promise<boolean> {
  if (heldLock) return true;
  const server = createServer();
  const ok = await new Promise<boolean>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(false) : reject(error)));
    server.listen(lockSocketName(), () => resolve(true));
  });
  if (!ok) return false;
  server.unref();
  heldLock = server;
  mkdirSync(dirname(lockPath()), { recursive: true });
  writeFileSync(lockPath(), String(process.pid));
  return true;
}

/** Set while a caller holds the lab through `labLock`: then `labDown` keeps the lock. */
let pinned = false;

/**
 * The lab's cross-process lock, for callers that need the lab across several `labUp`/`labDown`
 * calls (a test file that takes its lab down and checks that a second `labDown` finds nothing).
 */
export const labLock = {
  async acquire(options: { waitMs?: number; log?: (line: string) => void } = {}): Promise<void> {
    await acquireLab(options.waitMs ?? 10 * 60_000, options.log ?? (() => {}));
    pinned = true;
  },
  release(): void {
    pinned = false;
    releaseLock();
  },
};

function releaseLock(): void {
  if (pinned) return;
  heldLock?.close();
  heldLock = null;
  rmSync(lockPath(), { force: true });
}

/** Who holds the lock, for messages: the pid in owner.pid, or "another process". */
function ownerName(): string {
  try {
    const pid = Number(readFileSync(lockPath(), 'utf8'));
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) return `process ${pid}`;
  } catch {
    // not written yet
  }
  return 'another process';
}

/**
 * The lab is one per machine (namespaces, links and routes are global), so one process owns it
 * from `labUp` to `labDown`. Another process waits for it (tests in parallel workers take turns)
 * instead of tearing down a lab that is being scanned — which would send the probes off the machine.
 */
async function acquireLab(waitMs: number, log: (line: string) => void): Promise<void> {
  const deadline = Date.now() + waitMs;
  let said = false;
  for (;;) {
    if (await tryLock()) return;
    if (Date.now() > deadline) {
      throw new PortbanditError(
        'PB_ERR_LAB',
        `the lab is in use by ${ownerName()}; wait for it or stop it, then run \`portbandit lab down\``,
      );
    }
    if (!said) {
      log(`lab: waiting for ${ownerName()}, which is using the lab`);
      said = true;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The lab's current state, or null when no lab is up. */
export function labStatus(): LabState | null {
  return readState();
}

/** Per-host services for every epoch of the profile, cut to the lab's limits. */
function planServices(
  options: Required<Omit<LabUpOptions, 'log' | 'waitMs' | 'closed'>>,
): Array<Array<{ tags: string[]; services: LabService[] }>> {
  const plan: Array<Array<{ tags: string[]; services: LabService[] }>> = [];
  const hostIndex = new Map<string, number>();
  for (const obs of generateObservations({ profile: options.profile, hosts: options.hosts, epochs: options.epochs, seed: options.seed })) {
    let index = hostIndex.get(obs.ip);
    if (index === undefined) hostIndex.set(obs.ip, (index = hostIndex.size));
    const open = obs.open.slice(0, options.maxPortsPerHost);
    (plan[obs.epoch] ??= [])[index] = { tags: [...obs.tags], services: open.map((port) => ({ port, kind: labServiceKind(port) })) };
  }
  return plan;
}

/** Hosts set up (or restarted, or removed) at once. */
const SETUP_CONCURRENCY = 8;

function daemonCommand(): { script: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  const ts = here.endsWith('.ts');
  return { script: here.replace(/lab\.(ts|js)$/, `services-daemon.${ts ? 'ts' : 'js'}`), execArgv: ts ? ['--import', 'tsx'] : [] };
}

/** Start a host's services daemon inside its namespace; resolves with its pid once it listens. */
async function startDaemon(host: { ns: string; services: readonly LabService[] }): Promise<number> {
  const { script, execArgv } = daemonCommand();
  const child = spawn('ip', ['netns', 'exec', host.ns, process.execPath, ...execArgv, script, JSON.stringify(host.services)], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return await new Promise<number>((resolve, reject) => {
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new PortbanditError('PB_ERR_LAB', `services in ${host.ns} did not start within 15 s: ${stderr}`));
    }, 15_000);
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes('ready')) {
        clearTimeout(timer);
        child.stdout!.destroy();
        child.stderr!.destroy();
        child.unref();
        resolve(child.pid!);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new PortbanditError('PB_ERR_LAB', `services in ${host.ns} exited with ${code}: ${stderr}`));
    });
  });
}

function stopPid(pid: number | null): void {
  if (pid === null) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/**
 * Build the lab: gateway namespace, one namespace per host behind a bridge, routes, and the
 * profile's epoch-0 services in each host. Tears down any previous lab first.
 */
export async function labUp(options: LabUpOptions): Promise<LabState> {
  const reason = await labUnavailableReason();
  if (reason) throw new PortbanditError('PB_ERR_LAB', reason);
  const log = options.log ?? (() => {});
  const resolved = {
    hosts: options.hosts,
    profile: options.profile,
    seed: options.seed,
    epochs: options.epochs ?? 12,
    maxPortsPerHost: options.maxPortsPerHost ?? 64,
  };
  const closed = parseClosedPolicy(options.closed ?? 'reject');
  if (closed === 'drop') {
    const nft = await nftUnavailableReason();
    if (nft) throw new PortbanditError('PB_ERR_LAB', nft, { where: '--closed' });
  }
  if (!Number.isInteger(resolved.hosts) || resolved.hosts < 1 || resolved.hosts > LAB.maxHosts) {
    throw new PortbanditError('PB_ERR_FLAG_VALUE', `expected 1-${LAB.maxHosts} hosts, got ${resolved.hosts}`, { where: '--hosts' });
  }
  for (const a of [LAB.rootAddress, LAB.gatewayAddress, LAB.bridgeAddress]) assertLabSafeAddress(a, 'lab topology');
  const plan = planServices(resolved);
  await acquireLab(options.waitMs ?? 10 * 60_000, log);
  await teardown(() => {});
  log(
    `lab: creating gateway ${LAB.gatewayNs} and ${resolved.hosts} hosts in ${LAB.hostNetwork}; closed ports ${closed === 'drop' ? 'drop TCP silently' : 'answer RST'}`,
  );
  try {
    await ip(['netns', 'add', LAB.gatewayNs]);
    await ip(['link', 'add', LAB.rootLink, 'type', 'veth', 'peer', 'name', LAB.gatewayLink]);
    await ip(['link', 'set', LAB.gatewayLink, 'netns', LAB.gatewayNs]);
    await ip(['addr', 'add', `${LAB.rootAddress}/${LAB.transferPrefixLength}`, 'dev', LAB.rootLink]);
    await ip(['link', 'set', LAB.rootLink, 'up']);
    const gw = ['-n', LAB.gatewayNs];
    await ip([...gw, 'addr', 'add', `${LAB.gatewayAddress}/${LAB.transferPrefixLength}`, 'dev', LAB.gatewayLink]);
    await ip([...gw, 'link', 'set', LAB.gatewayLink, 'up']);
    await ip([...gw, 'link', 'set', 'lo', 'up']);
    await ip([...gw, 'link', 'add', LAB.bridge, 'type', 'bridge']);
    await ip([...gw, 'addr', 'add', `${LAB.bridgeAddress}/${LAB.hostPrefixLength}`, 'dev', LAB.bridge]);
    await ip([...gw, 'link', 'set', LAB.bridge, 'up']);
    await execa('ip', ['netns', 'exec', LAB.gatewayNs, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    // The lab's hosts are reached through the gateway; the rest of 198.18.0.0/15 goes nowhere.
    await ip(['route', 'replace', 'blackhole', LAB.safetyNetwork]);
    await ip(['route', 'replace', LAB.hostNetwork, 'via', LAB.gatewayAddress, 'dev', LAB.rootLink]);

    // Hosts are independent (their own namespace, veth pair and daemon): set them up a few at a
    // time, so the process starts (ip, nft, the services daemon) overlap instead of queueing.
    let up = 0;
    const hosts: LabHost[] = await pMap(
      Array.from({ length: resolved.hosts }, (_, i) => i),
      async (i): Promise<LabHost> => {
        const ns = labHostNs(i);
        const addr = labHostAddress(i);
        await ip(['netns', 'add', ns]);
        await ip(['link', 'add', `pbp${i}`, 'type', 'veth', 'peer', 'name', `pbh${i}`]);
        await ip(['link', 'set', `pbp${i}`, 'netns', LAB.gatewayNs]);
        await ip([...gw, 'link', 'set', `pbp${i}`, 'master', LAB.bridge, 'up']);
        await ip(['link', 'set', `pbh${i}`, 'netns', ns]);
        await ip(['-n', ns, 'link', 'set', `pbh${i}`, 'name', 'eth0']);
        await ip(['-n', ns, 'addr', 'add', `${addr}/${LAB.hostPrefixLength}`, 'dev', 'eth0']);
        await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
        await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
        await ip(['-n', ns, 'route', 'add', 'default', 'via', LAB.bridgeAddress]);
        const planned = plan[0]?.[i] ?? { tags: [], services: [] };
        await applyClosedPolicy(ns, closed, planned.services);
        const pid = await startDaemon({ ns, services: planned.services });
        up++;
        if (up % 8 === 0 || up === resolved.hosts) log(`lab: ${up}/${resolved.hosts} hosts up`);
        return { index: i, ns, ip: addr, tags: planned.tags, services: planned.services, pid };
      },
      { concurrency: SETUP_CONCURRENCY },
    );
    const state: LabState = { version: 1, ...resolved, closed, epoch: 0, hosts, masscan: labMasscanRoute() };
    writeState(state);
    return state;
  } catch (error) {
    await teardown(() => {});
    releaseLock();
    throw error;
  }
}

/** Step the lab to the next epoch of its profile: hosts whose services changed are restarted. */
export async function labEpoch(options: { log?: (line: string) => void } = {}): Promise<LabState> {
  const state = readState();
  if (!state) throw new PortbanditError('PB_ERR_LAB', 'no lab is up; run `portbandit lab up` first');
  const next = state.epoch + 1;
  if (next >= state.epochs) throw new PortbanditError('PB_ERR_LAB', `the lab was built for ${state.epochs} epochs; it is at the last one`);
  const plan = planServices({
    hosts: state.hosts.length,
    profile: state.profile,
    seed: state.seed,
    epochs: state.epochs,
    maxPortsPerHost: state.maxPortsPerHost,
  });
  let changed = 0;
  const hosts: LabHost[] = await pMap(
    state.hosts,
    async (host): Promise<LabHost> => {
      const planned = plan[next]?.[host.index] ?? { tags: [...host.tags], services: [] };
      if (JSON.stringify(planned.services) === JSON.stringify(host.services)) return host;
      changed++;
      await applyClosedPolicy(host.ns, state.closed ?? 'reject', planned.services);
      stopPid(host.pid);
      await waitForNoPids(host.ns);
      const pid = await startDaemon({ ns: host.ns, services: planned.services });
      return { ...host, tags: planned.tags, services: planned.services, pid };
    },
    { concurrency: SETUP_CONCURRENCY },
  );
  const updated: LabState = { ...state, epoch: next, hosts };
  writeState(updated);
  options.log?.(`lab: epoch ${next}, ${changed} hosts changed`);
  return updated;
}

async function nsPids(ns: string): Promise<number[]> {
  try {
    const { stdout } = await execa('ip', ['netns', 'pids', ns], { timeout: 5000 });
    return stdout.split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function waitForNoPids(ns: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const pids = await nsPids(ns);
    if (pids.length === 0) return;
    for (const pid of pids) stopPid(pid);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Remove every namespace, link, route and process the lab made — found by name, so it also
 * cleans up after a crash that lost the state file. Safe to call when nothing is up.
 */
export async function labDown(options: { log?: (line: string) => void } = {}): Promise<{ namespaces: number }> {
  if (!(await tryLock())) {
    throw new PortbanditError('PB_ERR_LAB', `the lab belongs to running ${ownerName()}; it takes the lab down itself (or stop it first)`);
  }
  try {
    return await teardown(options.log ?? (() => {}));
  } finally {
    releaseLock();
  }
}

async function teardown(log: (line: string) => void): Promise<{ namespaces: number }> {
  let list = '';
  try {
    list = (await execa('ip', ['netns', 'list'], { timeout: 5000 })).stdout;
  } catch {
    // no iproute2 or no permission: nothing of ours can exist
  }
  const namespaces = list
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(LAB.hostNsPrefix));
  await pMap(
    namespaces,
    async (ns) => {
      await waitForNoPids(ns);
      await ipQuiet(['netns', 'del', ns]);
    },
    { concurrency: SETUP_CONCURRENCY },
  );
  await ipQuiet(['route', 'del', LAB.hostNetwork]);
  // A standing guard (see labGuardPath) keeps the blackhole between labs; otherwise it goes with the lab.
  if (!existsSync(labGuardPath())) await ipQuiet(['route', 'del', 'blackhole', LAB.safetyNetwork]);
  await ipQuiet(['link', 'del', LAB.rootLink]);
  rmSync(labStatePath(), { force: true });
  if (namespaces.length > 0) log(`lab: removed ${namespaces.length} namespaces`);
  return { namespaces: namespaces.length };
}
