import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fc, test as propTest } from '@fast-check/vitest';
import type { FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_SCREENSHOT_BYTES, type ResultSubmission, type Screenshot, type WorkItem } from '../../src/protocol/protocol.js';
import { checkScreenshots, withScreenshots } from '../../src/coordinator/screenshots.js';
import { readImageInfo } from '../../src/core/image-info.js';
import { ScreenshotStore } from '../../src/store/screenshot-store.js';
import { decodePng, encodePng, pixelAt } from '../helpers/png.js';
import { addScope, bearer, getWork, manualClock, openApp, resultFor, submit, tempDataDir, tokens } from './helpers.js';

/** A screenshot of `port`: a real PNG of the given size and colour. */
function shot(
  port: number,
  options: { width?: number; height?: number; rgb?: [number, number, number] | 'noise'; title?: string } = {},
): Screenshot {
  const width = options.width ?? 64;
  const height = options.height ?? 40;
  const png = encodePng(width, height, options.rgb ?? [208, 28, 139], port);
  return {
    port,
    scheme: 'http',
    mime: 'image/png',
    data: png.toString('base64'),
    width,
    height,
    ...(options.title !== undefined ? { title: options.title } : {}),
  };
}

/** A minimal JPEG header (SOI, APP0, SOF0 with the size, EOI): what the coordinator reads of a JPEG. */
function jpegHeader(width: number, height: number): Buffer {
  const app0 = Buffer.from([0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00]);
  const sof = Buffer.from([
    0xff,
    0xc0,
    0x00,
    0x11,
    0x08,
    height >> 8,
    height & 255,
    width >> 8,
    width & 255,
    0x03,
    0x01,
    0x22,
    0x00,
    0x02,
    0x11,
    0x01,
    0x03,
    0x11,
    0x01,
  ]);
  return Buffer.concat([Buffer.from([0xff, 0xd8]), app0, sof, Buffer.from([0xff, 0xd9])]);
}

