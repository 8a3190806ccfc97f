import { fc, test } from '@fast-check/vitest';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect } from 'vitest';
import { parseMasscanOutput } from '../../src/formats/masscan-output.js';
import { parseNmapXml } from '../../src/formats/nmap-xml.js';
import { isPortbanditError } from '../../src/core/errors.js';
import { PortRanges } from '../../src/core/ports.js';
import { observationsFromSightings } from '../../src/importers/index.js';
import { parseQuery, printQuery } from '../../src/store/query.js';
import { addScope, bearer, getWork, openApp, tempDataDir, tokens } from '../coordinator/helpers.js';

/**
 * issue 11: fuzzing every route's body and query, the query language and both importers' parsers.
 * The only acceptable outcomes are answers below 500 (and, for the parsers, coded errors); the
 * server must still answer afterwards. Bounded so the file runs in a few seconds.
 */

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';
const ROUTES: Array<{ method: Method; url: string; role: 'agent' | 'admin'; text?: boolean; query: string[] }> = [
  { method: 'GET', url: '/api/v1/agent/work', role: 'agent', query: ['version'] },
  { method: 'POST', url: '/api/v1/agent/results', role: 'agent', query: [] },
  { method: 'POST', url: '/api/v1/agent/refused', role: 'agent', query: [] },
  { method: 'POST', url: '/api/v1/agent/release', role: 'agent', query: [] },
  { method: 'GET', url: '/api/v1/admin/scope', role: 'admin', query: ['list'] },
  { method: 'POST', url: '/api/v1/admin/scope', role: 'admin', query: ['list'] },
  { method: 'POST', url: '/api/v1/admin/scope/remove', role: 'admin', query: ['list'] },
  { method: 'PUT', url: '/api/v1/admin/scope/import', role: 'admin', text: true, query: ['list', 'replace'] },
  { method: 'GET', url: '/api/v1/admin/scope/export', role: 'admin', query: ['list'] },
  { method: 'GET', url: '/api/v1/admin/cycle', role: 'admin', query: [] },
  { method: 'POST', url: '/api/v1/admin/rescan', role: 'admin', query: [] },
  { method: 'GET', url: '/api/v1/admin/queue', role: 'admin', query: [] },
  { method: 'GET', url: '/api/v1/admin/policies', role: 'admin', query: [] },
  { method: 'GET', url: '/api/v1/admin/policies/{p}', role: 'admin', query: [] },
  { method: 'PUT', url: '/api/v1/admin/policies/{p}', role: 'admin', query: [] },
  { method: 'PUT', url: '/api/v1/admin/policies/{p}/services', role: 'admin', text: true, query: [] },
  { method: 'DELETE', url: '/api/v1/admin/policies/{p}', role: 'admin', query: [] },
  { method: 'GET', url: '/api/v1/admin/policies/{p}/learned', role: 'admin', query: ['limit'] },
  { method: 'GET', url: '/api/v1/admin/agents', role: 'admin', query: [] },
  { method: 'POST', url: '/api/v1/admin/agents', role: 'admin', query: [] },
  { method: 'DELETE', url: '/api/v1/admin/agents/{p}', role: 'admin', query: [] },
  { method: 'GET', url: '/api/v1/admin/tokens', role: 'admin', query: [] },
  { method: 'POST', url: '/api/v1/admin/tokens', role: 'admin', query: [] },
  { method: 'DELETE', url: '/api/v1/admin/tokens/{p}', role: 'admin', query: [] },
  { method: 'GET', url: '/api/v1/search', role: 'admin', query: ['q', 'limit', 'cursor', 'offset', 'view', 'format'] },
  { method: 'GET', url: '/api/v1/hosts/{p}', role: 'admin', query: [] },
  { method: 'GET', url: '/api/v1/hosts/{p}/history', role: 'admin', query: ['limit', 'cursor'] },
  { method: 'GET', url: '/api/v1/hosts/{p}/diff', role: 'admin', query: ['from', 'to'] },
  { method: 'GET', url: '/api/v1/events', role: 'admin', query: ['cursor', 'limit'] },
  { method: 'GET', url: '/api/v1/stats', role: 'admin', query: ['tag', 'limit', 'hours'] },
  { method: 'GET', url: '/api/v1/export/recording', role: 'admin', query: ['since', 'until', 'name'] },
  { method: 'GET', url: '/api/v1/hosts/{p}/screenshots/{p}/{p}', role: 'admin', query: [] },
  { method: 'GET', url: '/api/v1/screenshots', role: 'admin', query: ['limit', 'offset'] },
];

