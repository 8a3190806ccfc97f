import { afterEach } from 'vitest';

/** Anything a conformance suite opens and must close: a store, an index, a feeder's record. */
export interface Closable {
  close(): Promise<void>;
}

/**
 * Registers, in the enclosing `describe`, an `afterEach` that closes everything kept during the
 * test, newest first (a store before the index it feeds). Returns `keep`, which records one and
 * hands it back. `tolerant` ignores a failing close, for suites whose tests close or break a
 * store themselves (a restart, a killed feeder); otherwise a failing close fails the test.
 */
export function closeAfterEach(options: { tolerant?: boolean } = {}): <T extends Closable>(item: T) => T {
  const opened: Closable[] = [];
  afterEach(async () => {
    for (const item of opened.splice(0).reverse()) {
      if (options.tolerant === true) await item.close().catch(() => {});
      else await item.close();
    }
  });
  return (item) => {
    opened.push(item);
    return item;
  };
}

/**
 * The preamble of every store conformance suite: `fresh()` opens a new, empty store with the
 * suite's factory, and each one is closed after its test. Call inside `describe`.
 */
export function freshPerTest<S extends Closable>(openStore: () => Promise<S>): () => Promise<S> {
  const keep = closeAfterEach();
  return async () => keep(await openStore());
}
