import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errors } from '@elastic/elasticsearch';
import ClientMockModule from '@elastic/elasticsearch-mock';
import { MemoryCluster } from './es-memory.js';

const ClientMock = ClientMockModule as unknown as typeof ClientMockModule.default;

/**
 * The in-memory Elasticsearch double (es-memory.ts; FOR CONTRACT TESTS ONLY, not evidence about
 * a real cluster) served over HTTP on 127.0.0.1, so a `portbandit serve` process can use it
 * through the official client as it would a cluster. Requests are routed to the same handlers
 * the client mock uses; `_bulk` bodies are NDJSON as the client sends them.
 */
export async function serveMemoryElasticsearch(): Promise<{ url: string; cluster: MemoryCluster; close(): Promise<void> }> {
  const mock = new ClientMock();
  const cluster = new MemoryCluster();
  cluster.register(mock);
  const server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const ndjson = String(req.headers['content-type'] ?? '').includes('ndjson');
      let body: Record<string, unknown> | Record<string, unknown>[] | undefined;
      try {
        if (text !== '')
          body = ndjson
            ? text
                .split('\n')
                .filter(Boolean)
                .map((line) => JSON.parse(line) as Record<string, unknown>)
            : (JSON.parse(text) as Record<string, unknown>);
      } catch {
        res.writeHead(400).end();
        return;
      }
      const params = {
        method: req.method ?? 'GET',
        path: decodeURIComponent(url.pathname),
        querystring: Object.fromEntries(url.searchParams),
        body,
      };
      const handler = mock.get(params) as ((p: typeof params) => unknown) | null;
      let status = 200;
      let payload: unknown = handler ? handler(params) : { error: 'no handler' };
      if (!handler) status = 404;
      if (payload instanceof errors.ResponseError) {
        status = payload.meta.statusCode ?? 500;
        payload = payload.meta.body;
      }
      res.writeHead(status, { 'content-type': 'application/json', 'x-elastic-product': 'Elasticsearch' });
      res.end(req.method === 'HEAD' || payload === '' ? undefined : JSON.stringify(payload));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    cluster,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
