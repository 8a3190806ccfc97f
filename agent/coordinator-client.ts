import { randomBytes } from 'node:crypto';
import { type ErrorCode, PortbanditError, VERSION, errorCodes } from '../src/core/index.js';
import {
  MAX_ABANDONED_WORK_REQUESTS,
  WORK_ABANDONED_HEADER,
  WORK_REQUEST_HEADER,
  type ResultBatchResponse,
  type ResultSubmission,
  type SubmitResponse,
  WORK_FEATURES_HEADER,
  WORK_FEATURE_PORT_RANGES,
  WORK_FEATURE_LIKELY_PORTS,
  WORK_FEATURE_SILENT_ROUNDS,
  WORK_FEATURE_SKIP_SILENT,
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

/** Parse one `--server` URL (http or https), naming the flag in the error. */
function serverBase(server: string): string {
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
  return url.toString().replace(/\/$/, '');
}

/**
 * The agent's side of the wire protocol (docs/api.md): bearer token, JSON, bounded requests.
 *
 * Given several coordinators (those sharing one PostgreSQL store: any of them leases, and takes
 * the results of, any lease), it talks to one at a time and moves to the next when a request to
 * it cannot be answered — unreachable, timed out, or a 5xx — trying each server at most once per
 * request before the error goes to the caller's back-off. It stays with the one that answered.
 * A 4xx (a refused token, a bad body) is the same on every coordinator and is not retried elsewhere.
 */
export class CoordinatorClient {
  private readonly bases: readonly string[];
  private readonly token: string;
  private readonly timeoutMs: number;
  private readonly onSwitch: ((from: string, to: string, reason: string) => void) | undefined;
  private active = 0;
  /** Keys of work requests that went unanswered, oldest first: named on the next work request. */
  private readonly abandoned: string[] = [];

  constructor(
    server: string | readonly string[],
    token: string,
    timeoutMs = 30_000,
    onSwitch?: (from: string, to: string, reason: string) => void,
  ) {
    const servers = typeof server === 'string' ? [server] : server;
    if (servers.length === 0) throw new PortbanditError('PB_ERR_FLAG_MISSING', 'no coordinator URL given', { where: '--server' });
    this.bases = [...new Set(servers.map(serverBase))];
    this.token = token;
    this.timeoutMs = timeoutMs;
    this.onSwitch = onSwitch;
  }

  /** The coordinator the next request goes to. */
  get server(): string {
    return this.bases[this.active]!;
  }

  private async request<T>(method: 'GET' | 'POST', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    return (await this.exchange<T>(method, path, body, headers)).body;
  }

  /**
   * One request, moving on to the next coordinator as the class says. `headers` may be made anew
   * for each attempt; `failed` hears of each attempt that failed, before the next.
   */
  private async exchange<T>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    headers: Record<string, string> | (() => Record<string, string>) = {},
    failed?: (error: unknown) => void,
  ): Promise<{ body: T; retryAfterMs: number | undefined }> {
    for (let tried = 1; ; tried++) {
      const base = this.bases[this.active]!;
      try {
        return await this.exchangeWith<T>(base, method, path, body, typeof headers === 'function' ? headers() : headers);
      } catch (error) {
        failed?.(error);
        // Only a failure another coordinator may not share moves on: not a refusal (4xx), nor a
        // reply that was not JSON (a foreign server answered: the URL is wrong, not the coordinator down).
        if (!(error instanceof Error) || !movable.has(error) || tried >= this.bases.length) throw error;
        // Another request may have moved on meanwhile: move from the one this request used.
        if (this.bases[this.active] === base) {
          this.active = (this.active + 1) % this.bases.length;
          this.onSwitch?.(base, this.bases[this.active]!, (error as Error).message);
        }
      }
    }
  }

  private async exchangeWith<T>(
    base: string,
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    headers: Record<string, string>,
  ): Promise<{ body: T; retryAfterMs: number | undefined }> {
    const where = this.bases.length > 1 ? `${method} ${base}${path}` : `${method} ${path}`;
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, {
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
      throw failover(new PortbanditError('PB_ERR_IO', `coordinator unreachable: ${(cause as Error).message}`, { where, cause }));
    }
    const text = await res.text().catch((cause: unknown) => {
      throw failover(new PortbanditError('PB_ERR_IO', `coordinator answer cut short: ${(cause as Error).message}`, { where, cause }));
    });
    const retryAfterMs = retryAfterMsOf(res.headers.get('retry-after'));
    if (!res.ok) {
      const message = `coordinator answered ${res.status}: ${text.slice(0, 300)}`;
      if (res.status === 503) {
        throw failover(new OverloadedError(retryAfterMs, errorCodeOf(text) ?? 'PB_ERR_IO', message, { where }));
      }
      if (res.status >= 400 && res.status < 500 && res.status !== 429) {
        // The coordinator's error body names its condition ({code, message}); a 4xx without one
        // (a proxy, an older or foreign server) keeps a code that says only that it was refused.
        const code = errorCodeOf(text) ?? 'PB_ERR_COORDINATOR_REJECTED';
        throw new RejectedError(res.status, code, message, { where });
      }
      const error = new PortbanditError('PB_ERR_IO', message, { where });
      throw res.status >= 500 ? failover(error) : error;
    }
    try {
      return { body: JSON.parse(text) as T, retryAfterMs };
    } catch (cause) {
      throw new PortbanditError('PB_ERR_IO', `coordinator sent non-JSON: ${text.slice(0, 100)}`, { where, cause });
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
    // Each attempt is named with a key of its own; an attempt that went unanswered may still have
    // leased hosts, so its key is named as abandoned on the next attempts (here or on the next
    // request) until a coordinator answers one that named it: those leases are then given back
    // now, not after they expire (protocol.ts, WORK_ABANDONED_HEADER).
    let key = '';
    let named: string[] = [];
    const headers = (): Record<string, string> => {
      key = randomBytes(12).toString('base64url');
      named = this.abandoned.slice(-MAX_ABANDONED_WORK_REQUESTS);
      return {
        [WORK_FEATURES_HEADER]: `${WORK_FEATURE_PORT_RANGES},${WORK_FEATURE_SILENT_ROUNDS},${WORK_FEATURE_LIKELY_PORTS},${WORK_FEATURE_SKIP_SILENT}`,
        [WORK_REQUEST_HEADER]: key,
        ...(named.length > 0 ? { [WORK_ABANDONED_HEADER]: named.join(',') } : {}),
      };
    };
    const failed = (error: unknown): void => {
      // A refusal (4xx) leased nothing.
      if (error instanceof RejectedError) return;
      this.abandoned.push(key);
      if (this.abandoned.length > MAX_ABANDONED_WORK_REQUESTS) this.abandoned.shift();
    };
    const { body } = await this.exchange<WorkResponse>(
      'GET',
      `/api/v1/agent/work?version=${encodeURIComponent(VERSION)}${max > 1 ? `&max=${max}` : ''}`,
      undefined,
      headers,
      failed,
    );
    for (const k of named) {
      const at = this.abandoned.indexOf(k);
      if (at >= 0) this.abandoned.splice(at, 1);
    }
    return body;
  }

  /** Keys of work requests that went unanswered and are not yet named to a coordinator that answered. */
  get abandonedWorkRequests(): readonly string[] {
    return this.abandoned;
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
   * now instead of when they expire. `workRequests`: keys of work requests whose answers never
   * came (`abandonedWorkRequests`), whose leases go back too. An older coordinator answers 404,
   * or 400 for `workRequests` (then the lease ids alone are sent again).
   */
  async release(leaseIds: readonly string[], workRequests: readonly string[] = []): Promise<{ released: number }> {
    const ids = leaseIds.length > 0 ? { leaseIds } : {};
    if (workRequests.length === 0) return leaseIds.length > 0 ? this.request('POST', '/api/v1/agent/release', ids) : { released: 0 };
    try {
      return await this.request<{ released: number }>('POST', '/api/v1/agent/release', { ...ids, workRequests });
    } catch (error) {
      if (!(error instanceof RejectedError && error.status === 400)) throw error;
      return leaseIds.length > 0 ? this.request('POST', '/api/v1/agent/release', ids) : { released: 0 };
    }
  }

  /** Tell the coordinator this agent refused a work item, and why (docs/api.md). */
  async reportRefused(leaseId: string, reason: string): Promise<{ recorded: boolean }> {
    return this.request<{ recorded: boolean }>('POST', '/api/v1/agent/refused', { leaseId, reason: reason.slice(0, 1000) });
  }
}

/** Errors another coordinator might not share: CoordinatorClient moves on to the next server. */
const movable = new WeakSet<Error>();

function failover<E extends Error>(error: E): E {
  movable.add(error);
  return error;
}

export type { WorkItem };
