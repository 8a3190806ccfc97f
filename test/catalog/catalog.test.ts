import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import {
  defaultServices,
  formatServicesFile,
  loadNmapServices,
  parseNmapServices,
  parseServicesFile,
  tcpPorts,
} from '../../src/catalog/index.js';

describe('nmap-services catalog', () => {
  const catalog = loadNmapServices();

  test('reads the installed table, most frequent first', () => {
    expect(catalog.top(5)).toContain(80);
    expect(catalog.top(5)).toContain(443);
    expect(catalog.name(22)).toBe('ssh');
    for (let i = 1; i < 200; i++) {
      expect(catalog.frequency(catalog.byFrequency[i - 1]!)).toBeGreaterThanOrEqual(catalog.frequency(catalog.byFrequency[i]!));
    }
    expect(catalog.rank(80)).toBe(0);
    expect(catalog.rank(31337 + 1)).toBe(-1);
  });

  test('holds the open-frequency shares the nmap book reports (top 10 ~50%, top 100 ~78%, top 1000 ~93%)', () => {
    expect(catalog.topShare(10)).toBeGreaterThan(0.4);
    expect(catalog.topShare(10)).toBeLessThan(0.6);
    expect(catalog.topShare(100)).toBeGreaterThan(0.7);
    expect(catalog.topShare(100)).toBeLessThan(0.85);
    expect(catalog.topShare(1000)).toBeGreaterThan(0.88);
    expect(catalog.topShare(1000)).toBeLessThan(0.97);
  });

  test('names every path it tried when the table is missing', () => {
    expect(() => loadNmapServices({ env: { PORTBANDIT_NMAP_SERVICES: '/nonexistent/nmap-services' } })).toThrow(
      /not found; tried \/nonexistent\/nmap-services.*apt-get install nmap/,
    );
  });

  test('reports a malformed line with file and line number', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pb-catalog-'));
    const path = join(dir, 'nmap-services');
    writeFileSync(path, '# comment\nhttp\t80/tcp\t0.48\nbroken line here\n');
    expect(() => loadNmapServices({ path })).toThrow(`${path}:3`);
  });

  test('ignores udp and sctp lines', () => {
    const c = parseNmapServices('domain\t53/udp\t0.5\nssh\t22/tcp\t0.1\n', 'inline');
    expect(Array.from(c.byFrequency)).toEqual([22]);
  });
});

describe('Natlas services file', () => {
  const entry = fc.record({
    name: fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/),
    port: fc.integer({ min: 1, max: 65535 }),
    proto: fc.constantFrom('tcp' as const, 'udp' as const),
  });

  test.prop([fc.array(entry, { maxLength: 50 })])('format then parse round-trips', (entries) => {
    expect(parseServicesFile(formatServicesFile(entries), 'x')).toEqual(entries);
  });

  test('reads comments and blank lines, and names the bad line', () => {
    const text = '# natlas-services\nssh\t22/tcp\n\nhttp  80/tcp # web\n';
    expect(tcpPorts(parseServicesFile(text, 'svc'))).toEqual([22, 80]);
    expect(() => parseServicesFile('ssh\t22/tcp\nhttp\t99999/tcp\n', 'natlas-services')).toThrow(/natlas-services:2: expected/);
  });

  test("the default list is nmap's top 1,000 TCP ports", () => {
    const catalog = loadNmapServices();
    const list = defaultServices(catalog);
    expect(list).toHaveLength(1000);
    expect(tcpPorts(list)).toEqual(catalog.top(1000));
  });
});
