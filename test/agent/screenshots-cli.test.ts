import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApp, tempDataDir, tokens } from '../coordinator/helpers.js';
import { CHROMIUM, haveChromium } from '../helpers/chromium.js';

const CLI = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));
const run = promisify(execFile);

/** `portbandit agent` as an operator starts it, against a coordinator on loopback with nothing to scan. */
describe.skipIf(!existsSync(CLI) || !haveChromium('the agent --screenshots CLI test'))(
  'portbandit agent --screenshots (the built CLI)',
  () => {
    const data = tempDataDir();
    let app: FastifyInstance;
    let url: string;
    let token: string;
    const agent = (...flags: string[]) =>
      run(process.execPath, [CLI, 'agent', '--server', url, '--allow', '127.0.0.1', '--preflight', 'connect', '--once', ...flags], {
        env: { ...process.env, PORTBANDIT_AGENT_TOKEN: token },
      });

    beforeAll(async () => {
      app = await openApp(data.dir, Date.now);
      url = await app.listen({ host: '127.0.0.1', port: 0 });
      token = (await tokens(app)).agents[0]!;
    });
    afterAll(async () => {
      await app?.close();
      data.cleanup();
    });

    it('says at startup that screenshots are on and which Chromium renders them', async () => {
      const { stderr, stdout } = await agent('--screenshots', '--chromium', CHROMIUM, '--screenshot-timeout', '5000');
      expect(stderr).toMatch(
        /agent: screenshots on: Chromium \d+\.[\d.]+ at \/usr\/bin\/chromium, 1280x800, 5000 ms per page, 4 at once, at most 524288 bytes per image/,
      );
      expect(JSON.parse(stdout)).toMatchObject({ submitted: 0, errors: 0 });
    }, 60_000);

    it('says they are off without the flag', async () => {
      const { stderr } = await agent();
      expect(stderr).toContain('agent: screenshots off');
    }, 60_000);

    it('stops before leasing anything when the Chromium it was given does not exist, naming the flag', async () => {
      const failed = await agent('--screenshots', '--chromium', '/nonexistent/chromium').then(
        () => undefined,
        (error: { code: number; stderr: string }) => error,
      );
      expect(failed?.code).not.toBe(0);
      expect(failed?.stderr).toMatch(/no Chromium at \/nonexistent\/chromium/);
      expect(failed?.stderr).toMatch(/--chromium/);
      expect(failed?.stderr).not.toMatch(/leased/);
    }, 60_000);

    it('refuses a viewport and a byte cap out of range', async () => {
      await expect(agent('--screenshots', '--screenshot-viewport', '10x10')).rejects.toMatchObject({
        stderr: expect.stringMatching(/expected WIDTHxHEIGHT from 320x200 to 3840x2160, got "10x10"/),
      });
      await expect(agent('--screenshots', '--screenshot-max-bytes', '99999999')).rejects.toMatchObject({
        stderr: expect.stringMatching(/--screenshot-max-bytes.*expected an integer from 16384 to 1048576/s),
      });
    }, 60_000);
  },
);
