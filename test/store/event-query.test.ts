import { describe, expect, it } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { compileEsQuery } from '../../src/store/elasticsearch-query.js';
import { compileSqliteQuery } from '../../src/store/sqlite-query.js';
import {
  EVENT_KINDS,
  matchEvent,
  matchScan,
  parseEventQuery,
  parseQuery,
  printQuery,
  type NewStoreEvent,
  type ScanDocument,
} from '../../src/store/index.js';

const at = Date.UTC(2026, 10, 23, 12, 0, 0);
const rdp: NewStoreEvent = {
  kind: 'service-new',
  at,
  ip: '198.18.1.10',
  scanId: 's1',
  tags: ['DMZ'],
  port: 3389,
  detail: { port: 3389, service: 'ms-wbt-server', product: 'Microsoft Terminal Services' },
};
const changed: NewStoreEvent = {
  kind: 'service-changed',
  at: at + 1000,
  ip: '2001:db8::7',
  scanId: 's2',
  tags: ['lab'],
  port: 80,
  detail: {
    port: 80,
    before: { service: 'http', product: 'nginx', version: '1.24' },
    after: { service: 'http', product: 'nginx', version: '1.25' },
  },
};
const scan: ScanDocument = {
  scanId: 's0',
  ip: '198.18.0.1',
  tags: [],
  agentId: 'a',
  startedAt: at,
  finishedAt: at,
  epoch: 0,
  cycle: 0,
  ports: [],
  preflight: 'none',
  probedPorts: '22',
  timings: {},
};
const hostNew: NewStoreEvent = { kind: 'host-new', at, ip: '198.18.1.11', scanId: 's3', tags: [] };

describe('event queries', () => {
  it('match the kind, port, tag, address, time and service of an event', () => {
    const q = (text: string) => [rdp, changed, hostNew].filter((e) => matchEvent(e, parseEventQuery(text))).map((e) => e.scanId);
    expect(q('kind:service-new port:3389 tag:dmz')).toEqual(['s1']);
    expect(q('kind:SERVICE-NEW')).toEqual(['s1']);
    expect(q('-kind:host-new')).toEqual(['s1', 's2']);
    expect(q('kind:host-new OR port:80')).toEqual(['s2', 's3']);
    expect(q('ip:198.18.1.0/24')).toEqual(['s1', 's3']);
    expect(q('ip:2001:db8::/32')).toEqual(['s2']);
    expect(q('version:1.24')).toEqual(['s2']);
    expect(q('version:1.25 product:nginx')).toEqual(['s2']);
    expect(q('"terminal services"')).toEqual(['s1']);
    expect(q('ctime:>2026-11-23T12:00:00Z')).toEqual(['s2']);
    expect(q('ctime:2026-11-23')).toEqual(['s1', 's2', 's3']);
    expect(q('')).toEqual(['s1', 's2', 's3']);
  });

  it('refuse an unknown kind and fields events do not have, naming the column', () => {
    expect(() => parseEventQuery('kind:service-gone')).toThrow(
      /query column 6: 'service-gone' is not an event kind; expected one of service-new, service-closed/,
    );
    expect(() => parseEventQuery('port:22 cpe:x')).toThrow(
      /query column 9: unknown field 'cpe'; expected one of kind, port, .* for events/,
    );
    expect(() => parseEventQuery('agent:a1')).toThrow(/unknown field 'agent'/);
  });

  it('are not scan queries: search refuses kind: and points at events', () => {
    expect(() => parseQuery('kind:service-new')).toThrow(/unknown field 'kind'.*kind: filters events/);
    const ast = parseEventQuery('kind:host-new')!;
    expect(() => compileSqliteQuery(ast)).toThrow(/kind: filters events/);
    expect(() => compileEsQuery(ast)).toThrow(/kind: filters events/);
    expect(() => matchScan(scan, ast)).toThrow(/kind: filters events/);
  });

  test.prop([fc.constantFrom(...EVENT_KINDS), fc.integer({ min: 1, max: 65535 }), fc.boolean()])(
    'print and parse back to the same query and the same matches',
    (kind, port, negate) => {
      const text = `${negate ? '-' : ''}kind:${kind} port:${port}`;
      const ast = parseEventQuery(text);
      expect(parseEventQuery(printQuery(ast))).toEqual(ast);
      const event: NewStoreEvent = { ...rdp, kind, port };
      expect(matchEvent(event, ast)).toBe(!negate);
    },
  );
});
