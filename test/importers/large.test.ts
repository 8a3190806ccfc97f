import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { PortRanges } from '../../src/core/ports.js';
import { type HostSighting, importMasscan, importNmap, observationsFromSightings } from '../../src/importers/index.js';
import { loadRecording } from '../../src/recording/index.js';

/**
 * issue 11: `import nmap` of a 153,600-host file died with a stack overflow (Math.min(...times)).
 * Importers must not spread, flat() or apply per-host arrays. Addresses only in 198.18.0.0/15.
 */

const dir = mkdtempSync(join(tmpdir(), 'pb-import-large-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The i-th address of 198.18.0.0/15 (131,072 of them). */
const address = (i: number) => `198.${18 + ((i >> 16) & 1)}.${(i >> 8) & 255}.${i & 255}`;

describe('importers on large inputs', () => {
  test('a 100,000-host nmap XML file imports in one piece', async () => {
    const hosts = 100_000;
    const parts = [
      '<?xml version="1.0"?>\n<nmaprun scanner="nmap" args="nmap -p 1-1000" start="1700000000" version="7.94">\n<scaninfo type="syn" protocol="tcp" numservices="1000" services="1-1000"/>\n',
    ];
    for (let i = 0; i < hosts; i++) {
      const start = 1_700_000_000 + (i % 7200);
      parts.push(
        `<host starttime="${start}" endtime="${start + 1}"><status state="up"/><address addr="${address(i)}" addrtype="ipv4"/><ports><port protocol="tcp" portid="${22 + (i % 3)}"><state state="open"/><service name="ssh"/></port></ports></host>\n`,
      );
    }
    parts.push('<runstats><finished time="1700009999"/></runstats>\n</nmaprun>\n');
    const file = join(dir, 'big.xml');
    writeFileSync(file, parts.join(''));
    const out = join(dir, 'big.ndjson');

    const started = performance.now();
    const summary = await importNmap({ files: [file], out, epochBy: 'time', epochSeconds: 3600 });
    process.stderr.write(`import nmap: ${hosts} hosts in ${Math.round(performance.now() - started)} ms\n`);

    expect(summary).toMatchObject({ files: 1, observations: hosts, hosts, epochs: 2, openPorts: hosts, hostsDown: 0 });
    const recording = await loadRecording(out);
    expect(recording.size).toBe(hosts);
  }, 120_000);

  test('a 200,000-line masscan -oL file imports in one piece', async () => {
    const lines = ['#masscan'];
    for (let i = 0; i < 200_000; i++) lines.push(`open tcp ${1 + (i % 1000)} ${address(i % 131_072)} ${1_700_000_000 + i}`);
    const file = join(dir, 'big.list');
    writeFileSync(file, `${lines.join('\n')}\n# end\n`);
    const summary = await importMasscan({ files: [file], out: join(dir, 'big-masscan.ndjson'), epochBy: 'file', probed: '1-1000' });
    expect(summary).toMatchObject({ observations: 131_072, hosts: 131_072, openPorts: 200_000 });
  }, 120_000);

  test('merging a million sightings needs no stack (no spreads over them)', () => {
    const probed = PortRanges.parse('1-1000');
    const other = PortRanges.parse('1001-2000');
    const sightings: HostSighting[] = [];
    for (let i = 0; i < 1_000_000; i++)
      sightings.push({
        ip: address(i % 131_072),
        open: [],
        probed: i % 2 === 0 ? probed : other,
        time: 1_700_000_000 + (i % 86_400),
        fileIndex: 0,
      });
    const { probed: header, observations } = observationsFromSightings(sightings, [], { epochBy: 'time', epochSeconds: 86_400 });
    expect(observations).toHaveLength(131_072);
    expect(header).toBe('1-2000');
  }, 60_000);
});