describe('the coordinator takes web screenshots with results', () => {
  let data: ReturnType<typeof tempDataDir>;
  let app: FastifyInstance;
  let admin: string;
  let agent: string;
  const clock = manualClock();

  async function openWith(flags: Record<string, unknown> = {}): Promise<void> {
    data = tempDataDir();
    app = await openApp(data.dir, clock.now, flags);
    const t = await tokens(app);
    admin = t.admin;
    agent = t.agents[0]!;
    await addScope(app, admin, [{ range: '198.18.5.0/29', tags: ['web'] }]);
    await app.inject({
      method: 'PUT',
      url: '/api/v1/admin/policies/_default',
      headers: bearer(admin),
      payload: { strategy: 'fixed', budget: 6, params: { ports: [22, 80, 443, 8080, 8443, 9000] } },
    });
  }
  beforeEach(async () => openWith());
  afterEach(async () => {
    await app.close();
    data.cleanup();
  });

  async function lease(): Promise<WorkItem> {
    const w = await getWork(app, agent);
    if (!w) throw new Error('no work');
    clock.advance(10_000);
    return w;
  }

  /** A result with 80 and 443 open (http) and 22 open (ssh), 8080 closed. */
  function result(w: WorkItem, screenshots?: Screenshot[]): ResultSubmission {
    const base = resultFor(w, [80, 443], clock.now());
    return {
      ...base,
      ports: [{ port: 22, state: 'open', service: 'ssh' }, ...base.ports, { port: 8080, state: 'closed' }],
      ...(screenshots ? { screenshots } : {}),
    };
  }

  it('stores a screenshot of an open port, serves it as image/png with nosniff, and search finds the host with screenshot:true', async () => {
    const w = await lease();
    const res = await submit(app, agent, result(w, [shot(80, { title: 'Welcome to nginx', width: 128, height: 80 })]));
    expect(res.statusCode, res.body).toBe(200);

    const scan = (await app.inject({ method: 'GET', url: `/api/v1/hosts/${w.ip}`, headers: bearer(admin) })).json() as {
      scanId: string;
      screenshots: unknown;
    };
    expect(scan.screenshots).toEqual([
      { port: 80, scheme: 'http', mime: 'image/png', width: 128, height: 80, bytes: expect.any(Number), title: 'Welcome to nginx' },
    ]);

    const img = await app.inject({ method: 'GET', url: `/api/v1/hosts/${w.ip}/screenshots/${scan.scanId}/80`, headers: bearer(admin) });
    expect(img.statusCode).toBe(200);
    expect(img.headers['content-type']).toBe('image/png');
    expect(img.headers['x-content-type-options']).toBe('nosniff');
    const png = decodePng(img.rawPayload);
    expect([png.width, png.height]).toEqual([128, 80]);
    expect(pixelAt(png, 10, 10)).toEqual([208, 28, 139]);

    // The same image is refused without a token, and for another host, visit or port.
    expect((await app.inject({ method: 'GET', url: `/api/v1/hosts/${w.ip}/screenshots/${scan.scanId}/80` })).statusCode).toBe(401);
    const other = w.ip === '198.18.5.1' ? '198.18.5.2' : '198.18.5.1';
    expect(
      (await app.inject({ method: 'GET', url: `/api/v1/hosts/${other}/screenshots/${scan.scanId}/80`, headers: bearer(admin) })).statusCode,
    ).toBe(404);
    expect(
      (await app.inject({ method: 'GET', url: `/api/v1/hosts/${w.ip}/screenshots/${scan.scanId}/443`, headers: bearer(admin) })).statusCode,
    ).toBe(404);

    // A second host without a screenshot: screenshot:true tells them apart.
    const w2 = await lease();
    expect((await submit(app, agent, result(w2))).statusCode).toBe(200);
    const search = async (q: string) =>
      (
        (await app.inject({ method: 'GET', url: `/api/v1/search?q=${encodeURIComponent(q)}`, headers: bearer(admin) })).json() as {
          items: Array<{ ip: string }>;
        }
      ).items.map((s) => s.ip);
    expect(await search('screenshot:true')).toEqual([w.ip]);
    expect(await search('screenshot:false')).toEqual([w2.ip]);
    expect(await search('screenshot:true port:443')).toEqual([w.ip]);

    const list = (await app.inject({ method: 'GET', url: '/api/v1/screenshots', headers: bearer(admin) })).json() as {
      total: number;
      items: Array<{ url: string; ip: string }>;
    };
    expect(list.total).toBe(1);
    expect(list.items[0]).toMatchObject({ ip: w.ip, url: `/api/v1/hosts/${w.ip}/screenshots/${scan.scanId}/80` });
  });

  it('creates no screenshot file until a screenshot arrives (reads neither)', async () => {
    const w = await lease();
    expect((await submit(app, agent, result(w))).statusCode).toBe(200);
    const scanId = (
      (await app.inject({ method: 'GET', url: `/api/v1/hosts/${w.ip}`, headers: bearer(admin) })).json() as { scanId: string }
    ).scanId;
    expect((await app.inject({ method: 'GET', url: '/api/v1/screenshots', headers: bearer(admin) })).json()).toEqual({
      total: 0,
      bytes: 0,
      budgetBytes: 1024 ** 3,
      items: [],
    });
    expect(
      (await app.inject({ method: 'GET', url: `/api/v1/hosts/${w.ip}/screenshots/${scanId}/80`, headers: bearer(admin) })).statusCode,
    ).toBe(404);
    const gallery = await app.inject({ method: 'GET', url: '/ui/screenshots', headers: bearer(admin) });
    expect(gallery.body).toContain('No screenshots yet.');
    expect(gallery.body).toContain('0 B of a 1 GiB budget');
    expect(existsSync(join(data.dir, 'screenshots.db'))).toBe(false);
  });

  it('refuses screenshots that are not of an open port, not images, mislabelled or too large, naming the screenshot, and stores nothing of that result', async () => {
    const w = await lease();
    const html = Buffer.from('<html><script>alert(1)</script></html>').toString('base64');
    const png = shot(80);
    const cases: Array<[string, Screenshot[], RegExp, string]> = [
      ['a closed port', [shot(8080)], /not an open port/, 'screenshots[0].port'],
      ['a port not in the result', [shot(9999)], /not an open port/, 'screenshots[0].port'],
      ['one port twice', [shot(80), shot(80)], /two screenshots/, 'screenshots[1].port'],
      ['HTML labelled PNG', [{ ...png, data: html }], /not a PNG or JPEG/, 'screenshots[0].data'],
      ['a PNG labelled JPEG', [{ ...png, mime: 'image/jpeg' }], /is image\/png, not image\/jpeg/, 'screenshots[0].mime'],
      ['a wrong size', [{ ...png, width: 65 }], /is 64x40, not 65x40/, 'screenshots[0].width'],
    ];
    for (const [what, screenshots, message, where] of cases) {
      const res = await submit(app, agent, result(w, screenshots));
      expect(res.statusCode, what).toBe(400);
      const body = res.json() as { code: string; message: string };
      expect(body.code, what).toBe('PB_ERR_SCREENSHOT');
      expect(body.message, what).toMatch(message);
      expect(checkScreenshotsWhere(result(w, screenshots)), what).toBe(where);
    }
    // Five open web ports, five images just under 1 MiB each: over 4 MiB together.
    const five = [22, 80, 443, 8443, 9000];
    const heavy: ResultSubmission = {
      ...result(w),
      ports: five.map((port) => ({ port, state: 'open' as const, service: 'http' })),
      screenshots: five.map((p) => shot(p, { width: 590, height: 590, rgb: 'noise' })),
    };
    expect(Buffer.from(heavy.screenshots![0]!.data, 'base64').length).toBeLessThan(MAX_SCREENSHOT_BYTES);
    const tooMuch = await submit(app, agent, heavy);
    expect(tooMuch.statusCode).toBe(400);
    expect(tooMuch.json().message).toMatch(/total more than 4194304 bytes/);
    expect(checkScreenshotsWhere(heavy)).toBe('screenshots[4].data');
    // An image over the per-image cap is refused by the schema before any decoding.
    const big = await submit(app, agent, result(w, [{ ...png, data: 'A'.repeat(Math.ceil(MAX_SCREENSHOT_BYTES / 3) * 4 + 4) }]));
    expect(big.statusCode).toBe(400);
    expect(big.json().message).toMatch(/screenshots\/0\/data/);

    // Nothing was stored, and the lease still takes a correct result.
    expect((await app.inject({ method: 'GET', url: `/api/v1/hosts/${w.ip}`, headers: bearer(admin) })).statusCode).toBe(404);
    expect(
      (
        await submit(
          app,
          agent,
          result(w, [
            shot(80),
            { ...shot(443), mime: 'image/jpeg', data: jpegHeader(1280, 800).toString('base64'), width: 1280, height: 800, scheme: 'https' },
          ]),
        )
      ).statusCode,
    ).toBe(200);
    const stored = (await app.inject({ method: 'GET', url: `/api/v1/hosts/${w.ip}`, headers: bearer(admin) })).json() as {
      scanId: string;
      screenshots: Array<{ port: number; mime: string }>;
    };
    expect(stored.screenshots.map((s) => [s.port, s.mime])).toEqual([
      [80, 'image/png'],
      [443, 'image/jpeg'],
    ]);
    const jpeg = await app.inject({ method: 'GET', url: `/api/v1/hosts/${w.ip}/screenshots/${stored.scanId}/443`, headers: bearer(admin) });
    expect(jpeg.headers['content-type']).toBe('image/jpeg');
  });

  it('answers each result of a batch alone: a bad screenshot refuses its result only', async () => {
    const [a, b] = [await lease(), await lease()];
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/agent/results/batch',
      headers: bearer(agent),
      payload: { results: [result(a, [shot(8080)]), result(b, [shot(443)])] },
    });
    expect(res.statusCode).toBe(200);
    const outcomes = (res.json() as { results: Array<{ outcome: string; error?: { message: string } }> }).results;
    expect(outcomes.map((o) => o.outcome)).toEqual(['rejected', 'accepted']);
    expect(outcomes[0]!.error?.message).toMatch(/port 8080 is not an open port/);
    const scan = (await app.inject({ method: 'GET', url: `/api/v1/hosts/${b.ip}`, headers: bearer(admin) })).json() as { scanId: string };
    expect(
      (await app.inject({ method: 'GET', url: `/api/v1/hosts/${b.ip}/screenshots/${scan.scanId}/443`, headers: bearer(admin) })).statusCode,
    ).toBe(200);
  });

  it('keeps the total within the budget by dropping the oldest images, and says so on the host page', async () => {
    await app.close();
    data.cleanup();
    // Room for three of the five images below (each about 9.6 KB of noise).
    await openWith({ screenshotBudgetBytes: 30_000 });
    const visits: Array<{ ip: string; scanId: string; bytes: number }> = [];
    for (let i = 0; i < 5; i++) {
      const w = await lease();
      const s = shot(80, { width: 56, height: 56, rgb: 'noise' });
      expect(
        (await submit(app, agent, { ...result(w, [{ ...s, data: encodePng(56, 56, 'noise', 100 + i).toString('base64') }]) })).statusCode,
      ).toBe(200);
      const scanId = (
        (await app.inject({ method: 'GET', url: `/api/v1/hosts/${w.ip}`, headers: bearer(admin) })).json() as { scanId: string }
      ).scanId;
      visits.push({ ip: w.ip, scanId, bytes: encodePng(56, 56, 'noise', 100 + i).length });
    }
    expect(visits[0]!.bytes).toBeGreaterThan(9000);
    const status = async (v: (typeof visits)[number]) =>
      (await app.inject({ method: 'GET', url: `/api/v1/hosts/${v.ip}/screenshots/${v.scanId}/80`, headers: bearer(admin) })).statusCode;
    expect(await Promise.all(visits.map(status))).toEqual([404, 404, 200, 200, 200]);
    const list = (await app.inject({ method: 'GET', url: '/api/v1/screenshots', headers: bearer(admin) })).json() as {
      total: number;
      bytes: number;
      budgetBytes: number;
      items: Array<{ ip: string }>;
    };
    expect(list.total).toBe(3);
    expect(list.bytes).toBeLessThanOrEqual(30_000);
    expect(list.bytes).toBe(visits.slice(2).reduce((a, v) => a + v.bytes, 0));
    expect(list.items.map((s) => s.ip)).toEqual(
      visits
        .slice(2)
        .reverse()
        .map((v) => v.ip),
    );
    // The dropped image's visit still says it had one (search, host page), and why it is gone.
    const page = await app.inject({ method: 'GET', url: `/ui/host/${visits[0]!.ip}`, headers: bearer(admin) });
    expect(page.body).toContain('image dropped by the screenshot budget');
    const kept = await app.inject({ method: 'GET', url: `/ui/host/${visits[4]!.ip}`, headers: bearer(admin) });
    expect(kept.body).toContain(`src="/ui/host/${visits[4]!.ip}/screenshots/${visits[4]!.scanId}/80"`);
  });
});

