import { loadavg } from 'node:os';
import { AllowList, DETECTION_DEFAULTS, detectScannerTools, detectServices, runConnectSweep, runMasscan, runNmap } from '../agent/index.js';
import { type LabClosedPolicy, type LabState, labDown, labUnavailableReason, labUp, parseClosedPolicy } from '../src/lab/index.js';

/**
 * Scan benchmark on the lab (root only): the same hosts and all 65,535 TCP ports, under two
 * conditions of the lab (`lab up --closed`):
 *   reject: unserved ports answer RST, nmap's best case (an unfiltered host);
 *   drop:   unserved ports stay silent, as behind the host firewalls of most real scopes, where
 *           `nmap -p-` has to wait out timeouts and retransmissions and a stateless sweep does not.
 * In each condition, in the same run:
 *   A. masscan preflight + `nmap -sV` on the open ports only, versus `nmap -sV -p-` alone;
 *   B. the Node TCP connect sweep + `nmap -sV` on the open ports, versus `nmap -sT -sV -p-` alone;
 * with the open-port sets of each pair compared (and compared with what the lab serves). Every
 * nmap run uses the same flags (-T4, --version-intensity 2) so the -sV part costs the same. The
 * preflight side runs -sV as the agent does (`detectServices`: each host on its own open ports,
 * one nmap process per open-port set, several at once); since that parallelism is the agent's,
 * nmap alone is also measured with every host in one host group (`--min-hostgroup`), its best case.
 *
 * `nmap -p-` alone over 16 hosts takes many minutes when ports are filtered, so it runs on a
 * subset of 8 hosts: nmap -T4 with more than 1,000 ports scans its first group of 8 hosts, then
 * the rest (`nmap -v` says "Scanning 8 hosts" twice for this lab), so 16 hosts take about two
 * 8-host groups. Both the measured same-subset ratio and the 16-host estimate are printed.
 * Sizes by env: PB_BENCH_SCAN_CLOSED (reject,drop), PB_BENCH_SCAN_HOSTS (16),
 * PB_BENCH_SCAN_NMAP_HOSTS (8), PB_BENCH_SCAN_CONNECT_HOSTS (2), PB_BENCH_SCAN_RATE_REJECT
 * (10000), PB_BENCH_SCAN_RATE_DROP (100000), PB_BENCH_SCAN_RETRIES (1),
 * PB_BENCH_SCAN_CONNECT_CONCURRENCY (2048), PB_BENCH_SCAN_CONNECT_TIMEOUT_MS (500),
 * PB_BENCH_SCAN_PORTS (65535: ports 1..N), PB_BENCH_SCAN_GROUPED (1: also nmap alone on all hosts
 * in one host group, measured; 0 to skip).
 */
export async function runScanBenchmark(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const reason = (await labUnavailableReason()) ?? null;
  const tools = await detectScannerTools();
  if (reason || !tools.nmap || !tools.masscan) {
    console.log(`scan: skipped (${reason ?? 'nmap and masscan are needed: apt-get install nmap masscan'})`);
    return;
  }
  const conditions = (env.PB_BENCH_SCAN_CLOSED ?? 'reject,drop').split(',').map((c) => parseClosedPolicy(c.trim(), 'PB_BENCH_SCAN_CLOSED'));
  const summary: string[] = [];
  for (const closed of conditions) summary.push(...(await runCondition(closed, env)));
  console.log('scan: summary');
  for (const line of summary) console.log(`scan:   ${line}`);
}

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const x = (r: number) => `${r.toFixed(1)}x`;

