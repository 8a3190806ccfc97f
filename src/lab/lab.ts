import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import pMap from 'p-map';
import { PortbanditError } from '../core/index.js';
import { generateObservations } from '../../simulator/synthetic/index.js';
import { LAB, LAB_INSTANCES, assertLabSafeAddress, labHostAddress, labHostNs, labMasscanRoute, labTopology } from './topology.js';
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
  /** Which lab this is (absent in older state files: 0, the CLI's). */
  readonly instance?: number;
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
  /**
   * Which lab to build (default 0, the CLI's; see `LAB_INSTANCES`), or `any`: the first one no
   * other process holds (the test files, which then run two at a time). A process that already
   * holds a lab builds that one again.
   */
  instance?: number | 'any';
  log?: (line: string) => void;
}

/** Where a lab's state lives ($PORTBANDIT_LAB_STATE overrides instance 0's; the others sit beside it). */
export function labStatePath(env: NodeJS.ProcessEnv = process.env, instance = 0): string {
  const base = env.PORTBANDIT_LAB_STATE ?? '/run/portbandit-lab/state.json';
  return instance === 0 ? base : join(dirname(base), `state-${labTopology(instance).instance}.json`);
}

/** The lab instances, 0 .. LAB_INSTANCES - 1. */
const INSTANCES = Array.from({ length: LAB_INSTANCES }, (_, i) => i);

/** Whether any lab's state file is on disk (then some lab is up, or was when its process died). */
function anyLabState(): boolean {
  return INSTANCES.some((i) => existsSync(labStatePath(process.env, i)));
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

function readState(path: string): LabState | null {
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

function writeState(state: LabState, path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, JSON.stringify(state, null, 2));
  renameSync(`${path}.tmp`, path);
}

/**
 * While a live process holds this guard the blackhole route for 198.18.0.0/15 stays up when no
 * lab is: the test run sets it (test/helpers/lab-guard.ts) so that a probe of a lab address while
 * no lab is up can never leave the machine. A directory with one file per holder, named by its
 * pid: raising and letting go each touch only their own file, so holders that start and stop
 * together never drop one another (a shared list rewritten on release could).
 */
export function labGuardPath(): string {
  return join(dirname(labStatePath()), 'guard');
}

/** Holders of the guard still running (the files of holders that died are removed). */
function guardHolders(): number[] {
  const dir = labGuardPath();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const live: number[] = [];
  for (const name of names) {
    const pid = Number(name);
    if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) live.push(pid);
    else rmSync(join(dir, name), { force: true });
  }
  return live;
}

/** Whether a live process holds the standing guard (`raiseLabGuard`). */
export function labGuardHeld(): boolean {
  return guardHolders().length > 0;
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
 * files as two vitest processes): each has its file in the guard directory, and the guard goes
 * when the last living holder lets go.
 */
export async function raiseLabGuard(): Promise<() => Promise<void>> {
  const dir = labGuardPath();
  // A guard file of older versions (a list of pids) where the directory goes.
  if (existsSync(dir) && !statSync(dir).isDirectory()) rmSync(dir, { force: true });
  mkdirSync(dir, { recursive: true });
  const mine = join(dir, String(process.pid));
  // The file before the route: a holder letting go at this moment either sees it, or takes the
  // route down before this puts it back.
  writeFileSync(mine, '');
  await ip(['route', 'replace', 'blackhole', LAB.safetyNetwork]);
  return async () => {
    rmSync(mine, { force: true });
    if (guardHolders().length > 0 || anyLabState()) return;
    await ipQuiet(['route', 'del', 'blackhole', LAB.safetyNetwork]);
    // A holder that raised the guard while this one looked: its route may just have gone.
    if (guardHolders().length > 0) await ip(['route', 'replace', 'blackhole', LAB.safetyNetwork]);
  };
}

function lockPath(instance: number): string {
  return join(dirname(labStatePath()), instance === 0 ? 'owner.pid' : `owner-${instance}.pid`);
}

/**
 * A lab's owner holds an abstract Unix socket (Linux): binding it is atomic, only one live
 * process can hold it, and the kernel lets go when that process dies — no stale lock to clean up,
 * no check-then-write race between two processes that start a lab at the same moment. The
 * owner's pid is also written to owner.pid, for the messages only. Each instance has its own.
 */
function lockSocketName(instance: number): string {
  return `\0portbandit-lab:${labStatePath(process.env, instance)}`;
}

/** The instance this process holds (at most one) and its lock. */
let held: { instance: number; server: Server } | null = null;

/** Try to take lab `instance`'s lock; true when this process holds it (now or already). */
async function tryLock(instance: number): Promise<boolean> {
  if (held) return held.instance === instance;
  const server = createServer();
  const ok = await new Promise<boolean>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(false) : reject(error)));
    server.listen(lockSocketName(instance), () => resolve(true));
  });
  if (!ok) return false;
  server.unref();
  held = { instance, server };
  mkdirSync(dirname(lockPath(instance)), { recursive: true });
  writeFileSync(lockPath(instance), String(process.pid));
  return true;
}