/** Where checkScreenshots says the problem is (the same check the route runs). */
function checkScreenshotsWhere(input: ResultSubmission): string | undefined {
  try {
    checkScreenshots(input);
  } catch (error) {
    return (error as { where?: string }).where;
  }
  return undefined;
}

describe('the screenshot store', () => {
  propTest.prop(
    [
      fc.array(fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 30 }),
      fc.integer({ min: 0, max: 20_000 }),
    ],
    { numRuns: 60 },
  )('stays within its budget, keeps a newest suffix, and counts exactly what it holds', (visits, budget) => {
    const store = ScreenshotStore.open(':memory:', budget);
    try {
      const all: Array<{ scanId: string; port: number; bytes: number }> = [];
      visits.forEach((sizes, v) => {
        const shots = sizes.map((bytes, i) => ({
          scanId: `s${v}`,
          ip: '198.18.0.1',
          port: 80 + i,
          scheme: 'http' as const,
          mime: 'image/png' as const,
          width: 1,
          height: 1,
          bytes,
          data: Buffer.alloc(bytes, v),
        }));
        store.put(shots, v);
        all.push(...shots.map((s) => ({ scanId: s.scanId, port: s.port, bytes: s.bytes })));
      });
      const held = store.newest(1000);
      const total = held.reduce((a, s) => a + s.bytes, 0);
      expect(store.totalBytes()).toBe(total);
      expect(store.count()).toBe(held.length);
      expect(total).toBeLessThanOrEqual(budget);
      // What is held is the newest images, in order, and whatever fitted.
      const suffix = all.slice(all.length - held.length).reverse();
      expect(held.map((s) => `${s.scanId}:${s.port}`)).toEqual(suffix.map((s) => `${s.scanId}:${s.port}`));
      const next = all[all.length - held.length - 1];
      if (next) expect(total + next.bytes).toBeGreaterThan(budget);
      for (const s of held) expect(store.get(s.scanId, s.port)?.data.length).toBe(s.bytes);
    } finally {
      store.close();
    }
  });

  propTest.prop([fc.uint8Array({ maxLength: 64 }), fc.constantFrom('png', 'jpeg', 'none'), fc.nat({ max: 70 })])(
    'reads any bytes without throwing: a size only from a well-formed header, never zero',
    (tail, prefix, cut) => {
      const head =
        prefix === 'png'
          ? encodePng(2, 3, [9, 9, 9]).subarray(0, cut)
          : prefix === 'jpeg'
            ? jpegHeader(4, 5).subarray(0, cut)
            : Buffer.alloc(0);
      const info = readImageInfo(Buffer.concat([head, Buffer.from(tail)]));
      if (info !== undefined) {
        expect(info.width).toBeGreaterThan(0);
        expect(info.height).toBeGreaterThan(0);
        expect(['image/png', 'image/jpeg']).toContain(info.mime);
      }
    },
  );

  propTest.prop([
    fc.array(
      fc.record({
        port: fc.constantFrom(22, 80, 443, 9),
        mime: fc.constantFrom('image/png' as const, 'image/jpeg' as const),
        width: fc.integer({ min: 1, max: 9 }),
        height: fc.integer({ min: 1, max: 9 }),
        bytes: fc.uint8Array({ maxLength: 80 }),
        png: fc.boolean(),
      }),
      { maxLength: 4 },
    ),
  ])(
    'checkScreenshots accepts exactly the well-formed screenshots of open ports and refuses the rest with a coded error naming one',
    (raw) => {
      const screenshots = raw.map((r) => ({
        port: r.port,
        scheme: 'http' as const,
        mime: r.mime,
        width: r.width,
        height: r.height,
        data: (r.png ? encodePng(r.width, r.height, [1, 2, 3]) : Buffer.from(r.bytes)).toString('base64'),
      }));
      const input = { status: 'up' as const, ports: [22, 80, 443].map((port) => ({ port, state: 'open' as const })), screenshots };
      const ports = screenshots.map((x) => x.port);
      const valid = raw.every((r) => r.port !== 9 && r.png && r.mime === 'image/png') && new Set(ports).size === ports.length;
      try {
        const out = checkScreenshots(input);
        expect(valid).toBe(true);
        expect(out.map((o) => o.port)).toEqual(ports);
      } catch (error) {
        expect(valid).toBe(false);
        expect(error).toMatchObject({
          code: 'PB_ERR_SCREENSHOT',
          where: expect.stringMatching(/^screenshots\[\d\]\.(port|data|mime|width)$/),
        });
      }
    },
  );

  it("keeps a visit's screenshots across its rounds: a later round's image of a port replaces the earlier one", () => {
    const meta = (port: number, title: string) => ({
      port,
      scheme: 'http' as const,
      mime: 'image/png' as const,
      width: 64,
      height: 40,
      bytes: 100,
      title,
    });
    const base = {
      scanId: 'v1',
      ip: '198.18.5.1',
      tags: [],
      agentId: 'a',
      startedAt: 1,
      finishedAt: 2,
      epoch: 0,
      cycle: 1,
      ports: [],
      preflight: 'connect' as const,
      probedPorts: '80,443',
      timings: {},
    };
    const prior = { ...base, screenshots: [meta(80, 'round 0'), meta(8080, 'round 0')] };
    const next = withScreenshots(base, prior, [
      { ...meta(443, 'round 1'), data: Buffer.alloc(1) },
      { ...meta(80, 'round 1'), data: Buffer.alloc(1) },
    ]);
    expect(next.screenshots).toEqual([meta(80, 'round 1'), meta(443, 'round 1'), meta(8080, 'round 0')]);
    expect(withScreenshots(base, undefined, [])).toBe(base);
  });

  it('reads the size of real PNG and JPEG headers and refuses anything else', () => {
    expect(readImageInfo(encodePng(3, 2, [1, 2, 3]))).toEqual({ mime: 'image/png', width: 3, height: 2 });
    expect(readImageInfo(jpegHeader(1280, 800))).toEqual({ mime: 'image/jpeg', width: 1280, height: 800 });
    expect(readImageInfo(Buffer.from('GIF89a....'))).toBeUndefined();
    expect(readImageInfo(Buffer.from([0xff, 0xd8, 0xff]))).toBeUndefined();
    expect(readImageInfo(encodePng(3, 2, [1, 2, 3]).subarray(0, 20))).toBeUndefined();
  });
});
