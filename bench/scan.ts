import { loadavg } from 'node:os';
import { AllowList, detectScannerTools, runConnectSweep, runMasscan, runNmap } from '../agent/index.js';
import { labDown, labUnavailableReason, labUp, type LabState } from '../src/lab/index.js';

/**
 * Scan benchmark on the lab (root only): the same hosts and all 65,535 TCP ports,
 *   A. masscan preflight + `nmap -sV` on the open ports only, versus `nmap -sV -p-` alone;
 *   B. the Node TCP connect sweep + `nmap -sV` on the open ports, versus `nmap -sT -sV -p-` alone;
 * in the same run, with the open-port sets of each pair asserted identical. Every nmap run uses the
 * same flags (-T4, --version-intensity 2) so the -sV part costs the same on both sides.
 * `nmap -p-` alone over 16 hosts takes many minutes, so the nmap-alone side runs on a subset
 * of the hosts and its time is scaled linearly to the full set; the output says so.
 * Sizes by env: PB_BENCH_SCAN_HOSTS (16), PB_BENCH_SCAN_NMAP_HOSTS (4), PB_BENCH_SCAN_CONNECT_HOSTS (2),
 * PB_BENCH_SCAN_RATE (10000), PB_BENCH_SCAN_PORTS (65535: ports 1..N).
 */
