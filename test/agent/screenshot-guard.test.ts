import { connect } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { AllowList, ScreenshotGuard } from '../../agent/index.js';

/** The agent's screenshot proxy (agent/screenshot-guard.ts) on loopback, with a raw client. */
describe('the screenshot guard', () => {
  let guard: ScreenshotGuard | undefined;
  afterEach(async () => {
    await guard?.close();
    guard = undefined;
  });

  /** Send `request` to the proxy and reset the connection (RST) once the first bytes come back. */
  async function requestThenReset(url: string, request: string): Promise<string> {
    const { port } = new URL(url);
    const socket = connect({ host: '127.0.0.1', port: Number(port) });
    socket.on('error', () => {});
    const answer = await new Promise<string>((resolve) => {
      socket.once('data', (d) => resolve(d.toString('latin1')));
      socket.write(request);
    });
    socket.resetAndDestroy();
    return answer;
  }

  test('a refused CONNECT whose client resets the connection (as Chromium does) does not take the agent down', async () => {
    guard = new ScreenshotGuard(AllowList.parse(['127.0.0.0/8']));
    const url = await guard.start();
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      for (let i = 0; i < 20; i++) {
        const answer = await requestThenReset(url, 'CONNECT update.example:443 HTTP/1.1\r\nHost: update.example:443\r\n\r\n');
        expect(answer).toMatch(/^HTTP\/1\.1 403/);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(uncaught).toEqual([]);
      expect(guard.log.filter((e) => e.method === 'CONNECT' && !e.allowed)).toHaveLength(20);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});
