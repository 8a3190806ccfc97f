import type { Logger } from '../core/index.js';
import type { StrategyEnv } from '../../strategies/index.js';
import type { Store } from '../store/index.js';
import { AgentRegistry } from './agent-registry.js';
import type { CoordinatorConfig } from './config.js';
import { CycleCoverage } from './coverage.js';
import type { CycleDocument } from './cycle.js';
import { EventWaiters } from './event-waiters.js';
import { Learner } from './learner.js';
import { LearningSchedule } from './learning-schedule.js';
import { Leasing } from './leasing.js';
import type { CoordinatorMetrics } from './metrics.js';
import type { Policy } from './policy.js';
import { PolicyBook } from './policy-book.js';
import { ResultIntake } from './result-intake.js';
import type { ScopeService } from './scope-service.js';
import type { ScreenshotArchive } from './screenshots.js';

/** The units a coordinator is made of; each works over the Store alone, without HTTP. */
export interface CoordinatorUnits {
  readonly scope: ScopeService;
  readonly learner: Learner;
  readonly learning: LearningSchedule;
  readonly policies: PolicyBook;
  readonly agents: AgentRegistry;
  readonly coverage: CycleCoverage;
  readonly waiters: EventWaiters;
  readonly leasing: Leasing;
  readonly intake: ResultIntake;
}

/** What assembling the units takes: the store, a loaded scope, the stored cycle, and the settings. */
export interface UnitParts {
  readonly store: Store;
  /** Loaded already (the cycle resumes over its items). */
  readonly scope: ScopeService;
  /** The stored cycle document (undefined: the first cycle starts now). */
  readonly savedCycle: CycleDocument | undefined;
  readonly config: Pick<CoordinatorConfig, 'learnBatchSize' | 'allowedScripts' | 'leaseSeconds' | 'screenshotBudgetBytes'>;
  readonly env: StrategyEnv;
  readonly defaultPolicy: Policy;
  readonly screenshots: ScreenshotArchive;
  readonly metrics: CoordinatorMetrics;
  readonly log: Logger;
  readonly now: () => number;
  /** The install seed (permutation key and strategies' seed). */
  readonly seed: string;
  /** Several coordinators share the store (PostgreSQL). */
  readonly shared: boolean;
}

/**
 * Wire the units together (the Coordinator facade does this once at open). Policies and agents
 * are not loaded yet: call `policies.reload(true)` and `agents.refresh()` before serving.
 */
export function assembleUnits(parts: UnitParts): CoordinatorUnits {
  const { store, scope, config, env, metrics, log, now, seed, shared } = parts;
  const learner = new Learner(store, env, config.learnBatchSize, log, shared);
  const policies = new PolicyBook(store, learner, scope, env, config.allowedScripts, parts.defaultPolicy, log, now);
  // Rate-stated budgets follow the scope's size.
  scope.onReload = () => policies.refreshBudgets();
  const agents = new AgentRegistry(store, log, now, shared);
  const coverage = new CycleCoverage();
  const waiters = new EventWaiters();
  const leasing = new Leasing(
    { store, scope, policies, agents, learner, coverage, metrics, log, now, seed, leaseSeconds: config.leaseSeconds, shared },
    parts.savedCycle,
  );
  const intake = new ResultIntake({
    store,
    scope,
    leasing,
    agents,
    learner,
    coverage,
    waiters,
    screenshots: parts.screenshots,
    metrics,
    log,
    now,
    seed,
    screenshotBudgetBytes: config.screenshotBudgetBytes,
    shared,
  });
  const learning = new LearningSchedule(store, learner, log, shared);
  return { scope, learner, learning, policies, agents, coverage, waiters, leasing, intake };
}
