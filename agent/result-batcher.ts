import { MAX_RESULT_BATCH, type ResultBatchItem, type ResultSubmission } from '../src/protocol/index.js';
import { type CoordinatorClient, OverloadedError, RejectedError } from './coordinator-client.js';

/** What became of one result sent through the batcher. */
export type BatchedAnswer =
  /** Stored (or already stored: a duplicate). */
  | { readonly kind: 'stored'; readonly duplicate: boolean; readonly followUp: boolean }
  /** Refused for good (the single route's 4xx): sending it again will not help. */
  | { readonly kind: 'rejected'; readonly message: string }
  /** Not stored this time (the coordinator is unreachable, or failed on this result): try again later. */
  | { readonly kind: 'retry'; readonly error: Error }
  /** The batch route cannot take it (an older coordinator, a refused envelope): send it on the single route. */
  | { readonly kind: 'single' };

export interface ResultBatcherOptions {
  readonly client: CoordinatorClient;
  /** Longest a finished host's result waits for others (ms). */
  readonly flushMs: number;
  /** Send at once when this many results are waiting. */
  readonly flushAt: number;
  readonly log: (line: string) => void;
}

interface Waiting {
  readonly result: ResultSubmission;
  readonly resolve: (answer: BatchedAnswer) => void;
}

/**
 * Gathers finished hosts' results into `POST /api/v1/agent/results/batch` requests: sent when
 * `flushAt` are waiting or `flushMs` after the first one arrived, whichever comes first, so a
 * host's result is never held longer than `flushMs`. Each result is answered on its own. After a
 * 404 (a coordinator older than batches) `enabled` turns false and the agent uses the single
 * route from then on.
 */
export class ResultBatcher {
  private waiting: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;
  private supported = true;

  constructor(private readonly options: ResultBatcherOptions) {}

  /** False once the coordinator answered that it has no batch route. */
  get enabled(): boolean {
    return this.supported;
  }

  /** Queue one result for the next batch; resolves with its own answer. */
  add(result: ResultSubmission): Promise<BatchedAnswer> {
    if (!this.supported) return Promise.resolve({ kind: 'single' });
    return new Promise((resolve) => {
      this.waiting.push({ result, resolve });
      if (this.waiting.length >= this.options.flushAt) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.options.flushMs);
    });
  }

  /** Send everything waiting now (in requests of at most 64 results and about BATCH_BYTES). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.waiting.length > 0) {
      // Screenshots make results large: a request stays under the coordinator's default body limit.
      let n = 0;
      let bytes = 0;
      while (n < this.waiting.length && n < MAX_RESULT_BATCH) {
        const size = approximateBytes(this.waiting[n]!.result);
        if (n > 0 && bytes + size > BATCH_BYTES) break;
        bytes += size;
        n++;
      }
      void this.send(this.waiting.splice(0, n));
    }
  }

  private async send(batch: Waiting[]): Promise<void> {
    let answers: readonly ResultBatchItem[];
    let retryAfterMs: number | undefined;
    try {
      const res = await this.options.client.submitBatch(batch.map((w) => w.result));
      const list = (res as { results?: unknown } | null)?.results;
      answers = Array.isArray(list) ? (list as ResultBatchItem[]) : [];
      retryAfterMs = res?.retryAfterMs;
    } catch (error) {
      if (error instanceof RejectedError) {
        // 404/405: no batch route (an older coordinator). Another 4xx (an envelope it refused, a
        // body over its limit): the single route judges each result alone.
        if (error.status === 404 || error.status === 405) {
          if (this.supported) this.options.log('agent: the coordinator has no batch route for results; submitting one result per request');
          this.supported = false;
        }
        for (const w of batch) w.resolve({ kind: 'single' });
      } else for (const w of batch) w.resolve({ kind: 'retry', error: error as Error });
      return;
    }
    batch.forEach((w, i) => w.resolve(answerOf(answers[i], retryAfterMs)));
  }
}

/** Largest batch request body aimed for (the coordinator's default body limit is 8 MiB). */
export const BATCH_BYTES = 6 * 1024 * 1024;

/** A result's size on the wire, roughly: its screenshots dominate, the rest is small. */
function approximateBytes(result: ResultSubmission): number {
  let bytes = 2048 + result.ports.length * 200;
  for (const shot of result.screenshots ?? []) bytes += shot.data.length + 200;
  return bytes;
}

function answerOf(answer: ResultBatchItem | undefined, retryAfterMs: number | undefined): BatchedAnswer {
  switch (answer?.outcome) {
    case 'accepted':
    case 'duplicate':
      return { kind: 'stored', duplicate: answer.outcome === 'duplicate', followUp: answer.followUp === true };
    case 'rejected':
      return {
        kind: 'rejected',
        message: `coordinator answered ${answer.error?.statusCode ?? '4xx'}: ${answer.error?.code ?? ''} ${String(answer.error?.message ?? '').slice(0, 300)}`,
      };
    case 'failed': {
      const message = `coordinator answered ${answer.error?.statusCode ?? '5xx'}: ${answer.error?.code ?? ''} ${String(answer.error?.message ?? '').slice(0, 300)}`;
      // The overloaded store failed it (503): retried after the answer's Retry-After, not the usual back-off.
      if (answer.error?.statusCode === 503) return { kind: 'retry', error: new OverloadedError(retryAfterMs, 'PB_ERR_IO', message) };
      return { kind: 'retry', error: new Error(message) };
    }
    default:
      // No readable answer for this result: the single route says what became of it.
      return { kind: 'single' };
  }
}
