import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BATCH_BYTES, CoordinatorClient, ResultBatcher } from '../../agent/index.js';
import type { ResultSubmission, WorkItem } from '../../src/protocol/protocol.js';
import { addScope, bearer, openApp, tempDataDir, tokens } from '../coordinator/helpers.js';
import { encodePng } from '../helpers/png.js';

describe('results with screenshots travel in batches that stay under the body limit', () => {
  const data = tempDataDir();
  let app: FastifyInstance;
  let url: string;
  let admin: string;
  let agentToken: string;
  const posts: Array<{ url: string; bytes: number; status?: number }> = [];

  beforeAll(async () => {
    app = await openApp(data.dir, Date.now);
    app.addHook('onRequest', async (req) => {
      if (req.method === 'POST') posts.push({ url: req.url, bytes: Number(req.headers['content-length'] ?? 0) });
    });
    app.addHook('onResponse', async (req, reply) => {
      const last = posts.findLast((p) => p.url === req.url && p.status === undefined);
      if (req.method === 'POST' && last) last.status = reply.statusCode;
    });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    const t = await tokens(app);
    admin = t.admin;
    agentToken = t.agents[0]!;
    await addScope(app, admin, [{ range: '127.0.0.1-127.0.0.2' }]);
    const res = await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/_default',
      headers: bearer(admin),
      payload: { strategy: 'fixed', budget: 4, params: { ports: [80, 443, 8443, 9443] } },
    });
    expect(res.statusCode, res.body).toBe(200);
  });
  afterAll(async () => {
    await app?.close();
    data.cleanup();
  });

  it('splits two results of 4 MiB of images each into two requests (one would pass 8 MiB), both stored', async () => {
    const client = new CoordinatorClient(url, agentToken);
    const items = (await client.getWork(2)).items as WorkItem[];
    expect(items).toHaveLength(2);
    const result = (w: WorkItem, seed: number): ResultSubmission => ({
      leaseId: w.leaseId,
      ip: w.ip,
      status: 'up',
      startedAt: Date.now() - 1000,
      finishedAt: Date.now(),
      preflight: 'connect',
      ports: [80, 443, 8443, 9443].map((port) => ({ port, state: 'open' as const, service: 'http' })),
      screenshots: [80, 443, 8443, 9443].map((port, i) => ({
        port,
        scheme: 'http' as const,
        mime: 'image/png' as const,
        data: encodePng(590, 590, 'noise', seed + i).toString('base64'),
        width: 590,
        height: 590,
      })),
    });
    const results = items.map((w, i) => result(w, 10 * i + 1));
    const size = (r: ResultSubmission) => Buffer.byteLength(JSON.stringify(r));
    expect(size(results[0]!) + size(results[1]!)).toBeGreaterThan(8 * 1024 * 1024);
    posts.length = 0;

    const batcher = new ResultBatcher({ client, flushMs: 100, flushAt: 16, log: () => {} });
    const answers = await Promise.all(results.map((r) => batcher.add(r)));

    expect(answers).toEqual([
      { kind: 'stored', duplicate: false, followUp: false },
      { kind: 'stored', duplicate: false, followUp: false },
    ]);
    expect(posts.map((p) => [p.url, p.status])).toEqual([
      ['/api/v1/agent/results/batch', 200],
      ['/api/v1/agent/results/batch', 200],
    ]);
    expect(posts.every((p) => p.bytes < BATCH_BYTES)).toBe(true);
    const list = (await app.inject({ method: 'GET', url: '/api/v1/screenshots', headers: bearer(admin) })).json() as { total: number };
    expect(list.total).toBe(8);
  }, 60_000);
});
