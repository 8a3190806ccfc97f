import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MASSCAN_BLIND_MS, MasscanBlindHosts, masscanWasBlind, type ScanConfig, ScanPipeline, sightCheckPorts } from '../../agent/index.js';
import type { ResultSubmission, WorkItem } from '../../src/protocol/index.js';
import { listenLoopback } from '../helpers/net.js';
import { installStandIns, MASSCAN_REPORTING_STANDIN, standInScanConfig } from '../helpers/stand-ins.js';
import { workItem } from '../helpers/work-item.js';

describe('MasscanBlindHosts', () => {
  test('a run is blind on a host only when it saw nothing there and every known port it probed answers a connect', () => {
    expect(masscanWasBlind({ known: 2, missed: 2, saw: 0 })).toBe(true);
    expect(masscanWasBlind({ known: 1, missed: 1, saw: 0 })).toBe(true);
    // Saw one of them, or another port: it reaches the host; the misses are the rate control's.
    expect(masscanWasBlind({ known: 2, missed: 1, saw: 1 })).toBe(false);
    expect(masscanWasBlind({ known: 1, missed: 1, saw: 1 })).toBe(false);
    // Nothing known open answers now: nothing says masscan is blind (the host may be down).
    expect(masscanWasBlind({ known: 0, missed: 0, saw: 0 })).toBe(false);
  });

  test("a sight check takes a round's most frequent ports by nmap's table, then the others in order", () => {
    const byFrequency = [80, 23, 443, 21, 22];
    expect(sightCheckPorts([1, 22, 443, 9000, 80], 3, byFrequency)).toEqual([80, 443, 22]);
    // Fewer of the table's ports than asked for: the round's others fill up, in their order.
    expect(sightCheckPorts([1, 9000, 22, 7], 3, byFrequency)).toEqual([22, 1, 9000]);
    expect(sightCheckPorts([5, 6, 7], 2, undefined)).toEqual([5, 6]);
    expect(sightCheckPorts([5, 6], 8, byFrequency)).toEqual([5, 6]);
    expect(sightCheckPorts([5, 6], 0, byFrequency)).toEqual([]);
    // The coordinator's likely ports first (the strategy's order); ports outside the round never.
    expect(sightCheckPorts([1, 22, 443, 9000, 80], 3, byFrequency, [9000, 7, 1])).toEqual([9000, 1, 80]);
  });

  test('remembers a host for its memory, then forgets it; the oldest go first past 65,536', () => {
    const hosts = new MasscanBlindHosts(1000);
    hosts.mark('198.18.0.1', 5000);
    expect(hosts.has('198.18.0.1', 5999)).toBe(true);
    expect(hosts.has('198.18.0.1', 6000)).toBe(false);
    expect(hosts.has('198.18.0.2', 5000)).toBe(false);
    for (let i = 0; i <= 65_536; i++) hosts.mark(`198.18.${i >> 8}.${i & 255}`, 0);
    expect(hosts.size).toBe(65_536);
    expect(hosts.has('198.18.0.0', 0)).toBe(false);
    expect(hosts.has('198.18.1.0', 0)).toBe(true);
  });
});

/**
 * A host behind a firewall that drops masscan's SYNs: a stand-in masscan (sends nothing) reports
 * only the ports in $PB_STANDIN_MASSCAN_OPEN and records its argv; real listeners on loopback
 * stand for the host's services, which a kernel connect reaches. No nmap (the ports' states are
 * what this is about).
 */
