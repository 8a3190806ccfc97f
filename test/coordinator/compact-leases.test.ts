import { fc, test as propTest } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PortRanges, isPortbanditError } from '../../src/core/index.js';
import {
  type LeaseSession,
  SESSION_SPEC_MIN_PORTS,
  readHostResult,
  readLeaseSession,
  storeHostResult,
  storeLeaseSession,
  storedPortList,
} from '../../src/coordinator/lease-session.js';
import { unionRanges } from '../../src/coordinator/visit.js';
import { loadNmapServices } from '../../src/catalog/index.js';
import { FIRST_LOOK, type HostResult, HostSession, createStrategy } from '../../strategies/index.js';
import { hostContext } from '../helpers/host-context.js';
import { portText } from '../helpers/port-text.js';
import type { ResultSubmission, WorkItem, WorkResponse } from '../../src/protocol/index.js';
import type { Lease } from '../../src/store/index.js';
import { addScope, bearer, manualClock, openApp, tempDataDir, tokens } from './helpers.js';
import { type UnitRig, openUnitRig } from './unit-rig.js';

/** Port sets made of runs, as budgets make them: a few ranges, single ports, or the whole space. */
const portSet = fc
  .array(fc.tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 0, max: 3000 })), { minLength: 1, maxLength: 12 })
  .map((runs) => {
    const ports = new Set<number>();
    for (const [start, length] of runs) for (let p = start; p <= Math.min(65535, start + length); p++) ports.add(p);
    return [...ports].sort((a, b) => a - b);
  });

describe('a lease session stored with range specs', () => {
  propTest.prop([portSet, fc.array(fc.integer({ min: 1, max: 65535 }), { maxLength: 20 }), fc.boolean()])(
    'reads back the same port sets it was given (and a list with a repeat keeps its length)',
    (ports, extra, repeat) => {
      const pending = repeat ? [...ports, ports[0]!] : [...ports].reverse();
      const session: LeaseSession = {
        state: { allowance: 70_000, round: 1, probed: extra, found: ports.slice(0, 3), pending, done: false, unknown: ports.slice(-2) },
        policy: '',
        epoch: 4,
        prefix: '198.18.1.0/24',
        previousOpen: extra,
        previousEpoch: 3,
        visitId: 'lease_v',
      };
      const stored = storeLeaseSession(session);
      // As the store keeps it: through JSON.
      const back = readLeaseSession(JSON.parse(JSON.stringify(stored)), 'lease l');
      // Port lists compared as text (portText: equal exactly when the lists are), not by a deep toEqual over up to 36k ports.
      const sorted = (xs: readonly number[]) => portText(Array.isArray(xs) ? [...xs].sort((a, b) => a - b) : xs);
      const distinct = (xs: readonly number[]) => portText([...new Set(xs)].sort((a, b) => a - b));
      expect(sorted(back.state.pending)).toBe(repeat ? sorted(pending) : portText(ports));
      expect(back.state.pending).toHaveLength(pending.length);
      expect(sorted(back.state.found)).toBe(portText(ports.slice(0, 3)));
      expect(sorted(back.state.unknown!)).toBe(distinct(ports.slice(-2)));
      expect(sorted(back.state.probed)).toBe(new Set(extra).size === extra.length ? distinct(extra) : sorted(extra));
      expect(sorted(back.previousOpen)).toBe(back.previousOpen.length === extra.length ? sorted(extra) : distinct(extra));
      expect({ ...back, state: undefined, previousOpen: undefined }).toEqual({ ...session, state: undefined, previousOpen: undefined });
      // Compact: a long distinct list is one spec string, never longer than the list's JSON; a short one stays a list.
      expect(typeof stored.state.pending).toBe(!repeat && pending.length >= SESSION_SPEC_MIN_PORTS ? 'string' : 'object');
      expect(JSON.stringify(stored.state.pending).length).toBeLessThanOrEqual(JSON.stringify(pending).length + 2);
    },
  );

  propTest.prop([portSet, portSet, fc.boolean()])(
    'a finished visit queued for the shared learner reads back as the same visit (and one written before specs as it is)',
    (probed, open, sweep) => {
      const result = { ip: '198.18.1.7', tags: ['lab'], prefix: 'p', epoch: 3, probed, open, previousOpen: open.slice(0, 2), sweep };
      const stored = JSON.parse(JSON.stringify(storeHostResult(result))) as Record<string, unknown>;
      expect(typeof stored.probed).toBe(probed.length >= SESSION_SPEC_MIN_PORTS ? 'string' : 'object');
      // The port lists as text (portText), the rest as it is.
      const asText = (r: HostResult) => ({
        ...r,
        probed: portText(r.probed),
        open: portText(r.open),
        previousOpen: portText(r.previousOpen),
      });
      expect(asText(readHostResult(stored))).toEqual(asText(result));
      expect(asText(readHostResult(JSON.parse(JSON.stringify(result))))).toEqual(asText(result));
    },
  );

  it('stores a whole-port round as "1-65535" and reads a row written before specs (lists of numbers)', () => {
    const all = Array.from({ length: 65535 }, (_, i) => i + 1);
    expect(storedPortList(all)).toBe('1-65535');
    expect(storedPortList([443, 22, 80])).toEqual([443, 22, 80]);
    expect(storedPortList([])).toEqual([]);
    const old = {
      state: { allowance: 65535, round: 0, probed: [], found: [], pending: [443, 22, 80], done: false },
      policy: 'dmz',
      epoch: 2,
      prefix: 'p',
      previousOpen: [22],
      previousEpoch: 1,
    };
    expect(readLeaseSession(old, 'lease old')).toEqual(old);
    const damaged = { ...old, state: { ...old.state, pending: '80-22' } };
    const error = (() => {
      try {
        readLeaseSession(damaged, 'lease bad');
        return undefined;
      } catch (e) {
        return e;
      }
    })();
    expect(isPortbanditError(error, 'PB_ERR_STORE') && error.where === 'lease bad').toBe(true);
    expect((error as Error).message).toContain('state.pending');
  });
});

