import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { detectScannerTools } from '../agent/index.js';
import { labDown, labUnavailableReason, labUp } from '../src/lab/index.js';
import type { ScanDocument } from '../src/store/types.js';

/**
 * The live loop's cycle time, as an operator runs it: `portbandit serve` and `portbandit agent`
 * processes, the lab's whole /24 in scope (16 or 64 live hosts, the rest of the 256 addresses
 * dead), closed ports silently dropped, the default policy as installed (1,000 probes/s over
 * 24 h: live hosts get full sweeps, dead ones a floor). Cycle 1 is the first look at the scope;
 * cycles 2 and 3 are started by hand (the period is 24 h): cycle 2 is the first with full sweeps
 * of the live hosts, cycle 3 the steady state. Per phase: the preflight
 * (masscan), the wait for an nmap slot, nmap -sV, and what the dead addresses cost.
 *
 * PB_BENCH_LIVE_HOSTS (default "16,64"), PB_BENCH_LIVE_RATE (agent --rate, default 100000: masscan lost
 * nothing at 100,000-200,000 packets/s on the drop lab, docs/agent.md).
 * Needs root, nmap, masscan and nftables; bounded: each cycle gives up after 15 minutes.
 */
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const run = promisify(execFile);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function stats(values: readonly number[]): string {
  if (values.length === 0) return '—';
  const sorted = [...values].sort((a, b) => a - b);
  const q = (f: number) => sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))]!;
  return `median ${(q(0.5) / 1000).toFixed(1)} s, p90 ${(q(0.9) / 1000).toFixed(1)} s, max ${(sorted.at(-1)! / 1000).toFixed(1)} s`;
}