// Values that reach the deeper code: addresses (some adversarial), ports, times, query text.
const interesting = fc.oneof(
  fc.constantFrom(
    '198.18.9.1',
    '198.18.9.0/28',
    '198.022.9.1',
    '::ffff:198.18.9.1',
    '2001:db8::/120',
    '10.1',
    '',
    'latest',
    'history',
    'ndjson',
    'hosts',
    '_default',
    'dmz',
    'port:22 OR (',
    'ctime:>2026-01-01',
    '-1',
    '0',
    '1e12',
    'true',
  ),
  fc.integer({ min: -2, max: 70_000 }).map(String),
  fc.string({ maxLength: 12 }),
);
const scalar = fc.oneof(interesting, fc.integer(), fc.double(), fc.boolean(), fc.constant(null));
const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(
      fc.oneof(
        interesting,
        fc.constantFrom(
          'entries',
          'ranges',
          'range',
          'tags',
          'ips',
          'name',
          'strategy',
          'budget',
          'scan',
          'leaseId',
          'ip',
          'status',
          'ports',
          'host',
          'startedAt',
          'finishedAt',
          'preflight',
          'reason',
          'params',
          'screenshots',
        ),
      ),
      tie('value'),
      { maxKeys: 5 },
    ),
  ),
})).value;