it("a first look's session stores the rest of the visit as a spec and reads back as the session it was", () => {
  // A whole-port first decision split for a first look: 1,000 ports pending, 64,535 deferred.
  const session = new HostSession(
    createStrategy({ strategy: 'adaptive', budget: 65_535 }, { catalog: loadNmapServices() }),
    hostContext(),
    's',
  );
  expect(session.next()).toHaveLength(FIRST_LOOK.ports);
  const lease: LeaseSession = { state: session.toJSON(), policy: '_default', epoch: 0, prefix: 'p', previousOpen: [], previousEpoch: -1 };
  const stored = JSON.parse(JSON.stringify(storeLeaseSession(lease))) as { state: { deferred: unknown; split: number } };
  expect(typeof stored.state.deferred).toBe('string');
  expect(JSON.stringify(stored).length).toBeLessThan(20_000);
  expect(stored.state.split).toBe(1);
  const read = readLeaseSession(stored, 'lease fl');
  expect(new Set(read.state.deferred)).toEqual(new Set(lease.state.deferred));
  expect(new Set(read.state.pending)).toEqual(new Set(lease.state.pending));
  // Resumed from what was stored, the visit goes on with the rest.
  const resumed = new HostSession(
    createStrategy({ strategy: 'adaptive', budget: 65_535 }, { catalog: loadNmapServices() }),
    hostContext(),
    's',
    read.state,
  );
  resumed.report([22]);
  expect(resumed.next()).toHaveLength(65_535 - FIRST_LOOK.ports);
});

propTest.prop([fc.option(portSet, { nil: undefined }), portSet])(
  "a visit's probed ports: the union of its spec and a round's ranges is the union taken port by port",
  (a, b) => {
    const expected = PortRanges.fromPorts([...(a ?? []), ...b]).toString();
    expect(unionRanges(a === undefined ? undefined : PortRanges.fromPorts(a).toString(), PortRanges.fromPorts(b))).toBe(expected);
  },
);