export async function runScanBenchmark(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const reason = (await labUnavailableReason()) ?? null;
  const tools = await detectScannerTools();
  if (reason || !tools.nmap || !tools.masscan) {
    console.log(`scan: skipped (${reason ?? 'nmap and masscan are needed: apt-get install nmap masscan'})`);
    return;
  }
  const hosts = Number(env.PB_BENCH_SCAN_HOSTS ?? 16);
  const nmapHosts = Math.min(hosts, Number(env.PB_BENCH_SCAN_NMAP_HOSTS ?? 4));
  const connectHosts = Math.min(hosts, Number(env.PB_BENCH_SCAN_CONNECT_HOSTS ?? 2));
  const rate = Number(env.PB_BENCH_SCAN_RATE ?? 10_000);
  const portCount = Number(env.PB_BENCH_SCAN_PORTS ?? 65_535);
  const ports = Array.from({ length: portCount }, (_, i) => i + 1);
  const allow = AllowList.parse(['198.18.0.0/15']);
  const timing = ['-T4', '--version-intensity', '2'];
  const log = (line: string) => process.stderr.write(`scan: ${line}\n`);
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  let state: LabState;
  try {
    state = await labUp({ hosts, profile: 'enterprise', seed: 'bench-scan', epochs: 1, maxPortsPerHost: 8, log });
  } catch (error) {
    console.log(`scan: skipped (lab: ${(error as Error).message})`);
    await labDown();
    return;
  }
  try {
    const truth = new Map(state.hosts.map((h) => [h.ip, h.services.map((x) => x.port).sort((a, b) => a - b)]));
    const all = state.hosts.map((h) => h.ip);
    // The nmap-alone and connect subsets take the hosts with the most open ports (a host with
    // nothing open would make the -sV side free and the comparison meaningless).
    const busiest = [...all].sort((a, b) => truth.get(b)!.length - truth.get(a)!.length);
    console.log(`scan: lab of ${hosts} hosts, ${[...truth.values()].reduce((n, p) => n + p.length, 0)} open ports, ${portCount} ports probed per host; load average ${loadavg()[0]!.toFixed(1)} on this shared machine`);

    /** nmap -sV on each host's open ports: one run on the union (ports of other hosts are within 1..N too). */
    const detect = async (open: Map<string, number[]>) => {
      const targets = [...open.keys()].filter((ip) => open.get(ip)!.length > 0);
      if (targets.length === 0) return { ms: 0, found: new Map<string, number[]>() };
      const union = [...new Set(targets.flatMap((ip) => open.get(ip)!))].sort((a, b) => a - b);
      const r = await runNmap({ targets, ports: union, allow, timing, hostTimeoutSeconds: 1800 });
      // Only the ports the preflight found on that host count (the union may hold others' ports).
      const found = new Map(r.run.hosts.map((h) => [h.ip, h.ports.filter((p) => p.state === 'open' && open.get(h.ip)!.includes(p.port)).map((p) => p.port)]));
      return { ms: r.durationMs, found };
    };
    const alone = async (targets: string[], connectScan: boolean) => {
      const r = await runNmap({ targets, ports, allow, timing, connectScan, hostTimeoutSeconds: 7200, timeoutMs: 4 * 3600_000 });
      return { ms: r.durationMs, found: new Map(r.run.hosts.map((h) => [h.ip, h.ports.filter((p) => p.state === 'open').map((p) => p.port)])) };
    };
    const same = (a: Map<string, number[]>, b: Map<string, number[]>, ips: string[]) => ips.every((ip) => JSON.stringify(a.get(ip) ?? []) === JSON.stringify(b.get(ip) ?? []));
    const missed = (found: Map<string, number[]>, ips: string[]) => ips.reduce((n, ip) => n + truth.get(ip)!.filter((p) => !(found.get(ip) ?? []).includes(p)).length, 0);

    // A. masscan + nmap -sV on open ports, versus nmap -sV -p- alone.
    let t = performance.now();
    const m = await runMasscan({ targets: all, ports, allow, rate, retries: 1, waitSeconds: 2 });
    const preMs = performance.now() - t;
    const a1 = await detect(new Map(all.map((ip) => [ip, m.open.get(ip) ?? []])));
    const aMs = performance.now() - t;
    log(`masscan ${s(preMs)} + nmap -sV ${s(a1.ms)}; now nmap -sV -p- alone on ${nmapHosts} hosts`);
    const subset = busiest.slice(0, nmapHosts);
    const b1 = await alone(subset, false);
    const bScaled = (b1.ms * hosts) / nmapHosts;
    const identicalA = same(a1.found, b1.found, subset);
    console.log(`scan: masscan preflight (${rate} pps, 1 retry) + nmap -sV on open ports, ${hosts} hosts: ${s(aMs)} (masscan ${s(preMs)}, nmap ${s(a1.ms)}); missed vs lab: ${missed(a1.found, all)}`);
    console.log(`scan: nmap -sV -p- alone, ${nmapHosts} hosts: ${s(b1.ms)}, scaled to ${hosts} hosts: ${s(bScaled)}; missed vs lab: ${missed(b1.found, subset)}`);
    console.log(`scan: ratio nmap-alone / masscan+nmap = ${(bScaled / aMs).toFixed(1)}x (goal >= 10x; nmap-alone scaled from ${nmapHosts} hosts); open-port sets identical on the ${nmapHosts} shared hosts: ${identicalA}`);

    // B. connect sweep + nmap -sV on open ports, versus nmap -sT -sV -p- alone.
    const few = busiest.slice(0, connectHosts);
    t = performance.now();
    const c = await runConnectSweep({ targets: few, ports, allow, concurrency: 512, timeoutMs: 1500, retries: 1 });
    const cPre = performance.now() - t;
    const a2 = await detect(new Map(few.map((ip) => [ip, c.open.get(ip) ?? []])));
    const a2Ms = performance.now() - t;
    const b2 = await alone(few, true);
    const identicalB = same(a2.found, b2.found, few);
    console.log(`scan: connect sweep (512 in flight) + nmap -sV on open ports, ${connectHosts} hosts: ${s(a2Ms)} (sweep ${s(cPre)}, nmap ${s(a2.ms)}); nmap -sT -sV -p- alone: ${s(b2.ms)}; ratio ${(b2.ms / a2Ms).toFixed(1)}x; open-port sets identical: ${identicalB}`);
    if (!identicalA || !identicalB) console.log(`scan: WARNING: open-port sets differ (masscan missed ${missed(a1.found, subset)} on the shared hosts, connect sweep missed ${missed(a2.found, few)}; packet loss under load?)`);
  } finally {
    await labDown();
  }
}
