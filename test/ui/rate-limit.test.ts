import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type UiFixture, openUiFixture } from './fixture.js';

describe('rate limiting of the UI', () => {
  let f: UiFixture;
  beforeAll(async () => {
    f = await openUiFixture({ authFailuresPerMinute: 3 });
  });
  afterAll(async () => {
    await f?.close();
  });

  it('never throttles a signed-in operator, but throttles anonymous requests and sign-in attempts like the API', async () => {
    for (let i = 0; i < 6; i++) {
      const res = await f.app.inject({ method: 'GET', url: '/ui/search?q=port:22', headers: { cookie: `pb_ui=${f.admin}` } });
      expect(res.statusCode).toBe(200);
    }
    const anonymous = [];
    for (let i = 0; i < 5; i++) anonymous.push((await f.app.inject({ method: 'GET', url: '/ui', remoteAddress: '127.0.0.9' })).statusCode);
    expect(anonymous).toEqual([303, 303, 303, 429, 429]);
    const guesses = [];
    for (let i = 0; i < 5; i++) {
      const res = await f.app.inject({
        method: 'POST',
        url: '/ui/login',
        remoteAddress: '127.0.0.10',
        payload: `token=pbk_guess${i}`,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      guesses.push(res.statusCode);
    }
    expect(guesses).toEqual([401, 401, 401, 429, 429]);
  });
});