describe('results checked against old and new lease rows', () => {
  let rig: UnitRig;
  let template: Lease;
  let agent: Awaited<ReturnType<UnitRig['agent']>>;
  let next = 0;
  beforeAll(async () => {
    rig = await openUnitRig({ scope: [{ range: '198.18.8.0/22', tags: ['lab'] }] });
    await rig.units.policies.set('', { strategy: 'fixed', budget: 3, params: { ports: [22, 80, 443] }, periodSeconds: null });
    agent = await rig.agent();
    const [item] = await rig.units.leasing.getWorkBatch(agent, 1);
    template = (await rig.store.getLease(item!.leaseId))!;
  });
  afterAll(() => rig.close());

  /** Two leases for `ports` on two fresh addresses: one row as this version writes it, one as versions before specs did. */
  async function twoLeases(ports: readonly number[]): Promise<{ fresh: Lease; old: Lease }> {
    const session = readLeaseSession(template.session, 'template');
    const withPorts: LeaseSession = { ...session, state: { ...session.state, pending: [...ports], probed: [] } };
    const ip = (n: number) => `198.18.${8 + (n >> 8)}.${n & 255}`;
    const fresh: Lease = {
      ...template,
      id: `lease_new${next}`,
      ip: ip(next++),
      portRanges: PortRanges.fromPorts(ports).toString(),
      session: storeLeaseSession(withPorts),
    };
    const { portRanges: _spec, ...rest } = template;
    // The old row: `ports` a list of numbers, the session's lists too (putLease stores the object as given).
    const oldRow = { ...rest, id: `lease_old${next}`, ip: ip(next++), ports: [...ports], session: withPorts };
    await rig.store.putLease(fresh);
    await rig.store.putLease(oldRow as unknown as Lease);
    const old = (await rig.store.getLease(oldRow.id))!;
    expect(old.portRanges).toBe(fresh.portRanges);
    return { fresh, old };
  }

  const outcome = async (lease: Lease, body: Omit<ResultSubmission, 'leaseId' | 'ip'>) => {
    try {
      const answer = await rig.units.intake.submit(agent, { ...body, leaseId: lease.id, ip: lease.ip });
      const scan = (await rig.store.getScan(answer.scanId))!;
      return {
        accepted: answer.accepted,
        events: answer.events,
        probed: scan.probedPorts,
        unknown: scan.unknownPorts,
        knownOpen: scan.knownOpen,
      };
    } catch (error) {
      return isPortbanditError(error) ? { code: error.code, where: error.where, message: error.message } : { error: String(error) };
    }
  };

  propTest.prop(
    [
      portSet,
      fc.array(fc.integer({ min: 1, max: 65535 }), { maxLength: 6 }),
      fc.array(fc.integer({ min: 1, max: 65535 }), { maxLength: 6 }),
      fc.boolean(),
    ],
    { numRuns: 40 },
  )('accept and refuse the same results, and store the same visit', async (ports, reported, unknown, fromLease) => {
    const { fresh, old } = await twoLeases(ports);
    // Reported ports: some of the lease's (when asked), some anywhere (most outside the lease).
    const open = [...new Set([...(fromLease ? ports.slice(0, 3) : []), ...reported])];
    const unknownSpec = unknown.length > 0 ? PortRanges.fromPorts(fromLease ? [...unknown, ports.at(-1)!] : unknown).toString() : undefined;
    const at = rig.clock.now();
    const body = {
      status: 'up' as const,
      startedAt: at - 1000,
      finishedAt: at,
      preflight: 'masscan' as const,
      ports: open.map((port) => ({ port, state: 'open' as const })),
      ...(unknownSpec !== undefined ? { unknownPorts: unknownSpec } : {}),
    };
    const [a, b] = [await outcome(fresh, body), await outcome(old, body)];
    expect(a).toEqual(b);
    // And the check itself holds: a port outside the lease is refused, naming where.
    const given = new Set(ports);
    const outside = open.findIndex((p) => !given.has(p));
    if (outside >= 0) expect(a).toMatchObject({ code: 'PB_ERR_LEASE_PORT', where: `ports[${outside}].port` });
    else if (unknown.some((p) => !given.has(p))) expect(a).toMatchObject({ code: 'PB_ERR_LEASE_PORT', where: 'unknownPorts' });
    else expect(a).toMatchObject({ accepted: true, probed: PortRanges.fromPorts(ports).toString() });
  });

  it('refuses a lease whose stored ports are damaged as damage to the store (500), not as bad input', async () => {
    const { fresh } = await twoLeases([22, 80]);
    await rig.store.takeExpiredLeases(fresh.deadline + 1, 1000, { requeue: false });
    await rig.store.putLease({ ...fresh, id: 'lease_badports', portRanges: '80-22' });
    const at = rig.clock.now();
    const error = await rig.units.intake
      .submit(agent, {
        leaseId: 'lease_badports',
        ip: fresh.ip,
        status: 'up',
        startedAt: at - 1000,
        finishedAt: at,
        preflight: 'masscan',
        ports: [],
      })
      .catch((e: unknown) => e);
    expect(isPortbanditError(error, 'PB_ERR_STORE') && error.where === 'lease lease_badports.portRanges').toBe(true);
    await rig.store.takeExpiredLeases(fresh.deadline + 1, 1000, { requeue: false });
  });

  it('re-issues an expired lease of the old row format with the same ports, as a compact row', async () => {
    const ports = [22, 80, 443, 8080, 8081, 8082];
    const { old } = await twoLeases(ports);
    rig.clock.advance(old.deadline - rig.clock.now() + 1);
    expect(await rig.units.leasing.requeueExpired(rig.clock.now())).toBeGreaterThanOrEqual(2);
    const again = (await rig.units.leasing.getWorkBatch(agent, 256)).filter((i) => i.ip === old.ip);
    expect(again).toHaveLength(1);
    expect(again[0]).toMatchObject({ ports, reason: 'expired', round: old.round });
    const lease = (await rig.store.getLease(again[0]!.leaseId))!;
    expect(lease.portRanges).toBe('22,80,443,8080-8082');
    expect(readLeaseSession(lease.session, lease.id).state.pending).toEqual(ports);
  });
});