/** Set while a caller holds the lab through `labLock`: then `labDown` keeps the lock. */
let pinned = false;

/**
 * The lab's cross-process lock, for callers that need the lab across several `labUp`/`labDown`
 * calls (a test file that takes its lab down and checks that a second `labDown` finds nothing).
 * `instance` as for `labUp` (default: the one this process holds, else 0).
 */
export const labLock = {
  async acquire(options: { waitMs?: number; log?: (line: string) => void; instance?: number | 'any' } = {}): Promise<number> {
    const instance = await acquireLab(options.instance ?? held?.instance ?? 0, options.waitMs ?? 10 * 60_000, options.log ?? (() => {}));
    pinned = true;
    return instance;
  },
  release(): void {
    pinned = false;
    releaseLock();
  },
};

function releaseLock(): void {
  if (pinned || !held) return;
  held.server.close();
  rmSync(lockPath(held.instance), { force: true });
  held = null;
}

/** Who holds lab `instance`'s lock, for messages: the pid in its owner file, or "another process". */
function ownerName(instance: number): string {
  try {
    const pid = Number(readFileSync(lockPath(instance), 'utf8'));
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) return `process ${pid}`;
  } catch {
    // not written yet
  }
  return 'another process';
}

/**
 * A lab is one per instance (namespaces, links and routes are global), so one process owns it
 * from `labUp` to `labDown`. Another process waits for it (tests in parallel workers take turns)
 * instead of tearing down a lab that is being scanned — which would send the probes off the machine.
 * `any` takes the first instance free (the one this process holds, if it holds one). Resolves with
 * the instance held.
 */
