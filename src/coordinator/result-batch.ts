import { type Logger, errorCodes, isPortbanditError } from '../core/index.js';
import type { Agent } from '../store/index.js';
import { type Validator, compileServerValidator } from './ajv-options.js';
import type { Coordinator } from './coordinator.js';
import { type ResultBatchItem, type ResultSubmission, resultSubmissionSchema } from '../protocol/index.js';

// The single-result route's schema, compiled by the same compiler with the same options:
// a result the single route refuses is refused here, alone. Compiled once, on first use.
let validate: Validator | undefined;
function validator(): Validator {
  validate ??= compileServerValidator(resultSubmissionSchema);
  return validate;
}

function leaseIdOf(raw: unknown): string | undefined {
  const id = (raw as { leaseId?: unknown } | null)?.leaseId;
  return typeof id === 'string' && id.length <= 64 ? id : undefined;
}

/**
 * Results started per turn of the event loop. A batch of 64 started at once held the loop for
 * ~20-30 ms of checks, folds and next rounds (synchronous on SQLite), then ~20-30 ms more for
 * their one commit: a lease request that arrived behind two such batches waited ~100 ms (the
 * batched bench's lease p99 at half load). Started 16 at a time, a turn does ~5-8 ms of it, and
 * the requests that arrived meanwhile are read in between.
 */
export const RESULTS_PER_TURN = 16;

/**
 * Resolves two turns of the event loop later: the results started in this turn reach their
 * ingests, and those commit (the store's group commit runs in the next turn's check phase)
 * before the next results start, with the requests that arrived meanwhile read in between.
 */
function turnAfterNext(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));
}

/**
 * Answer a batch of results, one answer per result in the request's order. Each result is
 * checked against the wire schema on its own and submitted exactly as the single route would
 * (`Coordinator.submit`); RESULTS_PER_TURN of them start in each turn of the event loop, and the
 * ingests started in a turn share one store commit (the SQLite store's group commit), the next
 * ones start after it. A result refused or failing never affects the others.
 */
export async function submitResultBatch(
  coordinator: Coordinator,
  agent: Agent,
  raws: readonly unknown[],
  log: Logger,
): Promise<ResultBatchItem[]> {
  const check = validator();
  // A busy store (503, PB_ERR_STORE_BUSY) usually fails a whole batch at once: one warning for
  // the batch, as the error handler logs a single busy request, not an error per result.
  let busy: { count: number; error: unknown } | undefined;
  const one = async (raw: unknown, i: number): Promise<ResultBatchItem> => {
    const leaseId = leaseIdOf(raw);
    const id = leaseId !== undefined ? { leaseId } : {};
    if (!check(raw)) {
      const error = check.errors?.[0];
      const path = error?.instancePath ? `results/${i}${error.instancePath}` : `results/${i}`;
      return {
        outcome: 'rejected',
        ...id,
        error: { statusCode: 400, code: 'PB_ERR_SCHEMA', message: `${path} ${error?.message ?? 'is invalid'}` },
      };
    }
    try {
      const res = await coordinator.submit(agent, raw as ResultSubmission);
      return { outcome: res.duplicate ? 'duplicate' : 'accepted', ...id, scanId: res.scanId, followUp: res.followUp, events: res.events };
    } catch (error) {
      if (isPortbanditError(error) && error.statusCode < 500) {
        return { outcome: 'rejected', ...id, error: { statusCode: error.statusCode, code: error.code, message: error.message } };
      }
      // As the error handler does for a single request: the log gets the message (it can name
      // files), the agent the code and its summary.
      const code = isPortbanditError(error) ? error.code : 'PB_ERR_INTERNAL';
      const statusCode = isPortbanditError(error) ? error.statusCode : 500;
      if (code === 'PB_ERR_STORE_BUSY') busy = { count: (busy?.count ?? 0) + 1, error };
      else log.error({ err: error, leaseId }, 'a result of a batch failed');
      return {
        outcome: 'failed',
        ...id,
        error: { statusCode, code, message: `${errorCodes[code].summary} (details in the server log)` },
      };
    }
  };
  const started: Promise<ResultBatchItem>[] = [];
  for (let i = 0; i < raws.length; i++) {
    // The first slice too waits for the check phase: lease requests read in the same poll
    // phase as this batch are answered first.
    if (i === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    else if (i % RESULTS_PER_TURN === 0) await turnAfterNext();
    started.push(one(raws[i], i));
  }
  const answers = await Promise.all(started);
  if (busy)
    log.warn({ err: busy.error, results: busy.count }, `${busy.count} result(s) of a batch failed: the store is busy (answered 503)`);
  return answers;
}
