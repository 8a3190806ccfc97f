import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import { hostsFileResolver } from '../../src/coordinator/names.js';
import { ScopeService } from '../../src/coordinator/scope-service.js';
import { type UnitRig, openSecondHandle, openUnitRig } from './unit-rig.js';

let rig: UnitRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

test('the address space is the scope minus the blocklist, and lookup gives an address its tags', async () => {
  rig = await openUnitRig({ scope: [{ range: '198.18.1.0/29', tags: ['web'] }], blocklist: ['198.18.1.4'] });
  const scope = rig.units.scope;
  expect(scope.addressSpace.size).toBe(7n);
  expect(scope.lookup('198.18.1.3')).toEqual({ ip: '198.18.1.3', tags: ['web'] });
  expect(scope.lookup('198.18.1.4')).toBeUndefined();
  expect(scope.lookup('198.18.1.8')).toBeUndefined();
  expect(scope.lookup('not an address')).toBeUndefined();
  expect((await rig.metrics.scopeAddresses.get()).values[0]!.value).toBe(7);
});

test('an edit made through another handle on the same file is picked up by reload, once', async () => {
  rig = await openUnitRig({ scope: [{ range: '198.18.1.0/30' }] });
  const cli = await openSecondHandle(rig.dir);
  try {
    await cli.addScopeEntries('scope', [{ range: '198.18.2.0/30', tags: ['new'] }], rig.clock.now());
    expect(rig.units.scope.lookup('198.18.2.1')).toBeUndefined();
    expect(await rig.units.scope.reload()).toBe(true);
    expect(rig.units.scope.lookup('198.18.2.1')).toEqual({ ip: '198.18.2.1', tags: ['new'] });
    expect(await rig.units.scope.reload()).toBe(false);
  } finally {
    await cli.close();
  }
});

test('a DNS name in the blocklist is refused with PB_ERR_ADDRESS naming the entry, and nothing is stored', async () => {
  rig = await openUnitRig({ scope: [{ range: '198.18.1.0/30' }] });
  const refused = await rig.units.scope
    .add('blocklist', [
      { range: '198.18.1.1', tags: [] },
      { range: 'files.lab.example', tags: [] },
    ])
    .catch((e: unknown) => e);
  expect(isPortbanditError(refused, 'PB_ERR_ADDRESS') && refused.where === 'entries[1]').toBe(true);
  expect((await rig.store.listScope('blocklist')).entries).toEqual([]);
  expect(rig.units.scope.lookup('198.18.1.1')).toBeDefined();
});

test('scope names resolve through the resolver; a resolved address on the blocklist stays out', async () => {
  const hosts = join(await import('node:os').then((os) => os.tmpdir()), `pb-hosts-${process.pid}-${Date.now()}`);
  writeFileSync(hosts, '198.18.2.5 web.lab.example\n198.18.2.6 web.lab.example\n');
  rig = await openUnitRig({
    scope: [{ range: 'web.lab.example', tags: ['named'] }],
    blocklist: ['198.18.2.6'],
    resolver: hostsFileResolver(hosts),
  });
  const scope = rig.units.scope;
  expect(scope.lookup('198.18.2.5')).toEqual({ ip: '198.18.2.5', tags: ['named'] });
  expect(scope.lookup('198.18.2.6')).toBeUndefined();
  expect(scope.namesOf('198.18.2.5')).toEqual(['web.lab.example']);
  expect(scope.addressesOfName('web.lab.example')).toEqual(['198.18.2.5', '198.18.2.6']);
  expect(scope.nameResolverDescription).toContain(hosts);
  expect(rig.log.lines.some((l) => l.msg === 'scope names resolved')).toBe(true);
});

test('a shared scope: lookupCurrent finds an address that a reload running meanwhile brought in (it dropped it as out of scope)', async () => {
  rig = await openUnitRig({});
  // Another coordinator adds the scope; this process has not reloaded since it was empty.
  const other = await openSecondHandle(rig.dir);
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let calls = 0;
  // The store as this process's scope service sees it: its first version read waits for the gate.
  const store = new Proxy(rig.store, {
    get(target, key, receiver) {
      if (key === 'getScopeVersion')
        return async () => {
          const version = await target.getScopeVersion();
          if (++calls === 1) await gate;
          return version;
        };
      const value = Reflect.get(target, key, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  const scope = new ScopeService(store, rig.metrics, rig.log, rig.clock.now, true);
  try {
    await other.addScopeEntries('scope', [{ range: '198.18.3.0/30', tags: ['shared'] }], rig.clock.now());
    // A queued cycle address is checked (its reload waits), while the sweep's reload runs through.
    const checking = scope.lookupCurrent('198.18.3.1');
    await new Promise((resolve) => setImmediate(resolve));
    expect(await scope.reload()).toBe(true);
    release();
    expect(await checking).toEqual({ ip: '198.18.3.1', tags: ['shared'] });
  } finally {
    await other.close();
  }
});
