import { describe, expect, test } from 'vitest';
import {
  AllowList,
  checkScripts,
  choosePreflight,
  nmapArgs,
  parseRouteBatch,
  parseRouteGet,
  resolveMasscanRoute,
  runBounded,
  runConnectSweep,
  runMasscan,
  runNmap,
  scanBatch,
  type ScanConfig,
} from '../../agent/index.js';
import type { WorkItem } from '../../src/protocol/protocol.js';

const lab = AllowList.parse(['198.18.0.0/15']);

function item(ip: string, ports: number[], overrides: Partial<WorkItem['scan']> = {}): WorkItem {
  return {
    protocol: 1,
    leaseId: `lease-${ip}-${ports.join('-')}`,
    ip,
    tags: [],
    ports,
    round: 0,
    cycle: 0,
    reason: 'cycle',
    issuedAt: 0,
    deadline: Date.now() + 60_000,
    scan: { versionDetection: true, scripts: [], hostTimeoutSeconds: 30, scriptTimeoutSeconds: 10, preflight: 'connect', ...overrides },
  };
}

describe('the allow list', () => {
  test('allows only what was given; empty allows nothing', () => {
    expect(lab.allows('198.18.1.10')).toBe(true);
    expect(lab.allows('198.19.255.254')).toBe(true);
    expect(lab.allows('198.20.0.1')).toBe(false);
    expect(lab.allows('127.0.0.1')).toBe(false);
    // Only canonical text is ever handed to a scanner: the mapped form is refused, not translated.
    expect(lab.allows('::ffff:198.18.1.10')).toBe(false);
    expect(lab.allows('198.018.1.10')).toBe(false);
    expect(lab.allows('not-an-ip')).toBe(false);
    expect(AllowList.parse([]).allows('198.18.1.10')).toBe(false);
    expect(AllowList.parse(['127.0.0.1']).allows('127.0.0.2')).toBe(false);
  });

  test('a bad entry is an error naming its position', () => {
    expect(() => AllowList.parse(['198.18.0.0/15', '10.0.0/8'])).toThrow(/--allow\[1\].*10\.0\.0\/8/);
  });
});

