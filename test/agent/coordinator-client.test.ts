import { type Server, createServer } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { fc, test as propTest } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CoordinatorClient, RejectedError, errorCodeOf } from '../../agent/coordinator-client.js';
import { errorCodes } from '../../src/core/errors.js';
import { PortRanges } from '../../src/core/ports.js';
import { addScope, openApp, resultFor, tempDataDir, tokens } from '../coordinator/helpers.js';

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
