import { readFileSync } from 'node:fs';
import { fc, test } from '@fast-check/vitest';
import { describe, expect } from 'vitest';
import { groupFindings, parseMasscanOutput, parseNmapXml } from '../../agent/index.js';
import { isPortbanditError } from '../../src/core/errors.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/scanners/${name}`, import.meta.url), 'utf8');
const nmapFixtures = ['nmap-sv-lab.xml', 'nmap-sv-services.xml', 'nmap-ssl-cert.xml'];
const masscanFixtures = [
  'masscan-lab.json',
  'masscan-lab.ndjson',
  'masscan-lab.list',
  'masscan-services.json',
  'masscan-services.ndjson',
  'masscan-services.list',
];

/** Only PB_ERR_SCANNER may escape a parser; anything else (TypeError, RangeError) is a bug. */
function parsesOrScannerError(parse: () => unknown): void {
  try {
    parse();
  } catch (error) {
    if (!isPortbanditError(error, 'PB_ERR_SCANNER')) throw error;
  }
}

describe('nmap XML captured from the lab', () => {
  test('reads the services nmap -sV named, with products, versions and CPEs', () => {
    const run = parseNmapXml(fixture('nmap-sv-lab.xml'), 'nmap-sv-lab.xml');
    expect(run.complete).toBe(true);
    expect(run.probed).toBe('22,2222,8080');
    const host = run.hosts.find((h) => h.ip === '198.18.1.10')!;
    const http = host.ports.find((p) => p.port === 8080)!;
    expect(http).toMatchObject({ state: 'open', service: 'http', product: 'SimpleHTTPServer' });
    expect(http.cpes?.[0]).toMatch(/^cpe:\/a:python/);
  });

  test('names the ftp, ssh, smtp, redis and http services lab hosts serve', () => {
    const run = parseNmapXml(fixture('nmap-sv-services.xml'), 'nmap-sv-services.xml');
    const named = Object.fromEntries(
      run.hosts.flatMap((h) => h.ports.filter((p) => p.state === 'open').map((p) => [`${h.ip}:${p.port}`, p.service])),
    );
    expect(named).toEqual({
      '198.18.1.10:21': 'ftp',
      '198.18.1.10:22': 'ssh',
      '198.18.1.10:25': 'smtp',
      '198.18.1.10:6379': 'redis',
      '198.18.1.10:8080': 'http',
      '198.18.1.12:443': 'http',
      '198.18.1.12:2222': 'ssh',
    });
    const ssh = run.hosts[0]!.ports.find((p) => p.port === 22)!;
    expect(ssh.product).toBe('OpenSSH');
    expect(ssh.scripts?.some((s) => s.id === 'banner' || s.id === 'ssh-hostkey')).toBe(true);
  });

  test('keeps ssl-cert script output as structured fields', () => {
    const run = parseNmapXml(fixture('nmap-ssl-cert.xml'), 'nmap-ssl-cert.xml');
    const port = run.hosts[0]!.ports.find((p) => p.port === 8443)!;
    const cert = port.scripts?.find((s) => s.id === 'ssl-cert');
    expect(cert?.output).toContain('Subject: commonName=lab-host.198-18-1-14.example');
    expect(cert?.fields).toMatchObject({
      subject: { commonName: 'lab-host.198-18-1-14.example' },
      validity: { notBefore: expect.any(String) },
    });
  });

  test("decodes nmap's character references (`&#xa;`, `&#45;`) in script output", () => {
    const run = parseNmapXml(fixture('nmap-ssl-cert.xml'), 'nmap-ssl-cert.xml');
    const cert = run.hosts[0]!.ports.find((p) => p.port === 8443)!.scripts!.find((s) => s.id === 'ssl-cert')!;
    expect((cert.fields as { pem: string }).pem).toMatch(/^-----BEGIN CERTIFICATE-----\nMII/);
    expect(cert.output).not.toContain('&#');
  });

  test('a truncated report is an error naming the file, line and column', () => {
    const xml = fixture('nmap-sv-lab.xml');
    const cut = xml.slice(0, Math.floor(xml.length * 0.6));
    expect(() => parseNmapXml(cut, 'cut.xml')).toThrow(/cut\.xml:\d+:\d+/);
  });
});