describe('runners refuse targets outside --allow before anything runs', () => {
  test('masscan, nmap and the connect sweep', async () => {
    await expect(runMasscan({ targets: ['198.18.1.10', '127.0.0.1'], ports: [80], allow: lab })).rejects.toMatchObject({
      code: 'PB_ERR_UNSAFE_TARGET',
      message: expect.stringContaining('127.0.0.1'),
    });
    await expect(runNmap({ targets: ['127.0.0.1'], ports: [80], allow: lab })).rejects.toMatchObject({ code: 'PB_ERR_UNSAFE_TARGET' });
    await expect(runConnectSweep({ targets: ['127.0.0.1'], ports: [80], allow: AllowList.parse([]) })).rejects.toMatchObject({
      code: 'PB_ERR_UNSAFE_TARGET',
      message: expect.stringContaining('no --allow'),
    });
  });

  test('scanBatch refuses the item without scanning it and scans nothing else', async () => {
    const config: ScanConfig = {
      allow: lab,
      scriptsAllow: new Set(),
      preflight: 'connect',
      tools: { nmap: null, masscan: null, rawSockets: false },
      masscan: { rate: 1000, retries: 0, waitSeconds: 0 },
      connect: { concurrency: 4, timeoutMs: 200, retries: 0 },
      pseudoServiceThreshold: 100,
      log: () => {},
    };
    const out = await scanBatch([item('127.0.0.1', [22])], config);
    expect(out.submissions).toEqual([]);
    expect(out.refused).toHaveLength(1);
    expect(out.refused[0]!.reason).toMatch(/outside this agent's --allow/);
  });
});

describe('masscan routing', () => {
  test('reads ip route get output and refuses blackholes', () => {
    expect(parseRouteGet('198.18.1.10 via 198.19.255.254 dev pblab0 src 198.19.255.253 uid 0 \n    cache', '198.18.1.10')).toEqual({
      dev: 'pblab0',
      src: '198.19.255.253',
      via: '198.19.255.254',
    });
    expect(parseRouteGet('198.18.1.10 dev pblab0 src 198.18.0.2 uid 0', 'x').via).toBeNull();
    expect(() => parseRouteGet('blackhole 198.19.7.7 uid 0', '198.19.7.7')).toThrow(/no usable route/);
  });

  test('splits one `ip -batch` answer per target, and leaves anything else to the one-by-one lookup', () => {
    const batch =
      '198.18.1.6 via 198.19.255.254 dev pblab0 src 198.19.255.253 uid 0 \n    cache \n' +
      '198.18.1.7 via 198.19.255.254 dev pblab0 src 198.19.255.253 uid 0 \n    cache \n';
    expect(parseRouteBatch(batch, ['198.18.1.6', '198.18.1.7'])).toEqual(
      new Map([
        ['198.18.1.6', '198.18.1.6 via 198.19.255.254 dev pblab0 src 198.19.255.253 uid 0 '],
        ['198.18.1.7', '198.18.1.7 via 198.19.255.254 dev pblab0 src 198.19.255.253 uid 0 '],
      ]),
    );
    // Out of order, one short, or an answer that is not a plain route: null.
    expect(parseRouteBatch(batch, ['198.18.1.7', '198.18.1.6'])).toBeNull();
    expect(parseRouteBatch(batch, ['198.18.1.6', '198.18.1.7', '198.18.1.8'])).toBeNull();
    expect(parseRouteBatch('local 127.0.0.1 dev lo table local src 127.0.0.1 uid 0 \n    cache <local> \n', ['127.0.0.1'])).toBeNull();
    // A prefix of another address is not that address.
    expect(parseRouteBatch('198.18.1.60 via 198.19.255.254 dev pblab0 src 198.19.255.253\n', ['198.18.1.6'])).toBeNull();
  });

  test('refuses a target reached over the default route or loopback (no lab route)', async () => {
    // 127.0.0.1 is always routed over lo: masscan must never run there.
    await expect(resolveMasscanRoute(['127.0.0.1'])).rejects.toMatchObject({ code: 'PB_ERR_UNSAFE_TARGET' });
    await expect(runMasscan({ targets: ['127.0.0.1'], ports: [9], allow: AllowList.parse(['127.0.0.0/8']) })).rejects.toMatchObject({
      code: 'PB_ERR_UNSAFE_TARGET',
    });
  });
});

describe('nmap arguments', () => {
  test('an argument array with the ports, timeouts, allowed scripts and -oX -', () => {
    const args = nmapArgs({
      targets: ['198.18.1.10'],
      ports: [80, 22, 443, 444],
      allow: lab,
      scripts: ['ssl-cert'],
      scriptsAllow: new Set(['ssl-cert']),
      hostTimeoutSeconds: 30,
      scriptTimeoutSeconds: 5,
    });
    expect(args).toEqual([
      '-sV',
      '-Pn',
      '-n',
      '-p',
      '22,80,443-444',
      '--host-timeout',
      '30s',
      '--script',
      'ssl-cert',
      '--script-timeout',
      '5s',
      '-oX',
      '-',
      '--',
      '198.18.1.10',
    ]);
  });

  test('refuses scripts not on the allowlist, and script categories or globs', () => {
    expect(() => checkScripts(['ssl-cert', 'smb-vuln-ms17-010'], new Set(['ssl-cert']))).toThrow(/smb-vuln-ms17-010/);
    expect(() => checkScripts(['vuln'], new Set(['ssl-cert']))).toThrow(/scripts-allow/);
    expect(() => checkScripts(['*'], new Set(['*']))).toThrow(/scripts-allow/);
    expect(() => nmapArgs({ targets: ['198.18.1.10'], ports: [80], allow: lab, timing: ['--script=vuln'] })).toThrow(/not allowed/);
  });
});

describe('preflight choice', () => {
  const tools = { nmap: 'nmap', masscan: 'masscan', rawSockets: true };
  test('follows the work item and what the machine can do', () => {
    expect(choosePreflight('masscan', { preflight: 'auto', tools })).toBe('masscan');
    expect(choosePreflight('masscan', { preflight: 'auto', tools: { ...tools, rawSockets: false } })).toBe('connect');
    expect(choosePreflight('masscan', { preflight: 'auto', tools: { ...tools, masscan: null } })).toBe('connect');
    expect(choosePreflight('connect', { preflight: 'auto', tools })).toBe('connect');
    expect(choosePreflight('connect', { preflight: 'masscan', tools })).toBe('masscan');
    expect(choosePreflight('none', { preflight: 'auto', tools })).toBe('none');
    expect(choosePreflight('none', { preflight: 'auto', tools: { ...tools, nmap: null } })).toBe('connect');
  });
});

describe('scanner arguments take only canonical addresses and bounded numbers (issue 11)', () => {
  test('nmapArgs refuses non-canonical targets and out-of-range or non-integer timeouts', () => {
    for (const target of ['198.022.250.1', '198.18.250.010', '::ffff:198.18.1.10', '198.18.1.10 ', '-oN']) {
      expect(() => nmapArgs({ targets: [target], ports: [80], allow: lab })).toThrow(/canonical/);
    }
    expect(() => nmapArgs({ targets: ['198.18.1.10'], ports: [80], allow: lab, hostTimeoutSeconds: 1e12 })).toThrow(
      /hostTimeoutSeconds.*1-86400/,
    );
    expect(() =>
      nmapArgs({ targets: ['198.18.1.10'], ports: [80], allow: lab, hostTimeoutSeconds: '10s --script=smb-brute' as unknown as number }),
    ).toThrow(/hostTimeoutSeconds/);
  });

  test('the runners refuse non-canonical targets even when their value is allowed', async () => {
    const loop = AllowList.parse(['127.0.0.0/8']);
    await expect(runConnectSweep({ targets: ['127.000.0.1'], ports: [9], allow: loop })).rejects.toMatchObject({
      code: 'PB_ERR_UNSAFE_TARGET',
    });
    await expect(runConnectSweep({ targets: ['127.0.0.1'], ports: ['9; rm' as unknown as number], allow: loop })).rejects.toMatchObject({
      code: 'PB_ERR_PORT_SPEC',
    });
    await expect(runMasscan({ targets: ['198.18.1.010'], ports: [80], allow: lab })).rejects.toMatchObject({
      code: 'PB_ERR_UNSAFE_TARGET',
    });
    await expect(
      runMasscan({
        targets: ['198.18.1.10'],
        ports: [80],
        allow: lab,
        rate: 1e12,
        route: { adapter: 'lo', adapterIp: '127.0.0.1', routerIp: '127.0.0.1' },
      }),
    ).rejects.toMatchObject({ code: 'PB_ERR_SCAN_OPTION' });
    await expect(
      runMasscan({
        targets: ['198.18.1.10'],
        ports: [80],
        allow: lab,
        route: { adapter: '--echo', adapterIp: '198.18.0.2', routerIp: '198.18.0.1' },
      }),
    ).rejects.toThrow(/masscan route/);
    await expect(
      runMasscan({
        targets: ['198.18.1.10'],
        ports: [80],
        allow: lab,
        route: { adapter: 'pblab0', adapterIp: '198.018.0.2', routerIp: '198.18.0.1' },
      }),
    ).rejects.toThrow(/masscan route/);
  });

  test('a process bound beyond what a Node timer holds is refused, not clamped to 1 ms', async () => {
    await expect(runBounded('true', [], { timeoutMs: 1e15, maxOutputBytes: 1024 })).rejects.toThrow(/outside 1-2147483647 ms/);
  });
});
