import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { loadNmapServices } from '../../src/catalog/index.js';
import { isPortbanditError } from '../../src/core/errors.js';
import { formatObservation, loadRecording, type Observation } from '../../src/recording/index.js';
import {
  generateObservations,
  generateRecording,
  profileNames,
  scopeHeader,
  writeGeneratedScope,
  type GenerateOptions,
  type ProfileName,
} from '../../simulator/synthetic/index.js';

const catalog = loadNmapServices();
const dir = mkdtempSync(join(tmpdir(), 'pb-synthetic-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** 198.18.0.0/15 as integers. */
const NET_START = 198 * 2 ** 24 + 18 * 2 ** 16;
const NET_END = NET_START + 2 ** 17 - 1;

function ipToInt(ip: string): number {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4) return NaN;
  return ((parts[0]! * 256 + parts[1]!) * 256 + parts[2]!) * 256 + parts[3]!;
}

/** Observations grouped as [epoch][host index]. */
function byEpoch(options: GenerateOptions): Observation[][] {
  const out: Observation[][] = [];
  for (const o of generateObservations(options, catalog)) (out[o.epoch] ??= []).push(o);
  return out;
}

describe('synthetic scope determinism', () => {
  it('writes the same bytes for the same seed and different bytes for another seed', async () => {
    const options = { profile: 'enterprise', hosts: 700, epochs: 4, seed: 'abc' } as const;
    const a = join(dir, 'a.ndjson');
    const b = join(dir, 'b.ndjson');
    const c = join(dir, 'c.ndjson');
    await writeGeneratedScope(options, a, undefined, catalog);
    await writeGeneratedScope(options, b, undefined, catalog);
    await writeGeneratedScope({ ...options, seed: 'abd' }, c, undefined, catalog);
    const bytesA = readFileSync(a);
    expect(bytesA.length).toBeGreaterThan(10_000);
    expect(bytesA.equals(readFileSync(b))).toBe(true);
    expect(bytesA.equals(readFileSync(c))).toBe(false);
  });

  it('streams the same lines generateObservations yields, and the file loads as a recording', async () => {
    const options = { profile: 'datacenter', hosts: 300, epochs: 3, seed: 9 } as const;
    const path = join(dir, 'dc.ndjson');
    const written = await writeGeneratedScope(options, path, undefined, catalog);
    expect(written.lines).toBe(1 + 300 * 3);
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
    expect(lines.slice(1)).toEqual([...generateObservations(options, catalog)].map(formatObservation));
    const rec = await loadRecording(path);
    expect(rec.size).toBe(900);
    expect(rec.epochs).toBe(3);
    expect(rec.probed.isAll).toBe(true);
    expect(rec.header.source).toMatchObject({ profile: 'datacenter', seed: '9', hosts: 300, epochs: 3, generatorVersion: 1 });
  });

  it('gives a host the same services whatever the scope size (per-host derived RNGs)', () => {
    const small = byEpoch({ profile: 'enterprise', hosts: 600, epochs: 3, seed: 5 });
    const large = byEpoch({ profile: 'enterprise', hosts: 1500, epochs: 3, seed: 5 });
    const smallRollout = scopeHeader({ profile: 'enterprise', hosts: 600, epochs: 3, seed: 5 }, catalog).source!.rollout as {
      subnet: string;
    };
    const largeRollout = scopeHeader({ profile: 'enterprise', hosts: 1500, epochs: 3, seed: 5 }, catalog).source!.rollout as {
      subnet: string;
    };
    let compared = 0;
    for (let e = 0; e < 3; e++) {
      for (let h = 0; h < 600; h++) {
        const ip = small[e]![h]!.ip;
        const subnet = `${ip.split('.').slice(0, 3).join('.')}.0/24`;
        // Only the rollout's choice of subnet depends on the scope size.
        if (subnet === smallRollout.subnet || subnet === largeRollout.subnet) continue;
        expect(large[e]![h]).toEqual(small[e]![h]);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(600);
  });

  it('keeps the first epochs when more epochs are asked for (up to the earlier rollout)', () => {
    const short = byEpoch({ profile: 'enterprise', hosts: 400, epochs: 4, seed: 2 });
    const long = byEpoch({ profile: 'enterprise', hosts: 400, epochs: 10, seed: 2 });
    // The 4-epoch scope rolls out at epoch 2: epochs 0 and 1 must be identical.
    expect(long[0]).toEqual(short[0]);
    expect(long[1]).toEqual(short[1]);
  });

  test.prop(
    {
      profile: fc.constantFrom(...profileNames),
      hosts: fc.integer({ min: 1, max: 700 }),
      epochs: fc.integer({ min: 1, max: 5 }),
      seed: fc.string({ minLength: 1, maxLength: 8 }),
    },
    { numRuns: 15 },
  )('every observation is well formed, in 198.18.0.0/15, one per host per epoch', ({ profile, hosts, epochs, seed }) => {
    const seen = new Set<string>();
    const problems: string[] = [];
    let count = 0;
    let lastEpoch = 0;
    for (const o of generateObservations({ profile, hosts, epochs, seed }, catalog)) {
      count++;
      if (o.epoch < lastEpoch || o.epoch >= epochs) problems.push(`epoch ${o.epoch} out of order or range`);
      lastEpoch = o.epoch;
      const n = ipToInt(o.ip);
      if (!(n >= NET_START && n <= NET_END && n - NET_START < hosts)) problems.push(`address ${o.ip} outside the scope`);
      const key = `${o.epoch}/${o.ip}`;
      if (seen.has(key)) problems.push(`${key} twice`);
      seen.add(key);
      if (o.tags.length !== 1) problems.push(`${key}: tags ${JSON.stringify(o.tags)}`);
      for (let i = 0; i < o.open.length; i++) {
        const p = o.open[i]!;
        if (!(Number.isInteger(p) && p >= 1 && p <= 65535) || (i > 0 && p <= o.open[i - 1]!)) problems.push(`${key}: open[${i}] = ${p}`);
      }
    }
    expect(problems.slice(0, 5)).toEqual([]);
    expect(count).toBe(hosts * epochs);
  });
});

describe('synthetic scope bounds', () => {
  it('fills exactly 198.18.0.0/15 with 131072 hosts and refuses one more', () => {
    let first = '';
    let last = '';
    let count = 0;
    let outside = 0;
    for (const o of generateObservations({ profile: 'internet', hosts: 131072, epochs: 1, seed: 1 }, catalog)) {
      if (count === 0) first = o.ip;
      last = o.ip;
      const n = ipToInt(o.ip);
      if (n < NET_START || n > NET_END) outside++;
      count++;
    }
    expect(count).toBe(131072);
    expect(outside).toBe(0);
    expect(first).toBe('198.18.0.0');
    expect(last).toBe('198.19.255.255');
    expect(() => [...generateObservations({ hosts: 131073, epochs: 1, seed: 1 }, catalog)]).toThrow(/198\.18\.0\.0\/15/);
  });

  it('names the known profiles when the profile is unknown', () => {
    let error: unknown;
    try {
      scopeHeader({ profile: 'intranet', hosts: 10, epochs: 1, seed: 1 }, catalog);
    } catch (e) {
      error = e;
    }
    expect(isPortbanditError(error, 'PB_ERR_UNKNOWN_PROFILE')).toBe(true);
    expect((error as Error).message).toContain('enterprise');
    expect((error as Error).message).toContain('longtail');
  });

  it('rejects a non-integer epoch count and an empty seed', () => {
    expect(() => scopeHeader({ hosts: 10, epochs: 1.5, seed: 1 }, catalog)).toThrow(/epochs/);
    expect(() => scopeHeader({ hosts: 10, epochs: 0, seed: 1 }, catalog)).toThrow(/epochs/);
    expect(() => scopeHeader({ hosts: 10, epochs: 2, seed: '' }, catalog)).toThrow(/seed/);
  });

  it('builds an in-memory recording with every host-epoch', () => {
    const rec = generateRecording({ profile: 'iot', hosts: 300, epochs: 2, seed: 4 }, catalog);
    expect(rec.size).toBe(600);
    expect(rec.hostIp).toHaveLength(300);
    expect(rec.tagSets.some((t) => t.includes('iot'))).toBe(true);
  });
});

/** Epoch-0 statistics of a profile: responsive non-pseudo hosts and where their services sit. */
function epochZeroStats(profile: ProfileName, hosts: number, seed: number) {
  const top100 = new Set(catalog.top(100));
  const top1000 = new Set(catalog.top(1000));
  let live = 0;
  let single = 0;
  let services = 0;
  let inTop100 = 0;
  let inTop1000 = 0;
  let pseudoHosts = 0;
  let pseudoServices = 0;
  for (const o of generateObservations({ profile, hosts, epochs: 1, seed }, catalog)) {
    const n = o.open.length;
    if (n > 1000) {
      pseudoHosts++;
      pseudoServices += n;
      continue;
    }
    if (n === 0) continue;
    live++;
    if (n === 1) single++;
    services += n;
    for (const p of o.open) {
      if (top100.has(p)) inTop100++;
      if (top1000.has(p)) inTop1000++;
    }
  }
  return {
    live,
    singleShare: single / live,
    top100Share: inTop100 / services,
    top1000Share: inTop1000 / services,
    pseudoHosts,
    pseudoRawShare: pseudoServices / (pseudoServices + services),
  };
}

describe('calibration of the internet profile (research.md figures)', () => {
  // 4000 hosts: ~2,800 responsive hosts, ~6,000 services. The generator draws a host's ports
  // without replacement, which pulls the top-100 share ~1.5 points under nmap's 78.25%.
  const stats = epochZeroStats('internet', 4000, 11);

  it("puts 78% of services on nmap's top 100 ports, within 3.5 points", () => {
    expect(catalog.topShare(100)).toBeCloseTo(0.7825, 2);
    expect(Math.abs(stats.top100Share - 0.78)).toBeLessThan(0.035);
    expect(Math.abs(stats.top1000Share - 0.93)).toBeLessThan(0.03);
  });

  it('gives 60% of responsive hosts exactly one open port, within 4 points', () => {
    expect(stats.live).toBeGreaterThan(2500);
    expect(Math.abs(stats.singleShare - 0.6)).toBeLessThan(0.04);
  });

  it('has pseudo-service hosts holding roughly 40% of raw responses', () => {
    expect(stats.pseudoHosts).toBe(4);
    expect(stats.pseudoRawShare).toBeGreaterThan(0.3);
    expect(stats.pseudoRawShare).toBeLessThan(0.55);
  });
});

describe('the hard cases of the enterprise profile', () => {
  const hosts = 2048;
  const epochs = 6;
  const options = { profile: 'enterprise', hosts, epochs, seed: 21 } as const;
  const obs = byEpoch(options);
  const rollout = scopeHeader(options, catalog).source!.rollout as { port: number; subnet: string; epoch: number };
  const pseudo = new Set(obs[0]!.filter((o) => o.open.length > 1000).map((o) => o.ip));
  const subnetOf = (ip: string): string => `${ip.split('.').slice(0, 3).join('.')}.0/24`;

  it('has pseudo-service hosts answering on more than 1000 ports, every epoch', () => {
    expect(pseudo.size).toBeGreaterThanOrEqual(3);
    for (const e of obs) for (const o of e) if (pseudo.has(o.ip)) expect(o.open.length).toBeGreaterThan(1000);
  });

  it('has dead hosts with nothing open in any epoch', () => {
    const dead = obs[0]!.map((_, h) => h).filter((h) => obs.every((e) => e[h]!.open.length === 0));
    expect(dead.length / hosts).toBeGreaterThan(0.15);
    expect(dead.length / hosts).toBeLessThan(0.35);
  });

  it('has a /24 whose own port, outside nmap top 1000, is open on most of its live hosts', () => {
    const top1000 = new Set(catalog.top(1000));
    let found = 0;
    for (let s = 0; s < hosts / 256; s++) {
      const subnet = obs[0]!.slice(s * 256, s * 256 + 256).filter((o) => o.open.length > 0 && o.open.length <= 1000);
      const counts = new Map<number, number>();
      for (const o of subnet) for (const p of o.open) if (!top1000.has(p) && p !== rollout.port) counts.set(p, (counts.get(p) ?? 0) + 1);
      if ([...counts.values()].some((c) => c >= subnet.length * 0.6)) found++;
    }
    expect(found).toBeGreaterThanOrEqual(2);
  });

  it('rolls a new port out to a whole /24 at epoch floor(E/2), absent everywhere before', () => {
    expect(rollout.epoch).toBe(Math.floor(epochs / 2));
    expect(rollout.subnet).toMatch(/^198\.1[89]\.\d+\.0\/24$/);
    for (let e = 0; e < epochs; e++) {
      for (const o of obs[e]!) {
        const has = o.open.includes(rollout.port);
        if (e < rollout.epoch) expect(has).toBe(false);
        else if (subnetOf(o.ip) !== rollout.subnet) expect(has).toBe(false);
        else if (o.open.length > 0 && !pseudo.has(o.ip)) expect(has).toBe(true);
      }
    }
    const rolledOut = obs[rollout.epoch]!.filter((o) => o.open.includes(rollout.port)).length;
    expect(rolledOut).toBeGreaterThan(100);
  });

  it('keeps co-occurring ports together: 139 runs with 445 on office hosts', () => {
    const office = obs[0]!.filter((o) => o.tags.includes('office') && o.open.length <= 1000);
    const with445 = office.filter((o) => o.open.includes(445));
    const both = with445.filter((o) => o.open.includes(139) && o.open.includes(135));
    expect(with445.length).toBeGreaterThan(100);
    expect(both.length / with445.length).toBeGreaterThan(0.85);
  });

  it('churns: services appear and disappear on hosts that persist', () => {
    let appeared = 0;
    let disappeared = 0;
    for (let e = 1; e < epochs; e++) {
      for (let h = 0; h < hosts; h++) {
        const before = new Set(obs[e - 1]![h]!.open);
        const now = new Set(obs[e]![h]!.open);
        for (const p of now) if (!before.has(p)) appeared++;
        for (const p of before) if (!now.has(p)) disappeared++;
      }
    }
    expect(appeared).toBeGreaterThan(50);
    expect(disappeared).toBeGreaterThan(50);
    for (const e of obs) expect(e.map((o) => o.ip)).toEqual(obs[0]!.map((o) => o.ip));
  });

  it('uses the four enterprise tags', () => {
    const tags = new Set(obs[0]!.flatMap((o) => o.tags));
    expect([...tags].sort()).toEqual(['datacenter', 'dmz', 'iot', 'office']);
  });
});

describe('the longtail profile', () => {
  it("keeps most services off nmap's top 1000 ports", () => {
    const stats = epochZeroStats('longtail', 2048, 3);
    expect(stats.top1000Share).toBeLessThan(0.5);
  });
});