async function acquireLab(wanted: number | 'any', waitMs: number, log: (line: string) => void): Promise<number> {
  const candidates = wanted === 'any' ? (held ? [held.instance] : INSTANCES) : [labTopology(wanted).instance];
  if (held && !candidates.includes(held.instance)) {
    throw new PortbanditError('PB_ERR_LAB', `this process holds lab ${held.instance}; take it down before building lab ${wanted}`);
  }
  const deadline = Date.now() + waitMs;
  let said = false;
  for (;;) {
    for (const instance of candidates) if (await tryLock(instance)) return instance;
    const owners = candidates.map((i) => `${ownerName(i)}${LAB_INSTANCES > 1 ? ` (lab ${i})` : ''}`).join(', ');
    if (Date.now() > deadline) {
      throw new PortbanditError('PB_ERR_LAB', `the lab is in use by ${owners}; wait for it or stop it, then run \`portbandit lab down\``);
    }
    if (!said) {
      log(`lab: waiting for ${owners}, which is using the lab`);
      said = true;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A lab's current state (default: the one this process holds, else 0), or null when it is not up. */
export function labStatus(instance = held?.instance ?? 0): LabState | null {
  return readState(labStatePath(process.env, instance));
}

/** Per-host services for every epoch of the profile, cut to the lab's limits. */
function planServices(
  options: Required<Omit<LabUpOptions, 'log' | 'waitMs' | 'closed' | 'instance'>>,
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
  const plan = planServices(resolved);
  const instance = await acquireLab(options.instance ?? 0, options.waitMs ?? 10 * 60_000, log);
  const topo = labTopology(instance);
  for (const a of [topo.rootAddress, topo.gatewayAddress, topo.bridgeAddress]) assertLabSafeAddress(a, 'lab topology');
  await teardown(instance, () => {});
  log(
    `lab: creating gateway ${topo.gatewayNs} and ${resolved.hosts} hosts in ${topo.hostNetwork}; closed ports ${closed === 'drop' ? 'drop TCP silently' : 'answer RST'}`,
  );
  try {
    await ip(['netns', 'add', topo.gatewayNs]);
    await ip(['link', 'add', topo.rootLink, 'type', 'veth', 'peer', 'name', topo.gatewayLink]);
    await ip(['link', 'set', topo.gatewayLink, 'netns', topo.gatewayNs]);
    await ip(['addr', 'add', `${topo.rootAddress}/${topo.transferPrefixLength}`, 'dev', topo.rootLink]);
    await ip(['link', 'set', topo.rootLink, 'up']);
    const gw = ['-n', topo.gatewayNs];
    await ip([...gw, 'addr', 'add', `${topo.gatewayAddress}/${topo.transferPrefixLength}`, 'dev', topo.gatewayLink]);
    await ip([...gw, 'link', 'set', topo.gatewayLink, 'up']);
    await ip([...gw, 'link', 'set', 'lo', 'up']);
    await ip([...gw, 'link', 'add', topo.bridge, 'type', 'bridge']);
    await ip([...gw, 'addr', 'add', `${topo.bridgeAddress}/${topo.hostPrefixLength}`, 'dev', topo.bridge]);
    await ip([...gw, 'link', 'set', topo.bridge, 'up']);
    await execa('ip', ['netns', 'exec', topo.gatewayNs, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    // The lab's hosts are reached through the gateway; the rest of 198.18.0.0/15 goes nowhere.
    await ip(['route', 'replace', 'blackhole', LAB.safetyNetwork]);
    await ip(['route', 'replace', topo.hostNetwork, 'via', topo.gatewayAddress, 'dev', topo.rootLink]);

    // Hosts are independent (their own namespace, veth pair and daemon): set them up a few at a
    // time, so the process starts (ip, nft, the services daemon) overlap instead of queueing.
    let up = 0;
    const hosts: LabHost[] = await pMap(
      Array.from({ length: resolved.hosts }, (_, i) => i),
      async (i): Promise<LabHost> => {
        const ns = labHostNs(i, instance);
        const addr = labHostAddress(i, instance);
        const [peer, own] = [`${topo.veth.peer}${i}`, `${topo.veth.host}${i}`];
        await ip(['netns', 'add', ns]);
        await ip(['link', 'add', peer, 'type', 'veth', 'peer', 'name', own]);
        await ip(['link', 'set', peer, 'netns', topo.gatewayNs]);
        await ip([...gw, 'link', 'set', peer, 'master', topo.bridge, 'up']);
        await ip(['link', 'set', own, 'netns', ns]);
        await ip(['-n', ns, 'link', 'set', own, 'name', 'eth0']);
        await ip(['-n', ns, 'addr', 'add', `${addr}/${topo.hostPrefixLength}`, 'dev', 'eth0']);
        await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
        await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
        await ip(['-n', ns, 'route', 'add', 'default', 'via', topo.bridgeAddress]);
        const planned = plan[0]?.[i] ?? { tags: [], services: [] };
        await applyClosedPolicy(ns, closed, planned.services);
        const pid = await startDaemon({ ns, services: planned.services });
        up++;
        if (up % 8 === 0 || up === resolved.hosts) log(`lab: ${up}/${resolved.hosts} hosts up`);
        return { index: i, ns, ip: addr, tags: planned.tags, services: planned.services, pid };
      },
      { concurrency: SETUP_CONCURRENCY },
    );
    const state: LabState = { version: 1, ...resolved, closed, epoch: 0, hosts, masscan: labMasscanRoute(instance), instance };
    writeState(state, labStatePath(process.env, instance));
    return state;
  } catch (error) {
    await teardown(instance, () => {});
    releaseLock();
    throw error;
  }
}

/**
 * Step a lab (default: the one this process holds, else 0) to the next epoch of its profile:
 * hosts whose services changed are restarted.
 */
export async function labEpoch(options: { log?: (line: string) => void; instance?: number } = {}): Promise<LabState> {
  const path = labStatePath(process.env, options.instance ?? held?.instance ?? 0);
  const state = readState(path);
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
  writeState(updated, path);
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
 * Remove every namespace, link, route and process a lab made — found by name, so it also cleans
 * up after a crash that lost the state file. Safe to call when nothing is up. Which lab: the one
 * this process holds; otherwise `instance`, or every lab no running process holds (`portbandit
 * lab down`), failing after that if another process holds one.
 */
export async function labDown(options: { log?: (line: string) => void; instance?: number } = {}): Promise<{ namespaces: number }> {
  const log = options.log ?? (() => {});
  const instances = held ? [held.instance] : options.instance !== undefined ? [labTopology(options.instance).instance] : INSTANCES;
  let namespaces = 0;
  const owned: number[] = [];
  for (const instance of instances) {
    if (!(await tryLock(instance))) {
      owned.push(instance);
      continue;
    }
    try {
      namespaces += (await teardown(instance, log)).namespaces;
    } finally {
      releaseLock();
    }
  }
  if (owned.length > 0) {
    const who = owned.map((i) => `${ownerName(i)}${LAB_INSTANCES > 1 ? ` (lab ${i})` : ''}`).join(', ');
    throw new PortbanditError('PB_ERR_LAB', `the lab belongs to running ${who}; it takes the lab down itself (or stop it first)`);
  }
  return { namespaces };
}

async function teardown(instance: number, log: (line: string) => void): Promise<{ namespaces: number }> {
  const topo = labTopology(instance);
  let list = '';
  try {
    list = (await execa('ip', ['netns', 'list'], { timeout: 5000 })).stdout;
  } catch {
    // no iproute2 or no permission: nothing of ours can exist
  }
  const namespaces = list
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(topo.hostNsPrefix));
  await pMap(
    namespaces,
    async (ns) => {
      await waitForNoPids(ns);
      await ipQuiet(['netns', 'del', ns]);
    },
    { concurrency: SETUP_CONCURRENCY },
  );
  await ipQuiet(['route', 'del', topo.hostNetwork]);
  await ipQuiet(['link', 'del', topo.rootLink]);
  rmSync(labStatePath(process.env, instance), { force: true });
  // A standing guard (see labGuardPath) keeps the blackhole between labs; otherwise it goes with the last lab.
  if (!labGuardHeld() && !anyLabState()) await ipQuiet(['route', 'del', 'blackhole', LAB.safetyNetwork]);
  if (namespaces.length > 0) log(`lab: removed ${namespaces.length} namespaces`);
  return { namespaces: namespaces.length };
}
