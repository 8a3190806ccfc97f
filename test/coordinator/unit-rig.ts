import { join } from 'node:path';
import { loadNmapServices } from '../../src/catalog/index.js';
import type { LogFn, Logger } from '../../src/core/logger.js';
import { resolveConfig, type ConfigInput } from '../../src/coordinator/config.js';
import { createMetrics } from '../../src/coordinator/metrics.js';
import type { NameResolver } from '../../src/coordinator/names.js';
import { defaultPolicy } from '../../src/coordinator/policy.js';
import { ScopeService } from '../../src/coordinator/scope-service.js';
import { ScreenshotArchive } from '../../src/coordinator/screenshots.js';
import { type CoordinatorUnits, assembleUnits } from '../../src/coordinator/units.js';
import type { Agent, Store } from '../../src/store/types.js';
import { openSqliteStore } from '../../src/store/sqlite-store.js';
import { manualClock, tempDataDir } from './helpers.js';

/** A Logger that keeps what it is told (a real logger, in memory), for asserting on warnings. */
export class MemoryLogger implements Logger {
  readonly lines: Array<{ level: string; obj: object | undefined; msg: string }> = [];
  private at(level: string): LogFn {
    return ((a: object | string, b?: string) => {
      this.lines.push(typeof a === 'string' ? { level, obj: undefined, msg: a } : { level, obj: a, msg: b ?? '' });
    }) as LogFn;
  }
  readonly error = this.at('error');
  readonly warn = this.at('warn');
  readonly info = this.at('info');
  readonly debug = this.at('debug');
}

export const catalog = loadNmapServices();

/** A second handle on a rig's SQLite file: another process (the CLI) editing the same store. */
export function openSecondHandle(dir: string): Promise<Store> {
  return openSqliteStore({ path: join(dir, 'portbandit.db'), checkpointIntervalMs: 0 });
}

export interface UnitRig {
  readonly dir: string;
  readonly store: Store;
  readonly clock: ReturnType<typeof manualClock>;
  readonly log: MemoryLogger;
  readonly metrics: ReturnType<typeof createMetrics>;
  readonly units: CoordinatorUnits;
  readonly screenshots: ScreenshotArchive;
  /** Register an agent through the registry. */
  agent(name?: string, groups?: string[]): Promise<Agent>;
  close(): Promise<void>;
}

/**
 * The coordinator's units over a real SQLite file in a temp directory, assembled as the facade
 * assembles them (assembleUnits), with a hand-moved clock and no HTTP.
 */
export async function openUnitRig(
  options: { scope?: Array<{ range: string; tags?: string[] }>; blocklist?: string[]; resolver?: NameResolver; flags?: ConfigInput } = {},
): Promise<UnitRig> {
  const data = tempDataDir();
  const store = await openSecondHandle(data.dir);
  const clock = manualClock();
  const log = new MemoryLogger();
  const metrics = createMetrics();
  const config = resolveConfig({ flags: { dataDir: data.dir, logLevel: 'silent', learnBatchSize: 4, ...options.flags }, env: {} });
  if (options.scope)
    await store.addScopeEntries(
      'scope',
      options.scope.map((e) => ({ range: e.range, tags: e.tags ?? [] })),
      clock.now(),
    );
  if (options.blocklist)
    await store.addScopeEntries(
      'blocklist',
      options.blocklist.map((range) => ({ range, tags: [] })),
      clock.now(),
    );
  const scope = new ScopeService(store, metrics, log, clock.now, false, options.resolver);
  await scope.reload(true);
  const screenshots = ScreenshotArchive.forDataDir(data.dir, config.screenshotBudgetBytes);
  const units = assembleUnits({
    store,
    scope,
    savedCycle: undefined,
    config,
    env: { catalog },
    defaultPolicy: defaultPolicy(config.allowedScripts),
    screenshots,
    metrics,
    log,
    now: clock.now,
    seed: 'unit-rig-seed',
    shared: false,
  });
  await units.policies.reload(true);
  await units.agents.refresh();
  let agents = 0;
  return {
    dir: data.dir,
    store,
    clock,
    log,
    metrics,
    units,
    screenshots,
    agent: async (name = `agent-${agents++}`, groups: string[] = []) => (await units.agents.create(name, groups)).agent,
    close: async () => {
      await units.learner.settled();
      screenshots.close();
      await store.close();
      data.cleanup();
    },
  };
}