/** One lab condition: returns its summary lines. */
async function runCondition(closed: LabClosedPolicy, env: NodeJS.ProcessEnv): Promise<string[]> {
  const hosts = Number(env.PB_BENCH_SCAN_HOSTS ?? 16);
  const nmapHosts = Math.min(hosts, Number(env.PB_BENCH_SCAN_NMAP_HOSTS ?? 8));
  const connectHosts = Math.min(nmapHosts, Number(env.PB_BENCH_SCAN_CONNECT_HOSTS ?? 2));
  // The operator's knob, per network: on this lab, with an RST for every closed port, masscan's
  // capture lost 2-6 of 57 answers at 30,000-200,000 pps on the shared 2-core machine (0-1 at
  // 10,000); with silent closed ports 100,000 lost none.
  const rate = Number(
    (closed === 'drop' ? env.PB_BENCH_SCAN_RATE_DROP : env.PB_BENCH_SCAN_RATE_REJECT) ?? (closed === 'drop' ? 100_000 : 10_000),
  );
  const retries = Number(env.PB_BENCH_SCAN_RETRIES ?? 1);
  const connectConcurrency = Number(env.PB_BENCH_SCAN_CONNECT_CONCURRENCY ?? 2048);
  const connectTimeoutMs = Number(env.PB_BENCH_SCAN_CONNECT_TIMEOUT_MS ?? 500);
  const portCount = Number(env.PB_BENCH_SCAN_PORTS ?? 65_535);
  const grouped = (env.PB_BENCH_SCAN_GROUPED ?? '1') !== '0';
  const ports = Array.from({ length: portCount }, (_, i) => i + 1);
  const allow = AllowList.parse(['198.18.0.0/15']);
  const timing = ['-T4', '--version-intensity', '2'];
  const tag = `scan[${closed}]`;
  const log = (line: string) => process.stderr.write(`${tag}: ${line}\n`);
  let state: LabState;
  try {
    state = await labUp({ hosts, profile: 'enterprise', seed: 'bench-scan', epochs: 1, maxPortsPerHost: 8, closed, log });
  } catch (error) {
    console.log(`${tag}: skipped (lab: ${(error as Error).message})`);
    await labDown();
    return [`${closed}: skipped`];
  }
  try {
    const truth = new Map(
      state.hosts.map((h) => [
        h.ip,
        h.services
          .map((v) => v.port)
          .filter((p) => p <= portCount)
          .sort((a, b) => a - b),
      ]),
    );
    const all = state.hosts.map((h) => h.ip);
    // The nmap-alone subset: every other host by number of open ports, so it holds about half of
    // the lab's open ports (the -sV work) and its time doubles fairly to 16 hosts.
    const byOpen = [...all].sort((a, b) => truth.get(b)!.length - truth.get(a)!.length);
    const subset = byOpen
      .filter((_, i) => i % 2 === 0)
      .concat(byOpen.filter((_, i) => i % 2 === 1))
      .slice(0, nmapHosts);
    // The connect pair: the subset's busiest hosts (a host with nothing open makes -sV free).
    const few = [...subset].sort((a, b) => truth.get(b)!.length - truth.get(a)!.length).slice(0, connectHosts);
    const openCount = (ips: string[]) => ips.reduce((n, ip) => n + truth.get(ip)!.length, 0);
    console.log(
      `${tag}: lab of ${hosts} hosts, ${openCount(all)} open ports, ${portCount} ports probed per host; closed ports ${closed === 'drop' ? 'silently dropped (nftables)' : 'answer RST'}; load average ${loadavg()[0]!.toFixed(1)} on this shared 2-core machine`,
    );

    /** nmap -sV on each host's open ports, as the agent runs it (one process per open-port set, several at once). */
    const detect = async (open: Map<string, number[]>) => {
      const t0 = performance.now();
      const d = await detectServices(open, {
        allow,
        versionDetection: true,
        scripts: [],
        scriptsAllow: new Set(),
        timing,
        hostTimeoutSeconds: 1800,
        parallel: DETECTION_DEFAULTS.parallel,
        hostsPerRun: DETECTION_DEFAULTS.hostsPerRun,
      });
      const found = new Map([...d].map(([ip, h]) => [ip, h.ports.filter((p) => p.state === 'open').map((p) => p.port)]));
      return { ms: d.size > 0 ? performance.now() - t0 : 0, found };
    };
    const alone = async (targets: string[], connectScan: boolean, oneGroup = false) => {
      const r = await runNmap({
        targets,
        ports,
        allow,
        timing: oneGroup ? [...timing, '--min-hostgroup', String(targets.length)] : timing,
        connectScan,
        hostTimeoutSeconds: 7200,
        timeoutMs: 4 * 3600_000,
      });
      return {
        ms: r.durationMs,
        found: new Map(r.run.hosts.map((h) => [h.ip, h.ports.filter((p) => p.state === 'open').map((p) => p.port)])),
      };
    };
    const masscanThenNmap = async (targets: string[]) => {
      const t = performance.now();
      const m = await runMasscan({ targets, ports, allow, rate, retries, waitSeconds: 2 });
      const preMs = performance.now() - t;
      const d = await detect(new Map(targets.map((ip) => [ip, m.open.get(ip) ?? []])));
      return { ms: performance.now() - t, preMs, nmapMs: d.ms, found: d.found };
    };
    const same = (a: Map<string, number[]>, b: Map<string, number[]>, ips: string[]) =>
      ips.every((ip) => JSON.stringify(a.get(ip) ?? []) === JSON.stringify(b.get(ip) ?? []));
    const missed = (found: Map<string, number[]>, ips: string[]) =>
      ips.reduce((n, ip) => n + truth.get(ip)!.filter((p) => !(found.get(ip) ?? []).includes(p)).length, 0);
    const lines: string[] = [];

    // A. masscan + nmap -sV on open ports, versus nmap -sV -p- alone.
    const a16 = await masscanThenNmap(all);
    log(
      `masscan ${s(a16.preMs)} + nmap -sV ${s(a16.nmapMs)} on ${hosts} hosts; now the same on the ${nmapHosts}-host subset, then nmap -sV -p- alone on it`,
    );
    const a8 = await masscanThenNmap(subset);
    const b8 = await alone(subset, false);
    const identicalA = same(a8.found, b8.found, subset) && same(a16.found, b8.found, subset);
    const estimate16 = (b8.ms * hosts) / nmapHosts;
    const masscanFlags = `${rate} pps, ${retries} ${retries === 1 ? 'retry' : 'retries'}`;
    console.log(
      `${tag}: A  masscan (${masscanFlags}) + nmap -sV on open ports, all ${hosts} hosts: ${s(a16.ms)} (masscan ${s(a16.preMs)}, nmap ${s(a16.nmapMs)}); missed vs lab: ${missed(a16.found, all)} of ${openCount(all)}`,
    );
    console.log(
      `${tag}: A  same ${nmapHosts} hosts, measured: masscan + nmap -sV ${s(a8.ms)} vs nmap -sV -p- alone ${s(b8.ms)}: ratio ${x(b8.ms / a8.ms)}; missed vs lab: ${missed(a8.found, subset)} and ${missed(b8.found, subset)} of ${openCount(subset)}; open-port sets identical: ${identicalA}`,
    );
    console.log(
      `${tag}: A  ${hosts} hosts: nmap -sV -p- alone estimated ${s(estimate16)} (${hosts / nmapHosts} x the ${nmapHosts}-host run${nmapHosts === 8 ? ': nmap -T4 -p- scans hosts in groups of 8' : ', scaled linearly'}) vs masscan + nmap measured ${s(a16.ms)}: ratio ${x(estimate16 / a16.ms)} (goal >= 10x)`,
    );
    if (grouped) {
      // nmap alone given the agent's parallelism: all hosts in one host group (--min-hostgroup),
      // as a Natlas-style fleet of per-host nmap processes would scan them; measured, no estimate.
      log(`nmap -sV -p- alone on all ${hosts} hosts in one host group`);
      const g = await alone(all, false, true);
      const identicalG = same(a16.found, g.found, all);
      console.log(
        `${tag}: A  ${hosts} hosts, measured: nmap -sV -p- --min-hostgroup ${hosts} alone ${s(g.ms)} vs masscan + nmap ${s(a16.ms)}: ratio ${x(g.ms / a16.ms)}; missed vs lab: ${missed(g.found, all)} of ${openCount(all)}; open-port sets identical: ${identicalG}`,
      );
      lines.push(
        `${closed}: masscan+nmap vs nmap -sV -p- alone with all ${hosts} hosts in one group: ${x(g.ms / a16.ms)} (${s(a16.ms)} vs ${s(g.ms)}, both measured); identical sets: ${identicalG}`,
      );
    }
    lines.push(
      `${closed}: masscan+nmap vs nmap -sV -p- alone: ${x(b8.ms / a8.ms)} measured on ${nmapHosts} hosts (${s(a8.ms)} vs ${s(b8.ms)}), ${x(estimate16 / a16.ms)} on ${hosts} hosts (${s(a16.ms)} vs ~${s(estimate16)} estimated); masscan ${masscanFlags}; identical sets: ${identicalA}; masscan + nmap missed ${missed(a16.found, all)} of ${openCount(all)} on all ${hosts}`,
    );

    // B. connect sweep + nmap -sV on open ports, versus nmap -sT -sV -p- alone.
    const t = performance.now();
    const c = await runConnectSweep({ targets: few, ports, allow, concurrency: connectConcurrency, timeoutMs: connectTimeoutMs, retries });
    const cPre = performance.now() - t;
    const a2 = await detect(new Map(few.map((ip) => [ip, c.open.get(ip) ?? []])));
    const a2Ms = performance.now() - t;
    const b2 = await alone(few, true);
    const identicalB = same(a2.found, b2.found, few);
    console.log(
      `${tag}: B  connect sweep (${connectConcurrency} in flight, ${connectTimeoutMs} ms timeout, ${retries} ${retries === 1 ? 'retry' : 'retries'}) + nmap -sV on open ports, ${connectHosts} hosts: ${s(a2Ms)} (sweep ${s(cPre)}, nmap ${s(a2.ms)}); nmap -sT -sV -p- alone: ${s(b2.ms)}; ratio ${x(b2.ms / a2Ms)}; missed vs lab: ${missed(a2.found, few)} and ${missed(b2.found, few)} of ${openCount(few)}; open-port sets identical: ${identicalB}`,
    );
    lines.push(
      `${closed}: connect sweep+nmap vs nmap -sT -sV -p- alone, ${connectHosts} hosts: ${x(b2.ms / a2Ms)} (${s(a2Ms)} vs ${s(b2.ms)}); identical sets: ${identicalB}`,
    );
    if (!identicalA || !identicalB) {
      console.log(
        `${tag}: WARNING: open-port sets differ (masscan missed ${missed(a8.found, subset)} on the subset, nmap alone ${missed(b8.found, subset)}, connect sweep ${missed(a2.found, few)}; packet loss under load?)`,
      );
    }
    return lines;
  } finally {
    await labDown();
  }
}
