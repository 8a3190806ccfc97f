import { join } from 'node:path';
import { type PortCatalog, loadNmapServices } from '../catalog/index.js';
import type { Logger } from '../core/index.js';
import { openStore, type Store } from '../store/index.js';
import type { CoordinatorConfig } from './config.js';
import { Coordinator } from './coordinator.js';
import { createMetrics } from './metrics.js';
import { RetentionRunner } from './retention-runner.js';
import type { NameResolver } from './names.js';

/** The SQLite file inside a data directory. */
export function databasePath(dataDir: string): string {
  return join(dataDir, 'portbandit.db');
}

/** What a coordinator is without HTTP: its store, the core, history retention, and its metrics. */
export interface CoordinatorCore {
  readonly store: Store;
  readonly coordinator: Coordinator;
  readonly retention: RetentionRunner;
  readonly metrics: ReturnType<typeof createMetrics>;
  /** True when the store was opened here (and is closed by `close`). */
  readonly ownsStore: boolean;
  /**
   * Stop retention, close the coordinator, run `beforeStore` (what must still write, e.g. the
   * outbox feeder's last batch), then close the store if it was opened here.
   */
  close(beforeStore?: () => Promise<void>): Promise<void>;
}

export interface CoreOptions {
  readonly config: CoordinatorConfig;
  /** An open store; default: the one the config names (SQLite under dataDir, or PostgreSQL, plus Elasticsearch). */
  readonly store?: Store;
  readonly catalog?: PortCatalog;
  readonly now?: () => number;
  readonly log: Logger;
  /** Resolves the scope's DNS names; none: names are not resolved. */
  readonly resolver?: NameResolver;
}

/**
 * Open the coordinator's core with no web server: what `buildApp` serves over HTTP, and what the
 * CLI's commands on a data directory (`scope`, `token`, `policy`, `search`, `retention`, ...) work
 * on directly.
 */
export async function openCoordinatorCore(options: CoreOptions): Promise<CoordinatorCore> {
  const { config, log } = options;
  const now = options.now ?? Date.now;
  const ownsStore = options.store === undefined;
  const store =
    options.store ??
    (await openStore({
      ...(config.postgresUrl
        ? { kind: 'postgres', url: config.postgresUrl, schema: config.postgresSchema, poolSize: config.postgresPool }
        : { kind: 'sqlite', path: databasePath(config.dataDir), thread: config.sqliteWriter === 'thread' }),
      ...(config.elasticsearchUrl ? { elasticsearch: { node: config.elasticsearchUrl, prefix: config.elasticsearchPrefix } } : {}),
    }));
  const metrics = createMetrics();
  let coordinator: Coordinator;
  try {
    coordinator = await Coordinator.open(
      store,
      config,
      { catalog: options.catalog ?? loadNmapServices() },
      metrics,
      log,
      now,
      options.resolver,
    );
  } catch (error) {
    if (ownsStore) await store.close();
    throw error;
  }
  const retention = new RetentionRunner(
    store,
    {
      ruleFor: (tags) => coordinator.retentionRuleFor(tags),
      policyKeyFor: (tags) => coordinator.policyKeyOf(tags),
      anyRule: () => coordinator.anyRetentionRule(),
    },
    log,
    now,
  );
  return {
    store,
    coordinator,
    retention,
    metrics,
    ownsStore,
    async close(beforeStore) {
      await retention.stop();
      await coordinator.close();
      await beforeStore?.();
      if (ownsStore) await store.close();
    },
  };
}