async function measure(hosts: number, rate: number): Promise<void> {
  const lab = await labUp({ hosts, profile: 'enterprise', seed: `bench-live-${hosts}`, epochs: 2, closed: 'drop', log: () => {} });
  const served = lab.hosts.flatMap((h) => h.services.map((s) => `${h.ip}:${s.port}`));
  const dir = mkdtempSync(join(tmpdir(), 'pb-bench-live-'));
  const children: ChildProcess[] = [];
  try {
    const port = await freePort();
    let serverErr = '';
    const server = spawn(process.execPath, [CLI, 'serve', '--port', String(port), '--data', join(dir, 'data'), '--log-level', 'warn'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(server);
    server.stderr!.on('data', (c: Buffer) => (serverErr += c.toString()));
    for (let waited = 0; !/pbk_[A-Za-z0-9_-]+/.test(serverErr); waited += 100) {
      if (waited > 30_000) throw new Error(`serve did not start: ${serverErr}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const admin = /pbk_[A-Za-z0-9_-]+/.exec(serverErr)![0];
    const cli = (...args: string[]) => run(process.execPath, [CLI, ...args, '--data', join(dir, 'data')]);
    const api = async <T>(path: string, method = 'GET'): Promise<T> => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers: { authorization: `Bearer ${admin}` } });
      return (await res.json()) as T;
    };
    await cli('scope', 'add', '198.18.1.0/24', '--tag', 'lab');
    const { stdout } = await cli('token', 'create', '--agent', 'bench');
    writeFileSync(join(dir, 'agent.token'), stdout, { mode: 0o600 });
    for (const cycle of [1, 2, 3]) {
      if (cycle > 1) await api('/api/v1/admin/cycle/restart', 'POST');
      const started = Date.now();
      if (cycle === 1) {
        children.push(
          spawn(
            process.execPath,
            [
              CLI,
              'agent',
              '--server',
              `http://127.0.0.1:${port}`,
              '--token-file',
              join(dir, 'agent.token'),
              '--allow',
              '198.18.1.0/24',
              '--rate',
              String(rate),
            ],
            { stdio: 'ignore' },
          ),
        );
      }
      for (;;) {
        const c = await api<{ cycle: number; position: string; size: string }>('/api/v1/admin/cycle');
        const q = await api<{ items: unknown[]; inFlight: number }>('/api/v1/admin/queue');
        if (c.cycle === cycle && c.size !== '0' && c.position === c.size && q.items.length === 0 && q.inFlight === 0) break;
        if (Date.now() - started > 15 * 60_000) throw new Error(`cycle ${cycle} did not finish in 15 minutes`);
        process.stderr.write(
          `\r  ${hosts} live hosts, cycle ${cycle}: ${c.position}/${c.size} handed out, ${q.inFlight} in flight, ${((Date.now() - started) / 1000).toFixed(0)} s `,
        );
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      const wall = Date.now() - started;
      process.stderr.write('\n');
      const visits = (await api<{ items: ScanDocument[] }>('/api/v1/search?view=history&limit=1000')).items.filter(
        (s) => s.cycle === cycle,
      );
      const live = visits.filter((v) => (v.knownOpen ?? []).length > 0 || v.ports.some((p) => p.state === 'open'));
      const dead = visits.filter((v) => !live.includes(v));
      const latest = await Promise.all(lab.hosts.map((h) => api<ScanDocument>(`/api/v1/hosts/${h.ip}`)));
      const openNow = new Set(latest.flatMap((l) => (l.ports ?? []).filter((p) => p.state === 'open').map((p) => `${l.ip}:${p.port}`)));
      const found = served.filter((s) => openNow.has(s)).length;
      const t = (v: ScanDocument, k: string) => v.timings[k] ?? 0;
      const probes = (v: ScanDocument) =>
        v.probedPorts
          .split(',')
          .reduce((a, r) => a + (r.includes('-') ? Number(r.split('-')[1]) - Number(r.split('-')[0]) + 1 : r === '' ? 0 : 1), 0);
      const deadProbes = dead.reduce((a, v) => a + probes(v), 0);
      const liveProbes = live.reduce((a, v) => a + probes(v), 0);
      console.log(
        `live-cycle: ${hosts} live hosts in a /24, cycle ${cycle}${['', ' (first look: top ports)', ' (first full sweeps of live hosts)', ' (steady state)'][cycle]}: ${(wall / 1000).toFixed(1)} s wall, ${visits.length} visits, ${found}/${served.length} served services found`,
      );
      console.log(
        `  live hosts (${live.length}): visit ${stats(live.map((v) => t(v, 'wall')))}; preflight ${stats(live.map((v) => t(v, 'preflight')))}; nmap wait ${stats(live.map((v) => t(v, 'nmapWait')))}; nmap ${stats(live.map((v) => t(v, 'nmap')))}; ${liveProbes.toLocaleString('en')} probes; ${live.filter((v) => v.incomplete).length} partial (silent services cut at the -sV time-out)`,
      );
      console.log(
        `  dead addresses (${dead.length}): visit ${stats(dead.map((v) => t(v, 'wall')))}; preflight ${stats(dead.map((v) => t(v, 'preflight')))}; ${deadProbes.toLocaleString('en')} probes (${((100 * deadProbes) / Math.max(1, deadProbes + liveProbes)).toFixed(1)}% of the cycle's)`,
      );
      console.log(
        `  goal: a /24 with 16 live hosts cycled in <= 60 s${hosts === 16 && cycle === 3 ? (wall <= 60_000 ? ': met' : ': NOT met') : ''}`,
      );
    }
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await labDown({ log: () => {} });
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runLiveCycleBenchmark(env: NodeJS.ProcessEnv): Promise<void> {
  const tools = await detectScannerTools();
  const why =
    (await labUnavailableReason()) ??
    (!tools.nmap || !tools.masscan || !tools.rawSockets ? 'nmap, masscan and raw sockets are needed' : null);
  if (why) {
    console.log(`live-cycle: skipped (${why})`);
    return;
  }
  const rate = Number(env.PB_BENCH_LIVE_RATE ?? 100_000);
  for (const hosts of (env.PB_BENCH_LIVE_HOSTS ?? '16,64').split(',').map(Number)) await measure(hosts, rate);
}
