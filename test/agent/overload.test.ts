import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { fc, test as propTest } from '@fast-check/vitest';
import { afterEach, describe, expect, it } from 'vitest';
import {
  Agent,
  AllowList,
  CoordinatorClient,
  OverloadedError,
  RETRY_AFTER_BOUNDS,
  ResultBatcher,
  type ScanConfig,
  retryAfterMsOf,
  retryDelayMs,
} from '../../agent/index.js';
import type { ResultSubmission } from '../../src/protocol/index.js';

/**
 * An overloaded coordinator answers 503 with Retry-After (PB_ERR_STORE_BUSY): the agent waits
 * what it says (bounded) instead of its own exponential back-off, for leases and for results.
 */

describe('retryAfterMsOf', () => {
  propTest.prop([fc.integer({ min: 0, max: 999_999_999 })])('reads delay-seconds, bounded to 250 ms .. 60 s', (seconds) => {
    const ms = retryAfterMsOf(String(seconds))!;
    expect(ms).toBe(Math.min(Math.max(seconds * 1000, RETRY_AFTER_BOUNDS.minMs), RETRY_AFTER_BOUNDS.maxMs));
  });

  it('reads an HTTP date, and nothing else', () => {
    const now = Date.UTC(2026, 11, 3, 22, 0, 0);
    expect(retryAfterMsOf(new Date(now + 5000).toUTCString(), now)).toBe(5000);
    expect(retryAfterMsOf(new Date(now - 5000).toUTCString(), now)).toBe(RETRY_AFTER_BOUNDS.minMs);
    for (const bad of ['', 'soon', '-1', '1.5', '12abc', '99999999999'])
      expect(retryAfterMsOf(bad, now), JSON.stringify(bad)).toBeUndefined();
    expect(retryAfterMsOf(null)).toBeUndefined();
    expect(retryDelayMs(new OverloadedError(2000, 'PB_ERR_STORE_BUSY', 'busy'), 16_000)).toBe(2000);
    expect(retryDelayMs(new OverloadedError(undefined, 'PB_ERR_STORE_BUSY', 'busy'), 16_000)).toBe(16_000);
    expect(retryDelayMs(new Error('down'), 16_000)).toBe(16_000);
  });
});

/** A stand-in coordinator on loopback: `answer` decides each response; requests are recorded with their time. */
class FakeCoordinator {
  readonly seen: Array<{ at: number; what: string }> = [];
  private server: Server | undefined;
  constructor(private readonly answer: (req: IncomingMessage, res: ServerResponse, n: number) => void) {}
  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        this.seen.push({ at: Date.now(), what: `${req.method} ${req.url}` });
        this.answer(req, res, this.seen.length);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }
  close(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

const busyBody = JSON.stringify({
  statusCode: 503,
  code: 'PB_ERR_STORE_BUSY',
  error: 'PortbanditError',
  message: 'The store is overloaded',
});

let fake: FakeCoordinator | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

describe('the client and the agent against an overloaded coordinator', () => {
  it("throws OverloadedError with the answer's code and Retry-After", async () => {
    fake = new FakeCoordinator((_req, res) => res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '2' }).end(busyBody));
    const error = await new CoordinatorClient(await fake.start(), 'pba_x').getWork(4).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OverloadedError);
    expect(error).toMatchObject({ code: 'PB_ERR_STORE_BUSY', retryAfterMs: 2000 });
  });

  it('a batch whose results the busy store failed is retried after its Retry-After', async () => {
    fake = new FakeCoordinator((_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json', 'retry-after': '3' }).end(
        JSON.stringify({
          results: [
            { outcome: 'failed', leaseId: 'l1', error: { statusCode: 503, code: 'PB_ERR_STORE_BUSY', message: 'busy' } },
            { outcome: 'failed', leaseId: 'l2', error: { statusCode: 500, code: 'PB_ERR_STORE', message: 'failed' } },
          ],
        }),
      ),
    );
    const batcher = new ResultBatcher({
      client: new CoordinatorClient(await fake.start(), 'pba_x'),
      flushMs: 5,
      flushAt: 2,
      log: () => {},
    });
    const result = (leaseId: string) => ({ leaseId, ports: [] }) as unknown as ResultSubmission;
    const [busy, failed] = await Promise.all([batcher.add(result('l1')), batcher.add(result('l2'))]);
    expect(busy.kind === 'retry' && busy.error).toBeInstanceOf(OverloadedError);
    expect(busy.kind === 'retry' && (busy.error as OverloadedError).retryAfterMs).toBe(3000);
    // A genuine failure keeps the usual back-off.
    expect(failed.kind === 'retry' && failed.error).not.toBeInstanceOf(OverloadedError);
  });

  it("the agent's next lease request waits the Retry-After (1 s), not its 20 s back-off", async () => {
    fake = new FakeCoordinator((_req, res, n) => {
      if (n === 1) res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' }).end(busyBody);
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ work: null, items: [], retryAfterMs: 60_000 }));
    });
    const url = await fake.start();
    const logs: string[] = [];
    const scan: Omit<ScanConfig, 'signal'> = {
      allow: AllowList.parse(['127.0.0.0/8']),
      scriptsAllow: new Set(),
      preflight: 'connect',
      tools: { nmap: null, masscan: null, rawSockets: false },
      masscan: { rate: 1000, retries: 0, waitSeconds: 0 },
      connect: { concurrency: 16, timeoutMs: 1000, retries: 0 },
      pseudoServiceThreshold: 100,
      log: (line) => logs.push(line),
    };
    const agent = new Agent({
      server: url,
      token: 'pba_x',
      concurrency: 4,
      once: true,
      scan,
      backoff: { initialMs: 20_000, maxMs: 60_000 },
    });
    const started = Date.now();
    const stats = await agent.run();
    // The 503 was retried (after its Retry-After), nothing was lost.
    expect(stats).toMatchObject({ errors: 0, retries: 1, submitted: 0 });
    expect(fake.seen).toHaveLength(2);
    for (const s of fake.seen) expect(s.what).toMatch(/^GET \/api\/v1\/agent\/work\?version=[^&]+&max=4$/);
    const waited = fake.seen[1]!.at - fake.seen[0]!.at;
    expect(waited, logs.join('\n')).toBeGreaterThanOrEqual(900);
    expect(waited, logs.join('\n')).toBeLessThan(10_000);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(logs.some((l) => l.includes('coordinator answered 503') && l.includes('retrying in 1000 ms'))).toBe(true);
  });
});