describe('fuzzing the coordinator', () => {
  const data = tempDataDir();
  let app: FastifyInstance;
  let admin: string;
  let agent: string;
  beforeAll(async () => {
    app = await openApp(data.dir, Date.now, { authFailuresPerMinute: 1_000_000 });
    const t = await tokens(app, 1);
    admin = t.admin;
    agent = t.agents[0]!;
    await addScope(app, admin, [{ range: '198.18.9.0/28', tags: ['dmz'] }]);
  });
  afterAll(async () => {
    await app.close();
    data.cleanup();
  });

  const request = fc.record({
    route: fc.constantFrom(...ROUTES),
    param: interesting,
    query: fc.array(
      fc.tuple(
        fc.oneof(
          fc.constantFrom(
            'list',
            'replace',
            'q',
            'limit',
            'cursor',
            'offset',
            'view',
            'format',
            'tag',
            'hours',
            'since',
            'until',
            'name',
            'from',
            'to',
            'version',
            'follow',
          ),
          fc.string({ maxLength: 6 }),
        ),
        interesting,
      ),
      { maxLength: 4 },
    ),
    body: fc.oneof(json, fc.string({ maxLength: 64 }), fc.constant(undefined)),
    token: fc.constantFrom('role', 'other', 'none', 'bogus'),
  });

  test.prop([request], { numRuns: 1500 })(
    'no route answers 5xx to any body, query or token',
    async ({ route, param, query, body, token }) => {
      const search = new URLSearchParams(query).toString();
      const url = route.url.replaceAll('{p}', encodeURIComponent(param) || 'x') + (search ? `?${search}` : '');
      const auth =
        token === 'none' ? {} : bearer(token === 'bogus' ? 'pbk_bogus' : (token === 'role') === (route.role === 'admin') ? admin : agent);
      const payload =
        route.method === 'GET' || route.method === 'DELETE' || body === undefined
          ? undefined
          : typeof body === 'string' && !route.text
            ? body
            : (JSON.stringify(body) ?? '');
      const res = await app.inject({
        method: route.method,
        url,
        headers: { ...auth, ...(payload !== undefined ? { 'content-type': route.text ? 'text/plain' : 'application/json' } : {}) },
        ...(payload !== undefined ? { payload } : {}),
      });
      expect(res.statusCode, `${route.method} ${url} ${payload ?? ''} -> ${res.body}`).toBeLessThan(500);
    },
  );

  test.prop([json, fc.integer({ min: -5000, max: 5000 })], { numRuns: 300 })(
    'result submissions with random fields around a real lease never 5xx',
    async (extra, shift) => {
      const work = await getWork(app, agent);
      if (!work) return;
      const now = Date.now();
      const body = {
        leaseId: work.leaseId,
        ip: work.ip,
        status: 'up',
        startedAt: now + shift * 1000,
        finishedAt: now,
        preflight: 'connect',
        ports: [{ port: work.ports[0], state: 'open', scripts: [{ id: 's', output: 'o', fields: extra }] }],
        host: typeof extra === 'object' && extra !== null && !Array.isArray(extra) ? extra : { x: extra },
      };
      const res = await app.inject({ method: 'POST', url: '/api/v1/agent/results', headers: bearer(agent), payload: body });
      expect(res.statusCode, res.body).toBeLessThan(500);
    },
  );

  test.prop([fc.integer({ min: 0, max: 6000 }), fc.constantFrom('host', 'fields'), fc.boolean()], { numRuns: 40 })(
    'results with free-form fields nested up to 6,000 deep never 5xx',
    async (depth, where, arrays) => {
      const work = await getWork(app, agent);
      if (!work) return;
      // Built as text: JSON.stringify itself overflows on such nesting.
      const deep = arrays ? `${'['.repeat(depth)}1${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
      const now = Date.now();
      const base = { leaseId: work.leaseId, ip: work.ip, status: 'up', startedAt: now - 1000, finishedAt: now, preflight: 'connect' };
      const payload =
        where === 'host'
          ? `${JSON.stringify({ ...base, ports: [] }).slice(0, -1)},"host":{"x":${deep}}}`
          : JSON.stringify({
              ...base,
              ports: [{ port: work.ports[0], state: 'open', scripts: [{ id: 's', output: 'o', fields: '@@' }] }],
            }).replace('"@@"', deep);
      const res = await app.inject({
        method: 'POST',
        url: '/api/v1/agent/results',
        headers: { ...bearer(agent), 'content-type': 'application/json' },
        payload,
      });
      expect(res.statusCode, res.body.slice(0, 300)).toBeLessThan(500);
    },
  );

  test('the server still answers afterwards', async () => {
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/api/v1/admin/cycle', headers: bearer(admin) })).statusCode).toBe(200);
  });
});

describe('fuzzing the query language and the importers', () => {
  const queryText = fc.oneof(
    fc.string({ maxLength: 60 }),
    fc
      .array(
        fc.oneof(
          fc.constantFrom(
            'port:',
            'ip:',
            'ctime:',
            'tag:',
            'service:',
            '"',
            '(',
            ')',
            '-',
            'NOT ',
            'OR ',
            'AND ',
            ' ',
            '..',
            '>=',
            '198.18.0.0/24',
            '198.022.0.1',
            '::ffff:',
            '2026-11-01',
            '\\',
          ),
          fc.string({ maxLength: 4 }),
        ),
        { maxLength: 16 },
      )
      .map((p) => p.join('')),
  );
  test.prop([queryText], { numRuns: 2000 })('the query parser either parses (and prints a fixed point) or throws PB_ERR_QUERY', (text) => {
    let node;
    try {
      node = parseQuery(text);
    } catch (error) {
      expect(isPortbanditError(error, 'PB_ERR_QUERY'), String(error)).toBe(true);
      return;
    }
    expect(parseQuery(printQuery(node))).toEqual(node);
  });

  const xmlPiece = fc.constantFrom(
    '<nmaprun>',
    '</nmaprun>',
    '<host>',
    '</host>',
    '<address addr="198.18.0.1" addrtype="ipv4"/>',
    '<address addr="198.022.0.1" addrtype="ipv4"/>',
    '<ports>',
    '</ports>',
    '<port protocol="tcp" portid="22">',
    '<port protocol="tcp" portid="99999">',
    '</port>',
    '<state state="open"/>',
    '<status state="up"/>',
    '<runstats><finished time="1"/></runstats>',
    '<scaninfo protocol="tcp" services="1-1000"/>',
    '<script id="x" output="y"><table><elem key="k">v</elem></table></script>',
    '<!--',
    '&amp;',
    '&bogus;',
    '<![CDATA[',
    ']]>',
    '"',
    '<',
  );
  test.prop([fc.array(fc.oneof(xmlPiece, fc.string({ maxLength: 6 })), { maxLength: 30 })], { numRuns: 600 })(
    'nmap XML: parsed, or PB_ERR_SCANNER',
    (pieces) => {
      try {
        const run = parseNmapXml(`<?xml version="1.0"?>${pieces.join('')}`, 'fuzz.xml');
        for (const h of run.hosts) expect(h.ip).not.toMatch(/^0\d|\.0\d/);
      } catch (error) {
        expect(isPortbanditError(error, 'PB_ERR_SCANNER'), String(error)).toBe(true);
      }
    },
  );

  const masscanLine = fc.oneof(
    fc.constantFrom(
      '[',
      ']',
      ',',
      '#masscan',
      'open tcp 80 198.18.0.1 1700000000',
      'open tcp 80 198.022.0.1 1700000000',
      'open tcp 0 198.18.0.1 1',
      'banner tcp 80 198.18.0.1 1 http x',
    ),
    json.map((v) => JSON.stringify(v) ?? ''),
    fc
      .record({
        ip: interesting,
        timestamp: interesting,
        ports: fc.array(
          fc.record({
            port: fc.integer({ min: -1, max: 70_000 }),
            proto: fc.constantFrom('tcp', 'udp'),
            status: fc.constantFrom('open', 'closed'),
          }),
          { maxLength: 3 },
        ),
      })
      .map((r) => JSON.stringify(r)),
    fc.string({ maxLength: 20 }),
  );
  test.prop([fc.array(masscanLine, { maxLength: 12 })], { numRuns: 600 })(
    'masscan output (-oJ, -oD, -oL) and the merge: parsed, or PB_ERR_SCANNER',
    (lines) => {
      let findings;
      try {
        findings = parseMasscanOutput(lines.join('\n'), 'fuzz');
      } catch (error) {
        expect(isPortbanditError(error, 'PB_ERR_SCANNER'), String(error)).toBe(true);
        return;
      }
      const probed = PortRanges.ALL;
      const { observations } = observationsFromSightings(
        findings.map((f) => ({ ip: f.ip, open: [f.port], probed, time: f.timestamp, fileIndex: 0 })),
        [],
        { epochBy: 'file' },
      );
      expect(observations.length).toBeLessThanOrEqual(findings.length);
    },
  );
});
