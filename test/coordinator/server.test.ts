import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/coordinator/config.js';
import { startServer } from '../../src/coordinator/server.js';
import { tempDataDir } from './helpers.js';

function capture(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk, _enc, done) {
      text += String(chunk);
      done();
    },
  });
  return { stream, text: () => text };
}

describe('portbandit serve', () => {
  let data: ReturnType<typeof tempDataDir>;
  beforeEach(() => {
    data = tempDataDir();
  });
  afterEach(() => data.cleanup());

  it('prints a bootstrap admin token once, on the first start only, and serves on loopback', async () => {
    const config = resolveConfig({ flags: { dataDir: data.dir, port: 0, logLevel: 'silent' }, env: {} });
    const first = capture();
    let app = await startServer(config, {}, first.stream);
    const token = /\b(pbk_[A-Za-z0-9_-]{43})\b/.exec(first.text())?.[1];
    expect(token).toBeDefined();
    expect(first.text()).toMatch(/portbandit token create --agent NAME/);
    const port = (app.server.address() as { port: number }).port;
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/admin/agents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'scanner-1' }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { token: string }).token).toMatch(/^pba_/);
    await app.close();

    const second = capture();
    app = await startServer(config, {}, second.stream);
    expect(second.text()).not.toMatch(/pbk_/);
    expect(second.text()).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+/);
    await app.close();
  });
});
