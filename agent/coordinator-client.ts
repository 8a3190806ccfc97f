import { type ErrorCode, PortbanditError, VERSION, errorCodes } from '../src/core/index.js';
import {
  type ResultBatchResponse,
  type ResultSubmission,
  type SubmitResponse,
  WORK_FEATURES_HEADER,
  WORK_FEATURE_PORT_RANGES,
  WORK_FEATURE_SILENT_ROUNDS,
  type WorkItem,
  type WorkResponse,
} from '../src/protocol/index.js';

/** An HTTP error from the coordinator that retrying will not fix (4xx but 429), with its status. */
export class RejectedError extends PortbanditError {
  constructor(
    readonly status: number,
    ...rest: ConstructorParameters<typeof PortbanditError>
  ) {
    super(...rest);
  }
}

/**
 * The coordinator is overloaded (503, e.g. PB_ERR_STORE_BUSY): nothing was stored, try again
 * after `retryAfterMs` (from its Retry-After header; undefined when it sent none or one that is
 * not readable: then the usual back-off).
 */
export class OverloadedError extends PortbanditError {
  constructor(
    readonly retryAfterMs: number | undefined,
    ...rest: ConstructorParameters<typeof PortbanditError>
  ) {
    super(...rest);
  }
}

/** Shortest and longest wait taken from a Retry-After header (ms): a hint of 0 or of hours is bounded. */
export const RETRY_AFTER_BOUNDS = { minMs: 250, maxMs: 60_000 } as const;

/**
 * A Retry-After header's wait in ms (delay-seconds, or an HTTP date), bounded by
 * RETRY_AFTER_BOUNDS (and `maxMs`); undefined when absent or not readable.
 */
export function retryAfterMsOf(header: string | null, now = Date.now(), maxMs: number = RETRY_AFTER_BOUNDS.maxMs): number | undefined {
  if (header === null) return undefined;
  const text = header.trim();
  let ms: number;
  if (/^\d{1,9}$/.test(text)) ms = Number(text) * 1000;
  else {
    const at = Date.parse(text);
    if (!Number.isFinite(at) || !/[a-z]/i.test(text)) return undefined;
    ms = at - now;
  }
  return Math.min(Math.max(ms, RETRY_AFTER_BOUNDS.minMs), Math.max(RETRY_AFTER_BOUNDS.minMs, Math.min(maxMs, RETRY_AFTER_BOUNDS.maxMs)));
}

/** How long to wait before trying again after `error`: the coordinator's Retry-After when it sent one, else `backoffMs`. */
export function retryDelayMs(error: unknown, backoffMs: number): number {
  return error instanceof OverloadedError && error.retryAfterMs !== undefined ? error.retryAfterMs : backoffMs;
}

/** The portbandit error code of an error answer's JSON body (`{code, message}`), when it has a known one. */
export function errorCodeOf(body: string): ErrorCode | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  const code = typeof parsed === 'object' && parsed !== null ? (parsed as { code?: unknown }).code : undefined;
  return typeof code === 'string' && Object.hasOwn(errorCodes, code) ? (code as ErrorCode) : undefined;
}

/** The agent's side of the wire protocol (docs/api.md): bearer token, JSON, bounded requests. */
export class CoordinatorClient {
  private readonly base: string;
  private readonly token: string;
  private readonly timeoutMs: number;

