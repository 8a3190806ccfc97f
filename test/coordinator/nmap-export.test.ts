import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { parseNmapXml } from '../../src/formats/nmap-xml.js';
import { PortRanges } from '../../src/core/ports.js';
import { formatNmapXml } from '../../src/coordinator/nmap-export.js';
import { readNmapSightings } from '../../src/importers/index.js';
import type { PortState, ScanDocument, ScannedPort } from '../../src/store/index.js';
import { tempDataDir } from './helpers.js';

// Characters that break naive XML writers and readers: markup, quotes, entity look-alikes
// (`&amp;`, `&#xa;`, `&nbsp;` as text), newlines and tabs, non-ASCII, astral code points.
const tricky = fc.constantFrom(...'ab Z09<>&"\';#xnbsp\n\t\r]-é漢'.split(''), '😀', '&amp;', '&#xa;', '&nbsp;', ']]>', '--');
const text = fc.string({ unit: tricky, minLength: 1, maxLength: 16 }).filter((s) => s.trim() === s && s !== '');
const states: PortState[] = ['open', 'closed', 'filtered', 'open|filtered', 'closed|filtered', 'unfiltered'];

const port = (n: number): fc.Arbitrary<ScannedPort> =>
  fc.record(
    {
      port: fc.constant(n),
      state: fc.constantFrom(...states),
      service: text,
      product: text,
      version: text,
      extrainfo: text,
      cpes: fc.array(text, { maxLength: 2 }),
      scripts: fc.array(fc.record({ id: text, output: fc.string({ unit: tricky, maxLength: 40 }) }), { maxLength: 2 }),
    },
    { requiredKeys: ['port', 'state', 'cpes', 'scripts'] },
  );

const ip = fc.oneof(
  fc.ipV4().map((a) => a.split('.').map(Number).join('.')),
  fc.constantFrom('2001:db8::1', '2001:db8:0:1::a', '::1', 'fe80::1:2'),
);

const scanArb: fc.Arbitrary<ScanDocument> = fc
  .record({
    ip,
    listed: fc.uniqueArray(fc.integer({ min: 1, max: 65535 }), { maxLength: 8 }),
    extra: fc.uniqueArray(fc.integer({ min: 1, max: 65535 }), { maxLength: 20 }),
    startedAt: fc.integer({ min: 0, max: Date.UTC(2100, 0, 1) }),
    took: fc.integer({ min: 0, max: 86_400_000 }),
    tags: fc.array(text, { maxLength: 2 }),
  })
  .chain(({ ip: address, listed, extra, startedAt, took, tags }) =>
    fc.tuple(...listed.sort((a, b) => a - b).map(port)).map((ports) => ({
      scanId: 'v-1',
      ip: address,
      tags,
      agentId: 'agent--1',
      startedAt,
      finishedAt: startedAt + took,
      epoch: 0,
      cycle: 3,
      ports,
      preflight: 'connect' as const,
      probedPorts: PortRanges.fromPorts([...listed, ...extra]).toString(),
      timings: {},
    })),
  );

describe('nmap XML export', () => {
  test.prop([scanArb], { numRuns: 200 })(
    'reads back through the nmap parser: address, ports, states, services, cpes, scripts and probed ports',
    (scan) => {
      const run = parseNmapXml(formatNmapXml(scan), 'export.xml');
      expect(run.complete).toBe(true);
      expect(run.probed === null ? '' : PortRanges.parse(run.probed).toString()).toBe(scan.probedPorts);
      expect(run.hosts).toHaveLength(1);
      const host = run.hosts[0]!;
      expect(host.ip).toBe(scan.ip);
      expect(host.status).toBe('up');
      expect(host.startedAt).toBe(Math.floor(scan.startedAt / 1000));
      expect(host.ports).toEqual(
        scan.ports.map((p) => ({
          port: p.port,
          protocol: 'tcp',
          state: p.state,
          ...(p.service !== undefined ? { service: p.service } : {}),
          ...(p.product !== undefined ? { product: p.product } : {}),
          ...(p.version !== undefined ? { version: p.version } : {}),
          ...(p.extrainfo !== undefined ? { extrainfo: p.extrainfo } : {}),
          ...(p.cpes.length > 0 ? { cpes: p.cpes } : {}),
          ...(p.scripts.length > 0 ? { scripts: p.scripts.map((s) => ({ id: s.id, output: s.output })) } : {}),
        })),
      );
    },
  );

  it('round-trips through `portbandit import nmap`: the open ports and the probed ports', () => {
    const data = tempDataDir();
    try {
      const scan: ScanDocument = {
        scanId: 'v-2',
        ip: '198.18.1.10',
        tags: ['lab'],
        agentId: 'a',
        startedAt: Date.UTC(2026, 10, 23),
        finishedAt: Date.UTC(2026, 10, 23, 0, 1),
        epoch: 1,
        cycle: 1,
        ports: [
          {
            port: 22,
            state: 'open',
            service: 'ssh',
            product: 'OpenSSH',
            version: '9.2p1',
            cpes: ['cpe:/a:openbsd:openssh:9.2p1'],
            scripts: [],
          },
          { port: 80, state: 'closed', cpes: [], scripts: [] },
          {
            port: 8443,
            state: 'open',
            service: 'https',
            cpes: [],
            scripts: [
              {
                id: 'ssl-cert',
                output: 'Subject: commonName=a\nIssuer: commonName=b',
                fields: { subject: { commonName: 'a' }, items: ['x'] },
              },
            ],
          },
        ],
        preflight: 'connect',
        probedPorts: '1-1024,8443',
        unknownPorts: '1000-1024',
        timings: {},
      };
      const file = join(data.dir, 'visit.xml');
      const xml = formatNmapXml(scan);
      writeFileSync(file, xml);
      const { sightings } = readNmapSightings([file]);
      expect(sightings).toHaveLength(1);
      expect(sightings[0]).toMatchObject({ ip: '198.18.1.10', open: [22, 8443], services: { 22: 'ssh', 8443: 'https' } });
      expect(sightings[0]!.probed.toString()).toBe('1-1024,8443');
      // 1025 probed - 3 reported - 25 unknown: the rest were closed or silent.
      expect(xml).toContain('<extraports state="closed" count="997"/>');
      const cert = parseNmapXml(xml).hosts[0]!.ports[2]!.scripts![0]!;
      expect(cert).toEqual({
        id: 'ssl-cert',
        output: 'Subject: commonName=a\nIssuer: commonName=b',
        fields: { subject: { commonName: 'a' }, items: ['x'] },
      });
    } finally {
      data.cleanup();
    }
  });

  it('keeps the file well-formed when a banner holds characters XML cannot (control bytes, lone surrogates)', () => {
    const scan = {
      ...fc.sample(scanArb, { seed: 1, numRuns: 1 })[0]!,
      ports: [{ port: 23, state: 'open' as const, service: 'telnet', product: 'x\u0000\u0007y\uD800z', cpes: [], scripts: [] }],
      probedPorts: '23',
    };
    const run = parseNmapXml(formatNmapXml(scan));
    expect(run.hosts[0]!.ports[0]!.product).toBe('x\uFFFD\uFFFDy\uFFFDz');
  });

  it('reports a silent host as down', () => {
    const scan = { ...fc.sample(scanArb, { seed: 2, numRuns: 1 })[0]!, ports: [], probedPorts: '22,80', host: { status: 'down' } };
    expect(parseNmapXml(formatNmapXml(scan)).hosts[0]!.status).toBe('down');
  });
});