describe('GET /api/v1/agent/work with whole-port items', () => {
  it('sends portRanges to an agent that reads them and the list to one that does not; both store a compact lease', async () => {
    const { dir, cleanup } = tempDataDir();
    const clock = manualClock();
    const app = await openApp(dir, clock.now);
    try {
      const t = await tokens(app, 2);
      // The default policy's rate funds all 65,535 ports of each of these 8 addresses.
      await addScope(app, t.admin, [{ range: '198.18.6.0/29' }]);
      const lease = async (token: string, features?: string, max = 4) => {
        const res = await app.inject({
          method: 'GET',
          url: `/api/v1/agent/work?max=${max}`,
          headers: { ...bearer(token), ...(features !== undefined ? { 'portbandit-features': features } : {}) },
        });
        expect(res.statusCode, res.body).toBe(200);
        return { json: res.json() as WorkResponse, bytes: res.rawPayload.length };
      };
      // Each visit's first look (1,000 ports), reported with nothing open; then the rest of the
      // port space of each, as follow-ups: 64,535 ports an item, 4 to each agent.
      const submit = (token: string, item: WorkItem, port?: number) =>
        app.inject({
          method: 'POST',
          url: '/api/v1/agent/results',
          headers: bearer(token),
          payload: {
            leaseId: item.leaseId,
            ip: item.ip,
            status: 'up',
            startedAt: clock.now(),
            finishedAt: clock.now(),
            preflight: 'masscan',
            ports: port === undefined ? [] : [{ port, state: 'open' }],
          },
        });
      const submitLooks = async (token: string, features?: string) => {
        const looks = await lease(token, features, 8);
        expect(looks.json.items!.map((w) => [w.reason, PortRanges.parse(w.portRanges!).size])).toEqual(
          Array.from({ length: 8 }, () => ['cycle', FIRST_LOOK.ports]),
        );
        for (const item of looks.json.items!) {
          const res = await submit(token, item);
          expect(res.statusCode, res.body).toBe(200);
        }
      };
      await submitLooks(t.agents[0]!, 'port-ranges');
      const ranged = await lease(t.agents[0]!, 'something-else, port-ranges');
      const listed = await lease(t.agents[1]!);
      expect(ranged.json.items).toHaveLength(4);
      expect(listed.json.items).toHaveLength(4);
      const rest = 65_535 - FIRST_LOOK.ports;
      for (const item of ranged.json.items!) {
        expect(item).toMatchObject({ ports: [], reason: 'followup' });
        expect(PortRanges.parse(item.portRanges!).size).toBe(rest);
      }
      for (const item of listed.json.items!) {
        expect(item.ports).toHaveLength(rest);
        expect(item).not.toHaveProperty('portRanges');
      }
      expect(ranged.bytes).toBeLessThan(4 * 16 * 1024);
      expect(listed.bytes).toBeGreaterThan(4 * 370_000);
      // Every lease row is small, whichever form its agent reads (a list of 65,535 numbers was ~0.76 MB).
      const rows = await app.coordinator.store.listLeases();
      expect(rows).toHaveLength(8);
      for (const row of rows) {
        expect(PortRanges.parse(row.portRanges).size).toBe(rest);
        expect(JSON.stringify(row).length).toBeLessThan(48 * 1024);
      }
      // A result is checked against the lease the same way for both.
      const firstOf = (item: WorkItem) => PortRanges.parse(item.portRanges!).toArray()[0]!;
      expect((await submit(t.agents[0]!, ranged.json.items![0]!, firstOf(ranged.json.items![0]!))).statusCode).toBe(200);
      expect((await submit(t.agents[1]!, listed.json.items![0]!, listed.json.items![0]!.ports[0]!)).statusCode).toBe(200);
    } finally {
      await app.close();
      cleanup();
    }
  });
});
