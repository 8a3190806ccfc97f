import type { FastifyReply } from 'fastify';
import type { RouteApp } from './types.js';
import { PortbanditError } from '../../core/index.js';
import { matchEvent, parseEventQuery, parseQuery, type ScanDocument } from '../../store/index.js';
import { requireRole } from '../auth.js';
import { type Coordinator, normalizeIp } from '../coordinator.js';
import { diffScans } from '../diff.js';
import { errorResponseSchema } from '../../protocol/index.js';
import { findHostScan, formatNmapXml } from '../nmap-export.js';
import { streamRecording } from '../recording-export.js';

const errors = {
  400: errorResponseSchema,
  401: errorResponseSchema,
  403: errorResponseSchema,
  404: errorResponseSchema,
  429: errorResponseSchema,
};
const anyObject = { type: 'object', additionalProperties: true } as const;
const ipParams = { type: 'object', required: ['ip'], properties: { ip: { type: 'string', maxLength: 64 } } } as const;

function ipOf(text: string): string {
  try {
    return normalizeIp(text);
  } catch {
    throw new PortbanditError('PB_ERR_ADDRESS', `expected an IPv4 or IPv6 address, got ${JSON.stringify(text)}`, { where: 'ip' });
  }
}

/** Write NDJSON lines to a hijacked reply, honouring backpressure. */
async function writeLine(reply: FastifyReply, value: unknown): Promise<boolean> {
  if (reply.raw.destroyed) return false;
  if (!reply.raw.write(JSON.stringify(value) + '\n')) {
    await new Promise<void>((resolve) => {
      reply.raw.once('drain', resolve);
      reply.raw.once('close', resolve);
    });
  }
  return !reply.raw.destroyed;
}