describe('masscan output captured from the lab', () => {
  test('-oJ, -oD and -oL of the same scan agree', () => {
    const sets = masscanFixtures.map((f) => [...groupFindings(parseMasscanOutput(fixture(f), f))].sort());
    expect(sets[0]).toEqual([
      ['198.18.1.10', [8080]],
      ['198.18.1.11', [2222]],
    ]);
    expect(sets[1]).toEqual(sets[0]);
    expect(sets[2]).toEqual(sets[0]);
  });

  test('-oJ, -oD and -oL captured under load each hold a subset of the served ports (packet loss is real)', () => {
    const served = new Set([
      '198.18.1.10:21',
      '198.18.1.10:22',
      '198.18.1.10:25',
      '198.18.1.10:6379',
      '198.18.1.10:8080',
      '198.18.1.12:443',
      '198.18.1.12:2222',
    ]);
    const seen = new Set<string>();
    for (const f of ['masscan-services.json', 'masscan-services.ndjson', 'masscan-services.list']) {
      const findings = parseMasscanOutput(fixture(f), f);
      // --retries 1: the raw output repeats findings; grouping removes the repeats.
      const grouped = [...groupFindings(findings)].flatMap(([ip, ports]) => ports.map((p) => `${ip}:${p}`));
      expect(new Set(grouped).size).toBe(grouped.length);
      for (const k of grouped) {
        expect(served.has(k)).toBe(true);
        seen.add(k);
      }
    }
    expect(seen).toEqual(served);
  });

  test('repeated findings (retries) are de-duplicated', () => {
    const line = fixture('masscan-lab.ndjson').split('\n')[0]!;
    expect(groupFindings(parseMasscanOutput(`${line}\n${line}\n`, 'dup'))).toEqual(new Map([['198.18.1.10', [8080]]]));
  });

  test('-oJ cut short is an error naming the file and line', () => {
    const text = fixture('masscan-lab.json').replace(/\]\s*$/, '');
    expect(() => parseMasscanOutput(text, 'cut.json')).toThrow(/cut\.json:\d+: .*cut short/);
  });
});

describe('fuzzed scanner output never escapes as anything but PB_ERR_SCANNER', () => {
  const mutation = fc.record({
    at: fc.nat(),
    cut: fc.nat({ max: 64 }),
    insert: fc.oneof(
      fc.string({ maxLength: 16 }),
      fc.constantFrom(
        '<',
        '>',
        '"',
        '&',
        '</port>',
        '<port portid="x">',
        '{',
        '}',
        ',',
        ']',
        '[',
        '\n',
        'null',
        '"port":-1',
        '<state state="open"/>',
      ),
    ),
  });
  const mutate = (text: string, m: { at: number; cut: number; insert: string }) => {
    const at = m.at % (text.length + 1);
    return text.slice(0, at) + m.insert + text.slice(at + m.cut);
  };

  test.prop([fc.constantFrom(...nmapFixtures), fc.array(mutation, { minLength: 1, maxLength: 4 })], { numRuns: 300 })(
    'mutated nmap XML',
    (name, ms) => {
      const text = ms.reduce(mutate, fixture(name));
      parsesOrScannerError(() => parseNmapXml(text, name));
    },
  );

  test.prop([fc.constantFrom(...masscanFixtures), fc.array(mutation, { minLength: 1, maxLength: 4 })], { numRuns: 300 })(
    'mutated masscan output',
    (name, ms) => {
      const text = ms.reduce(mutate, fixture(name));
      parsesOrScannerError(() => parseMasscanOutput(text, name));
    },
  );

  test.prop([fc.jsonValue()], { numRuns: 300 })('arbitrary JSON records as masscan -oD', (value) => {
    parsesOrScannerError(() => parseMasscanOutput(`${JSON.stringify(value)}\n`, 'fuzz.ndjson', 'ndjson'));
  });

  test.prop([fc.jsonValue()], { numRuns: 200 })('arbitrary JSON records as masscan -oJ', (value) => {
    parsesOrScannerError(() => parseMasscanOutput(`[\n${JSON.stringify(value)}\n]\n`, 'fuzz.json', 'json'));
  });
});
