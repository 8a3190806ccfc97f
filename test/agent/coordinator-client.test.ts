import { type Server, createServer } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { fc, test as propTest } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorClient, RejectedError, errorCodeOf } from '../../agent/coordinator-client.js';
import { errorCodes } from '../../src/core/errors.js';
import { PortRanges } from '../../src/core/ports.js';
import { addScope, openApp, resultFor, tempDataDir, tokens } from '../coordinator/helpers.js';
import { freePort } from '../helpers/net.js';

/** What a rejected request threw: its class, code, HTTP status and message. */
async function rejection(p: Promise<unknown>): Promise<{ code: string; status: number; message: string }> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RejectedError);
  const r = error as RejectedError;
  return { code: r.code, status: r.status, message: r.message };
}

describe("the agent's coordinator client reads the condition from a 4xx answer", () => {
  const data = tempDataDir();
  let app: FastifyInstance;
  let url: string;
  let token: string;
  let foreign: Server;
  let foreignUrl: string;

  beforeAll(async () => {
    app = await openApp(data.dir, Date.now);
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    const t = await tokens(app);
    token = t.agents[0]!;
    await addScope(app, t.admin, [{ range: '198.18.30.1', tags: [] }]);
    // A budget below the port space, so some port is not in the work item (the default rate
    // funds every port of a one-address scope).
    await app.coordinator.setPolicy('', { strategy: 'adaptive', budget: 100 });
    // Not a coordinator: a proxy's 403 page, a 400 whose JSON has some other framework's code.
    foreign = createServer((req, res) => {
      if (req.url?.startsWith('/api/v1/agent/work'))
        res.writeHead(403, { 'content-type': 'text/html' }).end('<html><body>Forbidden by proxy</body></html>');
      else res.writeHead(400, { 'content-type': 'application/json' }).end('{"code":"FST_ERR_CTP_INVALID_MEDIA_TYPE","message":"bad"}');
    });
    await new Promise<void>((resolve) => foreign.listen(0, '127.0.0.1', resolve));
    foreignUrl = `http://127.0.0.1:${(foreign.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await app?.close();
    await new Promise((resolve) => foreign?.close(resolve));
    data.cleanup();
  });

  it("takes the coordinator's own code: a port outside the work item, an unknown lease, a bad token", async () => {
    const client = new CoordinatorClient(url, token);
    const work = (await client.getWork()).work!;
    // The client reads range items: the work item's ports come as `portRanges`.
    const leased = PortRanges.parse(work.portRanges!);
    const notLeased = [...Array(65535).keys()].map((i) => i + 1).find((p) => !leased.has(p))!;
    const outside = { ...resultFor(work, [], Date.now()), ports: [{ port: notLeased, state: 'open' as const }] };
    expect(await rejection(client.submit(outside))).toMatchObject({ code: 'PB_ERR_LEASE_PORT', status: 400 });
    expect(await rejection(client.submit({ ...resultFor(work, [], Date.now()), leaseId: 'lease_gone' }))).toMatchObject({
      code: 'PB_ERR_CONFLICT',
      status: 409,
    });
    expect(await rejection(new CoordinatorClient(url, 'pbk_wrong').getWork())).toMatchObject({ code: 'PB_ERR_UNAUTHORIZED', status: 401 });
  });

  it('falls back to PB_ERR_COORDINATOR_REJECTED, naming the HTTP status, when the body has no portbandit code', async () => {
    const client = new CoordinatorClient(foreignUrl, token);
    const page = await rejection(client.getWork());
    expect(page).toMatchObject({ code: 'PB_ERR_COORDINATOR_REJECTED', status: 403 });
    expect(page.message).toContain('coordinator answered 403');
    const other = await rejection(client.reportRefused('lease_x', 'why'));
    expect(other).toMatchObject({ code: 'PB_ERR_COORDINATOR_REJECTED', status: 400 });
    expect(other.message).toContain('coordinator answered 400');
  });
});

describe('several coordinators (one shared store): the client moves on when one does not answer', () => {
  const data = tempDataDir();
  let app: FastifyInstance;
  let url: string;
  let token: string;
  /** Stand-ins that answer every request with one status, counting the requests. */
  const standIns: Server[] = [];
  async function answering(status: number, headers: Record<string, string> = {}): Promise<{ url: string; hits: () => number }> {
    let hits = 0;
    const server = createServer((_req, res) => {
      hits++;
      res.writeHead(status, { 'content-type': 'application/json', ...headers }).end('{"code":"PB_ERR_IO","message":"stand-in"}');
    });
    standIns.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, hits: () => hits };
  }

  beforeAll(async () => {
    app = await openApp(data.dir, Date.now);
    url = await app.listen({ host: '127.0.0.1', port: 0 });
    const t = await tokens(app);
    token = t.agents[0]!;
    await addScope(app, t.admin, [{ range: '198.18.30.8/29', tags: [] }]);
  });
  afterAll(async () => {
    await app?.close();
    for (const server of standIns) await new Promise((resolve) => server.close(resolve));
    data.cleanup();
  });

  it('leases from the next coordinator when the first is unreachable, says so once, and stays there', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const switches: string[] = [];
    const client = new CoordinatorClient([dead, url], token, 5_000, (from, to, reason) => switches.push(`${from} -> ${to}: ${reason}`));
    expect(client.server).toBe(dead);
    const work = (await client.getWork()).work!;
    expect(work.ip).toMatch(/^198\.18\.30\./);
    expect(switches).toHaveLength(1);
    expect(switches[0]).toContain(`${dead} -> ${url}: GET ${dead}/api/v1/agent/work`);
    expect(switches[0]).toContain('coordinator unreachable');
    expect(client.server).toBe(url);
    // The result goes to the coordinator that answered, without trying the dead one again.
    expect((await client.submit(resultFor(work, [], Date.now()))).accepted).toBe(true);
    expect(switches).toHaveLength(1);
  });

  it('moves on after a 5xx (502 from a proxy, 503 overloaded), not after a 4xx', async () => {
    const gateway = await answering(502);
    const busy = await answering(503, { 'retry-after': '1' });
    const refusing = await answering(401);
    const client = new CoordinatorClient([gateway.url, busy.url, url], token);
    expect((await client.getWork()).work).toBeDefined();
    expect([gateway.hits(), busy.hits(), client.server]).toEqual([1, 1, url]);
    // A refusal is the same on every coordinator: thrown, the next one not asked.
    const refused = new CoordinatorClient([refusing.url, url], token);
    await expect(refused.getWork()).rejects.toBeInstanceOf(RejectedError);
    expect([refusing.hits(), refused.server]).toEqual([1, refusing.url]);
  });

  it('tries each coordinator once per request when none answers, then leaves the back-off to the caller', async () => {
    const a = await answering(500);
    const b = await answering(502);
    const client = new CoordinatorClient([a.url, b.url, a.url], token);
    const error = (await client.getWork().catch((e: unknown) => e)) as Error;
    expect(error.message).toMatch(/coordinator answered 50[02]/);
    // The same URL twice is one coordinator.
    expect(a.hits() + b.hits()).toBe(2);
  });

  it('names the flag when a URL is not one', () => {
    expect(() => new CoordinatorClient([url, 'ftp://x'], token)).toThrow(/--server: expected http\(s\)/);
    expect(() => new CoordinatorClient([], token)).toThrow(/--server/);
  });
});

describe('errorCodeOf', () => {
  it('reads a known code from a JSON error body and nothing else', () => {
    expect(errorCodeOf('{"statusCode":409,"code":"PB_ERR_LEASE_EXPIRED","message":"late"}')).toBe('PB_ERR_LEASE_EXPIRED');
    expect(errorCodeOf('{"code":"PB_ERR_NOPE"}')).toBeUndefined();
    expect(errorCodeOf('{"code":"toString"}')).toBeUndefined();
    expect(errorCodeOf('{"code":7}')).toBeUndefined();
    expect(errorCodeOf('null')).toBeUndefined();
    expect(errorCodeOf('<html>')).toBeUndefined();
    expect(errorCodeOf('')).toBeUndefined();
  });

  propTest.prop([
    fc.oneof(
      fc.string(),
      fc.json(),
      fc.constantFrom(...Object.keys(errorCodes)).map((code) => JSON.stringify({ code })),
    ),
  ])('never throws, and answers only codes portbandit has', (body) => {
    const code = errorCodeOf(body);
    expect(code === undefined || Object.hasOwn(errorCodes, code)).toBe(true);
  });
});

describe("the client's release against a coordinator older than work-request keys", () => {
  let server: Server;
  let url: string;
  const bodies: unknown[] = [];

  beforeAll(async () => {
    // The release route as it was: `leaseIds` required, no other field (400 otherwise).
    server = createServer((req, res) => {
      let text = '';
      req.on('data', (chunk: Buffer) => (text += chunk.toString()));
      req.on('end', () => {
        const body = JSON.parse(text) as { leaseIds?: string[] };
        bodies.push(body);
        const ok = Array.isArray(body.leaseIds) && Object.keys(body).length === 1;
        res.writeHead(ok ? 200 : 400, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify(
            ok
              ? { released: body.leaseIds!.length }
              : { statusCode: 400, code: 'FST_ERR_VALIDATION', message: 'body must NOT have additional properties' },
          ),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('sends the lease ids alone again when the coordinator refuses the request keys, and sends nothing for keys alone', async () => {
    const client = new CoordinatorClient(url, 'token');
    expect(await client.release(['lease-1', 'lease-2'], ['request-key-1'])).toEqual({ released: 2 });
    expect(bodies).toEqual([{ leaseIds: ['lease-1', 'lease-2'], workRequests: ['request-key-1'] }, { leaseIds: ['lease-1', 'lease-2'] }]);
    bodies.length = 0;
    expect(await client.release([], ['request-key-1'])).toEqual({ released: 0 });
    expect(bodies).toEqual([{ workRequests: ['request-key-1'] }]);
    bodies.length = 0;
    expect(await client.release([], [])).toEqual({ released: 0 });
    expect(bodies).toEqual([]);
  });
});
