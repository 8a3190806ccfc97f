import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fc } from '@fast-check/vitest';
import { canonicalIp } from '../../src/core/address.js';
import { PortRanges } from '../../src/core/ports.js';
import { formatHeader, formatObservation } from '../../src/recording/writer.js';
import type { Observation, RecordingHeader } from '../../src/recording/types.js';

/** A temp directory for one test file; `cleanup()` removes it (call in afterAll). */
export function makeTempDir(prefix = 'pb-recording-'): { dir: string; file: (name: string, text: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    file: (name, text) => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export const HEADER = { format: 'portbandit.recording', version: 1, name: 'test', probed: '1-65535' } as const;

/** NDJSON text for a header and observations, written in the given order. */
export function toNdjson(header: Omit<RecordingHeader, 'format' | 'version'>, observations: readonly Observation[]): string {
  return [formatHeader(header), ...observations.map(formatObservation)].join('\n') + '\n';
}

// Test data stays inside 198.18.0.0/15 (IPv6 as IPv4-mapped addresses of that range).
const ipv4 = fc
  .tuple(fc.integer({ min: 18, max: 19 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }))
  .map(([b, c, d]) => `198.${b}.${c}.${d}`);
const ip = fc.oneof({ weight: 4, arbitrary: ipv4 }, { weight: 1, arbitrary: ipv4.map((a) => `::ffff:${a}`) });
const tag = fc.constantFrom('dmz', 'corp', 'iot', 'dc', 'web', 'ünïcode', 'with space', '[x]');
const port = fc.integer({ min: 1, max: 65535 });
const lowPort = fc.integer({ min: 1, max: 1024 });

/** A header plus observations with distinct (epoch, ip) pairs, epochs in any order, open ports inside `probed`. */
export const recordingArbitrary = fc
  .record({
    headerProbed: fc.constantFrom<RecordingHeader['probed']>('1-65535', '1-1024', ['1-1024', 8080, '8443-8445']),
    // Unique by address: `::ffff:a` and `a` are one host (src/core/address.ts).
    hosts: fc.uniqueArray(ip, { minLength: 1, maxLength: 12, selector: (a) => canonicalIp(a) }),
    epochs: fc.integer({ min: 1, max: 5 }),
  })
  .chain(({ headerProbed, hosts, epochs }) => {
    const headerSet = PortRanges.parse(headerProbed);
    const line = fc.record({
      tags: fc.uniqueArray(tag, { maxLength: 3 }),
      override: fc.option(fc.constantFrom('1-65535', '1-1024', '22,80,443', '80,22,443'), { nil: undefined }),
      open: fc.uniqueArray(fc.oneof(lowPort, port), { maxLength: 8 }),
      services: fc.option(fc.dictionary(port.map(String), fc.constantFrom('ssh', 'http', 'https', '')), { nil: undefined }),
    });
    const cells = fc.uniqueArray(fc.tuple(fc.integer({ min: 0, max: epochs - 1 }), fc.integer({ min: 0, max: hosts.length - 1 })), {
      selector: ([e, h]) => `${e}/${h}`,
      maxLength: 30,
    });
    return fc
      .tuple(
        fc.constant(headerProbed),
        cells.chain((cs) => fc.tuple(fc.constant(cs), fc.array(line, { minLength: cs.length, maxLength: cs.length }))),
      )
      .map(([probed, [cs, lines]]) => {
        const observations: Observation[] = cs.map(([epoch, h], k) => {
          const l = lines[k]!;
          const set = l.override === undefined ? headerSet : PortRanges.parse(l.override);
          const obs: { -readonly [K in keyof Observation]: Observation[K] } = {
            epoch,
            ip: hosts[h]!,
            tags: l.tags,
            open: l.open.filter((p) => set.has(p)),
          };
          if (l.override !== undefined) obs.probed = l.override;
          if (l.services !== undefined) obs.services = l.services;
          return obs;
        });
        return { header: { ...HEADER, probed }, observations };
      });
  });

/**
 * What the reader must give back for observations written in file order: stably sorted by
 * epoch, open ports ascending, `probed` canonical and omitted when it equals the header's,
 * `services` with ascending keys and omitted when empty.
 */
export function expectedObservations(headerProbed: RecordingHeader['probed'], input: readonly Observation[]): Observation[] {
  const headerSet = PortRanges.parse(headerProbed);
  return input
    .map((obs, i) => ({ obs, i }))
    .sort((a, b) => a.obs.epoch - b.obs.epoch || a.i - b.i)
    .map(({ obs }) => {
      const out: { -readonly [K in keyof Observation]: Observation[K] } = {
        epoch: obs.epoch,
        ip: canonicalIp(obs.ip),
        tags: [...obs.tags],
        open: [...obs.open].sort((a, b) => a - b),
      };
      if (obs.probed !== undefined) {
        const set = PortRanges.parse(obs.probed);
        if (!set.equals(headerSet)) out.probed = set.toString();
      }
      if (obs.services !== undefined && Object.keys(obs.services).length > 0) {
        const services: Record<string, string> = {};
        for (const k of Object.keys(obs.services).sort((a, b) => Number(a) - Number(b))) services[k] = obs.services[k]!;
        out.services = services;
      }
      return out;
    });
}