describe('a host masscan cannot see goes to the connect sweep', () => {
  let standIns: ReturnType<typeof installStandIns>;
  let listeners: Awaited<ReturnType<typeof listenLoopback>>;
  let argvLog = '';

  beforeAll(async () => {
    listeners = await listenLoopback(4);
    standIns = installStandIns(
      'pb-masscan-blind-',
      {
        masscan: MASSCAN_REPORTING_STANDIN,
      },
      (dir) => ({ PB_STANDIN_LOG: (argvLog = join(dir, 'argv.ndjson')), PB_STANDIN_MASSCAN_OPEN: '[]' }),
    );
  });
  afterAll(async () => {
    standIns?.restore();
    await listeners?.close();
  });

  const masscanRuns = (): number => (existsSync(argvLog) ? readFileSync(argvLog, 'utf8').trim().split('\n').filter(Boolean).length : 0);
  const config = (logs: string[]): ScanConfig => ({
    ...standInScanConfig((l) => logs.push(l), 40_000),
    tools: { nmap: null, masscan: 'masscan', rawSockets: true },
  });
  const item = (ports: number[], verify: number[]): WorkItem =>
    workItem({ ip: '127.0.0.1', ports, verify, scan: { preflight: 'masscan', versionDetection: false } });
  async function scan(pipeline: ScanPipeline, work: WorkItem): Promise<ResultSubmission> {
    const got: ResultSubmission[] = [];
    await pipeline.scan([work], (o) => {
      if (o.kind === 'result') got.push(o.submission);
      else throw new Error(o.reason);
    });
    return got[0]!;
  }
  const openIn = (r: ResultSubmission) => r.ports.filter((p) => p.state === 'open').map((p) => p.port);
  const closed = [1, 2, 3];

  test("masscan sees nothing, the port known open answers a connect: the round's other ports are swept by connect, and the host's next round too", async () => {
    // Arrange: `known` and `known2` were open at the last visit; `fresh` opened since; `later` is only in the next round.
    const [known, known2, fresh, later] = listeners.ports as [number, number, number, number];
    process.env.PB_STANDIN_MASSCAN_OPEN = '[]';
    const logs: string[] = [];
    const pipeline = new ScanPipeline(config(logs));
    const runsBefore = masscanRuns();

    // Act: the first look (known port in verify), then the visit's next round (none known).
    const first = await scan(
      pipeline,
      item(
        [...closed, known, known2, fresh].sort((a, b) => a - b),
        [known, known2].sort((a, b) => a - b),
      ),
    );
    const runsAfterFirst = masscanRuns();
    const next = await scan(pipeline, item([...closed, later], []));

    // Assert: the new service was found by the connect sweep; the result says which preflight's
    // observations it holds; masscan did not run for the next round, which found `later`.
    expect(openIn(first), logs.join('\n')).toEqual([known, known2, fresh].sort((a, b) => a - b));
    expect(first.preflight).toBe('connect');
    expect(first.unknownPorts).toBeUndefined();
    expect(logs).toContain(
      `agent: 127.0.0.1: masscan saw none of its port(s) known open that answer a connect (a firewall that drops masscan's probes, or lost packets): 4 more port(s) of this round go to the connect sweep, and so does this host's preflight for ${MASSCAN_BLIND_MS / 60_000} min`,
    );
    expect(runsAfterFirst).toBe(runsBefore + 1);
    expect(masscanRuns()).toBe(runsAfterFirst);
    expect(openIn(next)).toEqual([later]);
    expect(next.preflight).toBe('connect');
  });

  test("nothing known open, masscan sees nothing: a sight check's connect finds a service, and the round's other ports and the host's next round are swept by connect", async () => {
    // Arrange: the host had nothing open at its last visit (no `verify`); `fresh` listens now.
    const [fresh, later] = listeners.ports as [number, number];
    process.env.PB_STANDIN_MASSCAN_OPEN = '[]';
    const logs: string[] = [];
    const pipeline = new ScanPipeline(config(logs));
    const runsBefore = masscanRuns();

    // Act: the visit's first round, then its next round.
    const first = await scan(pipeline, item([...closed, fresh], []));
    const next = await scan(pipeline, { ...item([...closed, later], []), round: 1 });

    // Assert: found, by the connect sweep, and said why; masscan ran for the first round only.
    expect(openIn(first), logs.join('\n')).toEqual([fresh]);
    expect(first.preflight).toBe('connect');
    expect(first.unknownPorts).toBeUndefined();
    expect(logs).toContain(
      `agent: 127.0.0.1: masscan saw nothing of the host, yet a sight check's connect found port(s) ${fresh} open (a firewall that drops masscan's probes, or lost packets): 3 more port(s) of this round go to the connect sweep, and so does this host's preflight for ${MASSCAN_BLIND_MS / 60_000} min`,
    );
    expect(masscanRuns()).toBe(runsBefore + 1);
    expect(openIn(next)).toEqual([later]);
    expect(next.preflight).toBe('connect');
  });

  test("the sight check tries the coordinator's likely ports first: a service on a port nmap does not rank is found", async () => {
    const [fresh] = listeners.ports as [number];
    process.env.PB_STANDIN_MASSCAN_OPEN = '[]';
    const logs: string[] = [];
    // Twenty other ports: by nmap's table and the round's order alone, `fresh` is not among the 8 tried.
    const ports = [...Array.from({ length: 20 }, (_, i) => i + 1), fresh];
    const without = await scan(new ScanPipeline(config(logs)), item(ports, []));
    const withLikely = await scan(new ScanPipeline(config(logs)), { ...item(ports, []), likely: [fresh, 22] });

    expect(openIn(without)).toEqual([]);
    expect(without.preflight).toBe('masscan');
    expect(openIn(withLikely), logs.join('\n')).toEqual([fresh]);
    expect(withLikely.preflight).toBe('connect');
  });

  test("no sight check where it cannot tell: nothing answers, a later round, a silent round, or --masscan-sight-check 0; masscan's view stands", async () => {
    const [a, b, c] = listeners.ports as [number, number, number];
    process.env.PB_STANDIN_MASSCAN_OPEN = '[]';
    const logs: string[] = [];
    const runsBefore = masscanRuns();

    // Nothing listens on the ports: checked, nothing found, masscan stays.
    const down = await scan(new ScanPipeline(config(logs)), item([...closed, 4], []));
    // A listener, but a round of the visit after the first, a silent one, or the check off: not checked.
    const later = await scan(new ScanPipeline(config(logs)), { ...item([...closed, a], []), round: 1 });
    const silent = await scan(new ScanPipeline(config(logs)), { ...item([...closed, b], []), silent: true });
    const off = await scan(new ScanPipeline({ ...config(logs), masscanSightCheck: 0 }), item([...closed, c], []));

    for (const r of [down, later, silent, off]) {
      expect(openIn(r)).toEqual([]);
      expect(r.preflight).toBe('masscan');
    }
    expect(masscanRuns()).toBe(runsBefore + 4);
    expect(logs.filter((l) => l.includes('masscan saw'))).toEqual([]);
  });

  test('masscan sees one of the ports, or the port known open is gone: masscan stays the preflight, its view stands', async () => {
    const [known, fresh] = listeners.ports as [number, number];
    const logs: string[] = [];

    // Arrange: masscan sees `known` (it reaches the host); `fresh` is not in its report.
    process.env.PB_STANDIN_MASSCAN_OPEN = JSON.stringify([known]);
    const seeing = await scan(
      new ScanPipeline(config(logs)),
      item(
        [...closed, known, fresh].sort((a, b) => a - b),
        [known],
      ),
    );
    // Arrange: masscan sees nothing, and the port known open is closed now (port 4, no listener).
    process.env.PB_STANDIN_MASSCAN_OPEN = '[]';
    const gone = await scan(
      new ScanPipeline(config(logs)),
      item(
        [...closed, 4, fresh].sort((a, b) => a - b),
        [4],
      ),
    );

    expect(openIn(seeing)).toEqual([known]);
    expect(seeing.preflight).toBe('masscan');
    expect(openIn(gone)).toEqual([]);
    expect(gone.preflight).toBe('masscan');
    expect(logs.filter((l) => l.includes('masscan saw none'))).toEqual([]);
  });
});
