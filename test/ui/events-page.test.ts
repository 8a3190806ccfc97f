import { fc, test } from '@fast-check/vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newestEvents } from '../../src/coordinator/ui/events-page.js';
import { parseEventQuery } from '../../src/store/index.js';
import { openStore } from '../../src/store/open-store.js';
import type { EventKind, NewStoreEvent, Store } from '../../src/store/types.js';

const KINDS: EventKind[] = ['service-new', 'service-closed', 'service-changed', 'host-new'];
const QUERIES = ['', 'kind:service-new', 'port:22', 'kind:service-closed port:80', 'tag:dmz OR port:443', '-kind:host-new', 'port:9'];

describe('the events page reads the newest matching events', () => {
  let store: Store;
  beforeAll(async () => {
    store = await openStore({ kind: 'sqlite', path: ':memory:' });
  });
  afterAll(async () => {
    await store?.close();
  });

  test.prop(
    [
      fc.array(fc.record({ kind: fc.constantFrom(...KINDS), port: fc.constantFrom(22, 80, 443), dmz: fc.boolean() }), { maxLength: 60 }),
      fc.constantFrom(...QUERIES),
      fc.integer({ min: 0, max: 70 }),
      fc.integer({ min: 1, max: 25 }),
    ],
    { numRuns: 60 },
  )(
    'backward (stops after one match past the page) and forward (whole log) agree on any log, filter and page',
    async (spec, q, skip, take) => {
      const fresh = await openStore({ kind: 'sqlite', path: ':memory:' });
      try {
        const events: NewStoreEvent[] = spec.map((e, i) => ({
          kind: e.kind,
          at: 1000 + i,
          ip: `198.18.0.${i % 250}`,
          scanId: `s${i}`,
          tags: e.dmz ? ['dmz'] : ['db'],
          port: e.port,
        }));
        if (events.length > 0) await fresh.appendEvents(events);
        const filter = parseEventQuery(q);
        const backward = await newestEvents(fresh, filter, skip, take);
        // The same store with its backward reader hidden: the forward fallback path.
        const forwardOnly = { readEvents: fresh.readEvents.bind(fresh) } as unknown as Store;
        const forward = await newestEvents(forwardOnly, filter, skip, take);
        expect(backward.items).toEqual(forward.items);
        expect(forward.exact).toBe(true);
        if (backward.exact) expect(backward.total).toBe(forward.total);
        else expect(backward.total).toBe(skip + take + 1);
        expect(backward.total <= forward.total).toBe(true);
        const times = backward.items.map((e) => e.at);
        expect([...times].sort((a, b) => b - a)).toEqual(times);
      } finally {
        await fresh.close();
      }
    },
  );

  it('reads only what a page needs from a long log, and says there are more', async () => {
    const events: NewStoreEvent[] = Array.from({ length: 3000 }, (_, i) => ({
      kind: 'service-new',
      at: i,
      ip: '198.18.1.1',
      scanId: `x${i}`,
      tags: [],
      port: 22,
    }));
    await store.appendEvents(events);
    let read = 0;
    const counting = {
      readEvents: store.readEvents.bind(store),
      readEventsBackward: async (o: { before?: string; limit?: number }) => {
        const page = await store.readEventsBackward!(o);
        read += page.events.length;
        return page;
      },
    } as unknown as Store;
    const first = await newestEvents(counting, undefined, 0, 50);
    expect(first).toMatchObject({ exact: false, total: 51 });
    expect(first.items.map((e) => e.at)).toEqual(Array.from({ length: 50 }, (_, i) => 2999 - i));
    expect(read).toBeLessThanOrEqual(1000);
    const third = await newestEvents(counting, undefined, 100, 50);
    expect(third.items[0]!.at).toBe(2899);
    const last = await newestEvents(counting, parseEventQuery('port:22'), 2950, 50);
    expect(last).toMatchObject({ exact: true, total: 3000 });
    expect(last.items.at(-1)!.at).toBe(0);
  });
});