  constructor(server: string, token: string, timeoutMs = 30_000) {
    let url: URL;
    try {
      url = new URL(server);
    } catch {
      throw new PortbanditError('PB_ERR_URL', `expected a URL like http://127.0.0.1:8787, got ${JSON.stringify(server)}`, {
        where: '--server',
      });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new PortbanditError('PB_ERR_URL', `expected http(s), got ${url.protocol}`, { where: '--server' });
    this.base = url.toString().replace(/\/$/, '');
    this.token = token;
    this.timeoutMs = timeoutMs;
  }

  private async request<T>(method: 'GET' | 'POST', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    return (await this.exchange<T>(method, path, body, headers)).body;
  }

  private async exchange<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ body: T; retryAfterMs: number | undefined }> {
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (cause) {
      throw new PortbanditError('PB_ERR_IO', `coordinator unreachable: ${(cause as Error).message}`, { where: `${method} ${path}`, cause });
    }
    const text = await res.text();
    const retryAfterMs = retryAfterMsOf(res.headers.get('retry-after'));
    if (!res.ok) {
      const message = `coordinator answered ${res.status}: ${text.slice(0, 300)}`;
      if (res.status === 503) {
        throw new OverloadedError(retryAfterMs, errorCodeOf(text) ?? 'PB_ERR_IO', message, { where: `${method} ${path}` });
      }
      if (res.status >= 400 && res.status < 500 && res.status !== 429) {
        // The coordinator's error body names its condition ({code, message}); a 4xx without one
        // (a proxy, an older or foreign server) keeps a code that says only that it was refused.
        const code = errorCodeOf(text) ?? 'PB_ERR_COORDINATOR_REJECTED';
        throw new RejectedError(res.status, code, message, { where: `${method} ${path}` });
      }
      throw new PortbanditError('PB_ERR_IO', message, { where: `${method} ${path}` });
    }
    try {
      return { body: JSON.parse(text) as T, retryAfterMs };
    } catch (cause) {
      throw new PortbanditError('PB_ERR_IO', `coordinator sent non-JSON: ${text.slice(0, 100)}`, { where: `${method} ${path}`, cause });
    }
  }

  /**
   * Lease the next work item (null when there is none; `retryAfterMs` says when to ask again);
   * with `max` > 1, up to `max` items in `items` (a coordinator older than batches refuses `max`
   * with 400 or answers `work` alone). The agent reads items whose ports come as a range spec
   * (`portRanges`) and marked silent rounds (`silent`), and says so in a header, which coordinators
   * without them ignore.
   */
  async getWork(max = 1): Promise<WorkResponse> {
    return this.request<WorkResponse>(
      'GET',
      `/api/v1/agent/work?version=${encodeURIComponent(VERSION)}${max > 1 ? `&max=${max}` : ''}`,
      undefined,
      { [WORK_FEATURES_HEADER]: `${WORK_FEATURE_PORT_RANGES},${WORK_FEATURE_SILENT_ROUNDS}` },
    );
  }

  async submit(result: ResultSubmission): Promise<SubmitResponse> {
    return this.request<SubmitResponse>('POST', '/api/v1/agent/results', result);
  }

  /**
   * Submit several results in one request (up to 64); each is answered on its own. An older
   * coordinator answers 404. `retryAfterMs`: the answer's Retry-After (sent when the overloaded
   * store failed some of them), bounded; not part of the wire answer.
   */
  async submitBatch(results: readonly ResultSubmission[]): Promise<ResultBatchResponse & { readonly retryAfterMs?: number }> {
    const { body, retryAfterMs } = await this.exchange<ResultBatchResponse>('POST', '/api/v1/agent/results/batch', { results });
    return retryAfterMs !== undefined && body !== null && typeof body === 'object' ? { ...body, retryAfterMs } : body;
  }

  /**
   * Give back leases this agent will not finish (it is stopping): the coordinator queues them again
   * now instead of when they expire. An older coordinator answers 404.
   */
  async release(leaseIds: readonly string[]): Promise<{ released: number }> {
    return this.request<{ released: number }>('POST', '/api/v1/agent/release', { leaseIds });
  }

  /** Tell the coordinator this agent refused a work item, and why (docs/api.md). */
  async reportRefused(leaseId: string, reason: string): Promise<{ recorded: boolean }> {
    return this.request<{ recorded: boolean }>('POST', '/api/v1/agent/refused', { leaseId, reason: reason.slice(0, 1000) });
  }
}

export type { WorkItem };