/** Search, host history and diffs, the events stream, statistics and the history export. */
export function registerResultRoutes(app: RouteApp, coordinator: Coordinator): void {
  // preParsing: the token is checked before the query is validated (see admin.ts).
  const preParsing = requireRole(coordinator, 'admin');
  const security = [{ bearer: [] }];
  const store = coordinator.store;

  app.get(
    '/api/v1/search',
    {
      preParsing,
      schema: {
        tags: ['results'],
        summary:
          'Search scans: `port:22 service:ssh product:nginx tag:dmz ip:198.18.0.0/24 ctime:>2026-11-01 -port:80 "free text"`. format=ndjson|hosts exports every match.',
        security,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            q: { type: 'string', maxLength: 4096, default: '' },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
            cursor: { type: 'string', maxLength: 512 },
            offset: { type: 'integer', minimum: 0 },
            view: { type: 'string', enum: ['latest', 'history'], default: 'latest' },
            format: { type: 'string', enum: ['json', 'ndjson', 'hosts'], default: 'json' },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              query: { type: 'string' },
              total: { type: 'integer' },
              nextCursor: { type: 'string' },
              items: { type: 'array', items: anyObject },
            },
          },
          ...errors,
        },
      },
    },
    async (req, reply) => {
      const { q, limit, cursor, offset, view, format } = req.query;
      const query = parseQuery(q);
      if (format === 'json') {
        const page = await store.search(query, {
          limit,
          view,
          ...(cursor !== undefined ? { cursor } : {}),
          ...(offset !== undefined ? { offset } : {}),
        });
        return {
          query: q,
          total: page.total,
          ...(page.nextCursor !== undefined ? { nextCursor: page.nextCursor } : {}),
          items: page.items,
        };
      }
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': format === 'hosts' ? 'text/plain; charset=utf-8' : 'application/x-ndjson' });
      const seen = new Set<string>();
      let next: string | undefined;
      do {
        const page = await store.search(query, { limit: 1000, view, ...(next !== undefined ? { cursor: next } : {}) });
        for (const scan of page.items) {
          if (format === 'hosts') {
            if (!seen.has(scan.ip)) {
              seen.add(scan.ip);
              reply.raw.write(scan.ip + '\n');
            }
          } else if (!(await writeLine(reply, scan))) return reply;
        }
        next = page.nextCursor;
      } while (next !== undefined && !reply.raw.destroyed);
      reply.raw.end();
      return reply;
    },
  );

  app.get(
    '/api/v1/hosts/:ip',
    {
      preParsing,
      schema: { tags: ['results'], summary: "A host's latest scan.", security, params: ipParams, response: { 200: anyObject, ...errors } },
    },
    async (req) => {
      const ip = ipOf(req.params.ip);
      const scan = await store.getLatestScan(ip);
      if (!scan) throw new PortbanditError('PB_ERR_NOT_FOUND', `${ip} has never been scanned`, { where: 'ip' });
      return scan;
    },
  );

  app.get(
    '/api/v1/hosts/:ip/history',
    {
      preParsing,
      schema: {
        tags: ['results'],
        summary: "A host's scans, newest first.",
        security,
        params: ipParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 }, cursor: { type: 'string', maxLength: 512 } },
        },
        response: {
          200: {
            type: 'object',
            properties: { total: { type: 'integer' }, nextCursor: { type: 'string' }, items: { type: 'array', items: anyObject } },
          },
          ...errors,
        },
      },
    },
    async (req) => {
      const page = await store.hostHistory(ipOf(req.params.ip), {
        limit: req.query.limit,
        ...(req.query.cursor !== undefined ? { cursor: req.query.cursor } : {}),
      });
      return { total: page.total, ...(page.nextCursor !== undefined ? { nextCursor: page.nextCursor } : {}), items: page.items };
    },
  );

  app.get(
    '/api/v1/hosts/:ip/diff',
    {
      preParsing,
      schema: {
        tags: ['results'],
        summary: 'Diff two scans of a host (default: the latest against the one before): ports opened, closed, service/version changed.',
        security,
        params: ipParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { from: { type: 'string', maxLength: 64 }, to: { type: 'string', maxLength: 64 } },
        },
        response: { 200: anyObject, ...errors },
      },
    },
    async (req) => {
      const ip = ipOf(req.params.ip);
      const get = async (id: string, which: string): Promise<ScanDocument> => {
        const scan = await store.getScan(id);
        if (!scan || scan.ip !== ip)
          throw new PortbanditError('PB_ERR_NOT_FOUND', `no scan ${JSON.stringify(id)} of ${ip}`, { where: which });
        return scan;
      };
      let to: ScanDocument | undefined;
      let from: ScanDocument | undefined;
      if (req.query.to !== undefined) to = await get(req.query.to, 'to');
      if (req.query.from !== undefined) from = await get(req.query.from, 'from');
      if (!to || !from) {
        const recent = (await store.hostHistory(ip, { limit: 2 })).items;
        to ??= recent[0];
        from ??= recent.find((s) => s.scanId !== to?.scanId);
      }
      if (!to) throw new PortbanditError('PB_ERR_NOT_FOUND', `${ip} has never been scanned`, { where: 'ip' });
      return { ip, ...diffScans(from, to) };
    },
  );

  app.get(
    '/api/v1/events',
    {
      preParsing,
      schema: {
        tags: ['results'],
        summary:
          'Service events (service-new, service-closed, service-changed, host-new) as NDJSON from a cursor, optionally filtered by an event query (q=kind:service-new port:3389 tag:dmz). follow=true keeps the stream open; lines {"cursor": ...} are checkpoints to resume from (they pass events the filter skipped).',
        security,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            q: { type: 'string', maxLength: 4096, default: '' },
            cursor: { type: 'string', maxLength: 512 },
            limit: { type: 'integer', minimum: 1, maximum: 10000, default: 1000 },
            follow: { type: 'boolean', default: false },
          },
        },
        response: { ...errors },
      },
    },
    async (req, reply) => {
      let cursor = req.query.cursor;
      const filter = parseEventQuery(req.query.q);
      // The first page is read before the reply is hijacked: a bad cursor is a plain 400, not a
      // 200 stream that never ends.
      let first: Awaited<ReturnType<typeof store.readEvents>> | undefined = await store.readEvents({
        ...(cursor !== undefined ? { cursor } : {}),
        limit: req.query.limit,
      });
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      // Send the headers now: a follower must see the stream open before the first event.
      reply.raw.flushHeaders();
      let idleSince = Date.now();
      while (!reply.raw.destroyed && !coordinator.closing) {
        const page = first ?? (await store.readEvents({ ...(cursor !== undefined ? { cursor } : {}), limit: req.query.limit }));
        first = undefined;
        for (const e of page.events) if (matchEvent(e, filter) && !(await writeLine(reply, e))) return;
        if (page.events.length > 0 || page.cursor !== cursor) {
          cursor = page.cursor;
          if (!(await writeLine(reply, { cursor }))) return;
          idleSince = Date.now();
        }
        if (!req.query.follow) break;
        if (page.events.length === req.query.limit) continue;
        if (Date.now() - idleSince > 15_000) {
          // A checkpoint line also keeps idle proxies from closing the stream.
          if (!(await writeLine(reply, { cursor }))) return;
          idleSince = Date.now();
        }
        await coordinator.waitForEvents(1000);
      }
      reply.raw.end();
    },
  );

  app.get(
    '/api/v1/stats',
    {
      preParsing,
      schema: {
        tags: ['results'],
        summary: 'Statistics: top ports and services (optionally for one tag), cycle progress and per-tag cycle coverage, scans per hour.',
        security,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            tag: { type: 'string', maxLength: 64 },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 20 },
            hours: { type: 'integer', minimum: 1, maximum: 24 * 90, default: 24 },
          },
        },
        response: { 200: anyObject, ...errors },
      },
    },
    async (req) => {
      const { tag, limit, hours } = req.query;
      const until = coordinator.now();
      const opt = tag !== undefined ? { tag } : {};
      const [counts, topPorts, topServices, perHour, inFlight, queued] = await Promise.all([
        store.counts(opt),
        store.topPorts({ ...opt, limit }),
        store.topServices({ ...opt, limit }),
        store.scansPerHour({ ...opt, since: until - hours * 3_600_000, until }),
        store.countLeases(),
        store.listQueuedWork(10_000),
      ]);
      return {
        ...(tag !== undefined ? { tag } : {}),
        counts,
        topPorts,
        topServices,
        scansPerHour: perHour,
        cycle: coordinator.progress(),
        coverage: await coordinator.cycleCoverage(),
        estimatedCoverage: coordinator.estimatedCoverage(),
        budgets: coordinator.budgets(),
        ...(coordinator.nextCycleAt() !== undefined ? { nextCycleAt: coordinator.nextCycleAt() } : {}),
        leasesInFlight: inFlight,
        queueLength: queued.length,
        scopeAddresses: String(coordinator.addressSpace.size),
      };
    },
  );

  app.get(
    '/api/v1/export/recording',
    {
      preParsing,
      schema: {
        tags: ['results'],
        summary: 'The history as a scope recording (NDJSON replay format), one line per host per cycle.',
        security,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            since: { type: 'integer', minimum: 0 },
            until: { type: 'integer', minimum: 0 },
            name: { type: 'string', maxLength: 128, default: 'coordinator-history' },
          },
        },
        response: { ...errors },
      },
    },
    async (req, reply) => {
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': 'application/x-ndjson' });
      const { since, until, name } = req.query;
      await streamRecording(
        store,
        { name, ...(since !== undefined ? { since } : {}), ...(until !== undefined ? { until } : {}) },
        async (line) => {
          if (reply.raw.destroyed) return false;
          if (!reply.raw.write(line + '\n')) await new Promise((r) => reply.raw.once('drain', r));
          return true;
        },
      );
      reply.raw.end();
    },
  );
  app.get(
    '/api/v1/export/nmap',
    {
      preParsing,
      schema: {
        tags: ['results'],
        summary: 'One visit of a host (default its latest) as an nmap -oX report that `portbandit import nmap` reads back.',
        security,
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['ip'],
          properties: { ip: { type: 'string', maxLength: 64 }, scan: { type: 'string', maxLength: 64 } },
        },
        response: { 200: { type: 'string' }, ...errors },
      },
    },
    async (req, reply) => {
      const ip = ipOf(req.query.ip);
      const scan = await findHostScan(store, ip, req.query.scan);
      return reply.type('application/xml; charset=utf-8').send(formatNmapXml(scan));
    },
  );
}
