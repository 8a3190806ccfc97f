import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, test } from 'vitest';
import { importMasscan, importNmap } from '../../src/importers/index.js';
import { loadRecording, openPortsAt } from '../../src/recording/index.js';
import { cliProcessArgs } from '../helpers/cli-process.js';

const dir = mkdtempSync(join(tmpdir(), 'pb-import-'));
const fx = (name: string) => new URL(`../fixtures/scanners/${name}`, import.meta.url).pathname;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('import nmap', () => {
  test('one epoch per file; probed from <scaninfo services>; open ports and service names round-trip', async () => {
    const out = join(dir, 'nmap.ndjson');
    const summary = await importNmap({ files: [fx('nmap-sv-lab.xml'), fx('nmap-sv-services.xml')], out, epochBy: 'file', tags: ['lab'] });
    expect(summary).toMatchObject({ files: 2, epochs: 2, hostsDown: 0 });
    const rec = await loadRecording(out);
    expect(rec.epochs).toBe(2);
    // The two files probed different ports: every line carries its own probed set.
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map(
        (l) =>
          JSON.parse(l) as {
            epoch: number;
            ip: string;
            open: number[];
            probed?: string;
            services?: Record<string, string>;
            tags: string[];
          },
      );
    const e1 = lines.find((l) => l.epoch === 1 && l.ip === '198.18.1.10')!;
    expect(e1).toMatchObject({ open: [21, 22, 25, 6379, 8080], probed: '21-22,25,443,2222,6379,8080', tags: ['lab'] });
    expect(e1.services).toEqual({ 21: 'ftp', 22: 'ssh', 25: 'smtp', 6379: 'redis', 8080: 'http' });
    const e0 = lines.find((l) => l.epoch === 0 && l.ip === '198.18.1.10')!;
    expect(e0).toMatchObject({ open: [8080], probed: '22,2222,8080' });
    expect(summary.openPorts).toBe(lines.reduce((n, l) => n + l.open.length, 0));
    expect(rec.size).toBe(lines.length);
    expect(openPortsAt(rec, 0)).toBeDefined();
  });

  test('a truncated file is reported with file and position, together with every other bad file, and nothing is written', async () => {
    const cut = join(dir, 'cut.xml');
    const xml = readFileSync(fx('nmap-sv-services.xml'), 'utf8');
    writeFileSync(cut, xml.slice(0, Math.floor(xml.length / 2)));
    const incomplete = join(dir, 'incomplete.xml');
    writeFileSync(incomplete, xml.replace(/<runstats>[\s\S]*<\/runstats>/, ''));
    const out = join(dir, 'never.ndjson');
    const error = (await importNmap({ files: [fx('nmap-sv-lab.xml'), cut, incomplete], out, epochBy: 'file' }).catch(
      (e: unknown) => e,
    )) as Error;
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toMatch(/2 files could not be imported/);
    expect(error.message).toMatch(/cut\.xml:\d+:\d+/);
    expect(error.message).toMatch(/incomplete\.xml: truncated nmap XML/);
    expect(() => readFileSync(out)).toThrow();
  });

  test('--epoch-by time buckets files by scan time', async () => {
    const out = join(dir, 'time.ndjson');
    const summary = await importNmap({
      files: [fx('nmap-sv-services.xml'), fx('nmap-sv-lab.xml')],
      out,
      epochBy: 'time',
      epochSeconds: 60,
    });
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => JSON.parse(l) as { epoch: number; ip: string });
    // nmap-sv-lab.xml was captured first (02:29), nmap-sv-services.xml ~38 minutes later.
    expect(
      lines
        .filter((l) => l.epoch === 0)
        .map((l) => l.ip)
        .sort(),
    ).toEqual(['198.18.1.10', '198.18.1.11']);
    expect(summary.epochs).toBeGreaterThan(30);
  });
});

describe('import masscan', () => {
  test('-oJ, -oD and -oL files give one epoch each; probed from --probed', async () => {
    const out = join(dir, 'masscan.ndjson');
    const files = ['masscan-services.json', 'masscan-services.ndjson', 'masscan-services.list'].map(fx);
    const summary = await importMasscan({ files, out, epochBy: 'file', probed: '1-10000' });
    expect(summary).toMatchObject({ files: 3, epochs: 3, hosts: 2 });
    const rec = await loadRecording(out);
    expect(rec.header.probed).toBe('1-10000');
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => JSON.parse(l) as { epoch: number; ip: string; open: number[] });
    expect(lines.find((l) => l.epoch === 1 && l.ip === '198.18.1.10')!.open).toEqual([21, 22, 25, 6379, 8080]);
  });

  test('without --probed (or a "# probed:" line) it refuses, naming the file', async () => {
    await expect(importMasscan({ files: [fx('masscan-lab.list')], out: join(dir, 'x.ndjson'), epochBy: 'file' })).rejects.toThrow(
      /masscan-lab\.list: .*--probed/,
    );
    const withHeader = join(dir, 'with-header.list');
    writeFileSync(withHeader, `# probed: 1-9000\n${readFileSync(fx('masscan-lab.list'), 'utf8')}`);
    const summary = await importMasscan({ files: [withHeader], out: join(dir, 'h.ndjson'), epochBy: 'file' });
    expect(summary.openPorts).toBe(2);
  });

  test('an open port outside the probed ports is an error, not a silent drop', async () => {
    await expect(
      importMasscan({ files: [fx('masscan-lab.ndjson')], out: join(dir, 'y.ndjson'), epochBy: 'file', probed: '1-1000' }),
    ).rejects.toThrow(/8080 is open but outside the probed ports 1-1000/);
  });
});

describe('the import CLI', () => {
  test('portbandit import nmap writes a recording that recording validate accepts', async () => {
    const out = join(dir, 'cli.ndjson');
    const copy = join(dir, 'scan.xml');
    copyFileSync(fx('nmap-sv-services.xml'), copy);
    const r = await execa(process.execPath, [...cliProcessArgs(), 'import', 'nmap', copy, '--out', out, '--tag', 'dmz'], { reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ files: 1, observations: 2, epochs: 1 });
    const v = await execa(process.execPath, [...cliProcessArgs(), 'recording', 'validate', out], { reject: false });
    expect(v.exitCode, v.stderr + v.stdout).toBe(0);
  }, 60_000);
});
