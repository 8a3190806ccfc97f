import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadRecording } from '../../src/recording/index.js';
import { runCli } from '../helpers/cli.js';
import { addScope, getWork, manualClock, openApp, resultFor, submit, tempDataDir, tokens } from './helpers.js';

describe('coordinator CLI (on the data directory)', () => {
  let data: ReturnType<typeof tempDataDir>;
  beforeEach(() => {
    data = tempDataDir();
  });
  afterEach(() => data.cleanup());

  it('adds, imports, lists, exports and removes scope entries', async () => {
    const d = ['--data', data.dir];
    expect((await runCli(['scope', 'add', '198.18.0.0/30', '2001:db8::/127', '--tag', 'lab', ...d])).code).toBe(0);
    const file = join(data.dir, 'natlas.txt');
    writeFileSync(file, '198.18.1.0/31,dmz,web\n');
    expect((await runCli(['scope', 'import', file, ...d])).code).toBe(0);
    expect((await runCli(['scope', 'add', '198.18.0.3', '--blocklist', ...d])).code).toBe(0);
    const list = await runCli(['scope', 'list', '--json', ...d]);
    expect(JSON.parse(list.out)).toMatchObject({ list: 'scope', addresses: '7', cycle: { visitsFinished: 0 } });
    expect((await runCli(['scope', 'list', ...d])).err).toMatch(
      /7 addresses in scope minus blocklist; cycle \d+ at [\d.]+% handed out, 0 of \d+ visits finished/,
    );
    expect((await runCli(['scope', 'export', ...d])).out).toBe('198.18.0.0/30,lab\n198.18.1.0/31,dmz,web\n2001:db8::/127,lab\n');
    expect((await runCli(['scope', 'remove', '198.18.1.0/31', ...d])).err).toMatch(/1 of 1 entry removed/);
    const bad = await runCli(['scope', 'add', '198.18.0.0/40', ...d]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/ranges\[0\]: expected a CIDR block.*"198.18.0.0\/40".*PB_ERR_ADDRESS/);
  });

  it('queues rescans, says which addresses are being scanned now, and refuses one outside the scope', async () => {
    const d = ['--data', data.dir];
    expect((await runCli(['scope', 'add', '198.18.0.0/30', '--tag', 'lab', ...d])).code).toBe(0);
    // A running coordinator on the same directory leases 198.18.0.1 (its rescan, queued here).
    const first = await runCli(['scope', 'rescan', '198.18.0.1', ...d]);
    expect(first).toMatchObject({ code: 0, err: 'rescan: 1 address queued\n' });
    // The CLI reads lease deadlines against the wall clock: the coordinator keeps the same one.
    const app = await openApp(data.dir, Date.now);
    try {
      const t = await tokens(app);
      expect(await getWork(app, t.agents[0]!)).toMatchObject({ ip: '198.18.0.1', reason: 'manual' });
      const both = await runCli(['scope', 'rescan', '198.18.0.1', '198.18.0.2', '--json', ...d]);
      expect(both.code).toBe(0);
      expect(JSON.parse(both.out)).toEqual({ queued: ['198.18.0.2'], scanning: ['198.18.0.1'] });
      expect((await app.coordinator.store.listQueuedWork()).map((q) => [q.ip, q.reason])).toEqual([['198.18.0.2', 'manual']]);
    } finally {
      await app.close();
    }
    const outside = await runCli(['scope', 'rescan', '198.18.0.9', ...d]);
    expect(outside.code).toBe(2);
    expect(outside.err).toMatch(/ips\[0\]: "198.18.0.9" is not in the scope.*PB_ERR_UNSAFE_TARGET/);
  });

  it('says when a command made a new store (a mistyped --data, or PostgreSQL without its URL), once', async () => {
    const fresh = join(data.dir, 'typo');
    const first = await runCli(['token', 'create', '--agent', 'scanner-1', '--data', fresh]);
    expect(first.code).toBe(0);
    expect(first.err).toContain(`${fresh} held no store; created a new SQLite store (${join(fresh, 'portbandit.db')})`);
    expect(first.err).toMatch(/started with --data .*typo; for coordinators on PostgreSQL set PORTBANDIT_POSTGRES_URL/);
    const again = await runCli(['token', 'list', '--data', fresh]);
    expect(again.code).toBe(0);
    expect(again.err).not.toContain('held no store');
    expect((await runCli(['search', 'port:22', '--data', join(data.dir, 'other')])).err).toContain('held no store');
  });

  it('creates tokens that are printed once and listed without secrets, and sets policies', async () => {
    const d = ['--data', data.dir];
    const made = await runCli(['token', 'create', '--agent', 'scanner-1', '--json', ...d]);
    const token = JSON.parse(made.out) as { id: string; token: string; kind: string };
    expect(token.token).toMatch(/^pba_/);
    const list = await runCli(['token', 'list', '--json', ...d]);
    expect(list.out).not.toContain(token.token);
    expect(JSON.parse(list.out).agents[0]).toMatchObject({ id: token.id, name: 'scanner-1' });
    const set = await runCli(['policy', 'set', 'dmz', '--strategy', 'fixed', '--budget', '20', '--must-have', '22,443', ...d]);
    expect(JSON.parse(set.out)).toMatchObject({ tag: 'dmz', strategy: 'fixed', budget: 20, mustHave: [22, 443] });
    const badParam = await runCli(['policy', 'set', 'dmz', '--param', 'nope=1', ...d]);
    expect(badParam.code).toBe(2);
    expect(badParam.err).toMatch(/unknown parameter "nope" for strategy fixed/);
    const learned = await runCli(['policy', 'learned', 'dmz', ...d]);
    expect(learned.out).toMatch(/policy dmz: fixed, budget 20/);
    // A learner at a budget that cannot reach past its lists is warned of where it is set.
    expect((await runCli(['scope', 'add', '198.18.1.0/31', '--tag', 'dmz', ...d])).code).toBe(0);
    const learner = await runCli(['policy', 'set', 'dmz', '--strategy', 'adaptive', ...d]);
    expect(learner.code).toBe(0);
    expect(learner.err).toMatch(/^warning: dmz: 20 probes per host-visit cannot reach past the strategy's lists in reasonable time/m);
    expect((await runCli(['search', 'port:22', ...d])).err).toMatch(/0 of 0 matches/);
    expect((await runCli(['token', 'revoke', token.id, ...d])).code).toBe(0);
  });

  it('exports the scan history as a scope recording the simulator can load', async () => {
    const clock = manualClock();
    const app = await openApp(data.dir, clock.now);
    const t = await tokens(app);
    await addScope(app, t.admin, [{ range: '198.18.20.0/30', tags: ['lab'] }]);
    // No period: cycles run back to back.
    await app.coordinator.setPolicy('', { strategy: 'top-k', budget: 10, periodSeconds: null });
    for (let i = 0; i < 8; i++) {
      const w = (await getWork(app, t.agents[0]!))!;
      clock.advance(1000);
      expect((await submit(app, t.agents[0]!, resultFor(w, [w.ports[0]!], clock.now()))).statusCode).toBe(200);
    }
    await app.close();
    const out = join(data.dir, 'history.ndjson');
    const res = await runCli(['scope', 'export-history', '--out', out, '--data', data.dir]);
    expect(res.err).toMatch(/wrote 8 observations/);
    const rec = await loadRecording(out);
    expect(rec.size).toBe(8);
    expect(rec.epochs).toBe(2);
    expect(rec.hostIp.length).toBe(4);
  });
});
