import { readFileSync } from 'node:fs';
import { cliIo } from './io.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorCodes, type ErrorCode, PortbanditError } from '../core/index.js';
import { findHostScan, formatNmapXml, normalizeIp, streamRecording } from '../coordinator/index.js';
import { matchEvent, parseEventQuery, parseQuery, type Store, type StoreEvent } from '../store/index.js';
import { withDataStore } from './data-store.js';

/** Where results come from: a data directory (`--data`) or a running coordinator (`--server`). */
export interface SourceFlags {
  readonly data?: string;
  readonly server?: string;
  readonly tokenFile?: string;
}

export interface EventsRequest {
  readonly query: string;
  readonly cursor?: string;
  readonly follow: boolean;
  /** Ends a follow (Ctrl-C); the stream returns normally. */
  readonly signal: AbortSignal;
}

export interface EventSink {
  event(event: StoreEvent): Promise<void>;
  /** A checkpoint: every event before it was handed to `event`. */
  cursor(cursor: string): Promise<void>;
}

/**
 * What the `events` and `export` commands read, the same over a data directory and over the
 * admin API, so both paths print identical bytes. Cursors are the store's, so one taken from a
 * server continues on its data directory and back.
 */
export interface ResultSource {
  events(request: EventsRequest, sink: EventSink): Promise<void>;
  /** The history as a replay recording, one NDJSON line per call of `write`. */
  recording(options: { name: string; since?: number; until?: number }, write: (line: string) => Promise<void>): Promise<void>;
  /** A host's visit (default its latest) as nmap XML. */
  nmapXml(ip: string, scanId?: string): Promise<string>;
  /** Every visit (history view) or every host's latest matching a query, as NDJSON lines. */
  visits(options: { query: string; latest: boolean }, write: (line: string) => Promise<void>): Promise<void>;
}

/** How often a follower on a data directory looks for new events (another process writes them). */
const LOCAL_POLL_MS = 500;

/** Run `fn` on the source the flags name: `--server` (with an admin token) or the data directory. */
export async function withResultSource<T>(flags: SourceFlags, fn: (source: ResultSource) => Promise<T>): Promise<T> {
  if (flags.server !== undefined && flags.data !== undefined)
    throw new PortbanditError('PB_ERR_FLAG_CONFLICT', 'give either --server or --data, not both', { where: '--server' });
  // An explicit --data wins over $PORTBANDIT_SERVER.
  const server = flags.server ?? (flags.data === undefined ? cliIo().env.PORTBANDIT_SERVER : undefined);
  if (server !== undefined && server !== '') {
    return fn(remoteSource(parseServer(server), adminToken(flags.tokenFile)));
  }
  return withDataStore(flags.data, async (app) => fn(localSource(app.coordinator.store)));
}

function parseServer(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new PortbanditError('PB_ERR_URL', `expected the coordinator's URL (http://host:port), got ${JSON.stringify(text)}`, {
      where: '--server',
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new PortbanditError('PB_ERR_URL', `expected an http or https URL, got ${JSON.stringify(text)}`, { where: '--server' });
  }
  return url;
}

/** The admin token: --token-file, then $PORTBANDIT_ADMIN_TOKEN (never a flag: `ps` shows flags). */
export function adminToken(tokenFile: string | undefined): string {
  if (tokenFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(tokenFile, 'utf8');
    } catch (cause) {
      throw new PortbanditError('PB_ERR_IO', `cannot read the admin token: ${(cause as Error).message}`, { where: '--token-file', cause });
    }
    const token = text.trim();
    if (token === '') throw new PortbanditError('PB_ERR_FLAG_VALUE', `the token file ${tokenFile} is empty`, { where: '--token-file' });
    return token;
  }
  const env = cliIo().env.PORTBANDIT_ADMIN_TOKEN?.trim();
  if (env) return env;
  throw new PortbanditError(
    'PB_ERR_FLAG_MISSING',
    'an admin token is required with --server: --token-file FILE or $PORTBANDIT_ADMIN_TOKEN (`portbandit serve` prints one; `portbandit token create` makes more)',
    {
      where: '--token-file',
    },
  );
}

function localSource(store: Store): ResultSource {
  return {
    async events(request, sink) {
      const filter = parseEventQuery(request.query);
      let cursor = request.cursor;
      while (!request.signal.aborted) {
        const page = await store.readEvents({ ...(cursor !== undefined ? { cursor } : {}), limit: 1000 });
        for (const e of page.events) if (matchEvent(e, filter)) await sink.event(e);
        if (page.cursor !== undefined && page.cursor !== cursor) await sink.cursor(page.cursor);
        cursor = page.cursor;
        if (page.events.length === 1000) continue;
        if (!request.follow) return;
        await sleep(LOCAL_POLL_MS, undefined, { signal: request.signal }).catch(() => undefined);
      }
    },
    async recording(options, write) {
      await streamRecording(store, options, async (line) => {
        await write(line);
        return true;
      });
    },
    async nmapXml(ip, scanId) {
      return formatNmapXml(await findHostScan(store, normalizeIp(ip), scanId));
    },
    async visits(options, write) {
      const query = parseQuery(options.query);
      let cursor: string | undefined;
      do {
        const page = await store.search(query, {
          limit: 1000,
          view: options.latest ? 'latest' : 'history',
          ...(cursor !== undefined ? { cursor } : {}),
        });
        for (const scan of page.items) await write(JSON.stringify(scan));
        cursor = page.nextCursor;
      } while (cursor !== undefined);
    },
  };
}

function remoteSource(base: URL, token: string): ResultSource {
  const get = async (
    path: string,
    params: Record<string, string | number | boolean | undefined>,
    signal?: AbortSignal,
  ): Promise<Response> => {
    const url = new URL(path, base);
    for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.set(k, String(v));
    let res: Response;
    try {
      res = await fetch(url, { headers: { authorization: `Bearer ${token}` }, ...(signal ? { signal } : {}) });
    } catch (cause) {
      if (signal?.aborted) throw cause;
      throw new PortbanditError('PB_ERR_IO', `cannot reach the coordinator: ${(cause as Error).message}`, { where: url.origin, cause });
    }
    if (!res.ok) {
      const body = (await res.json().catch(() => ({}))) as { code?: string; message?: string };
      const code = (
        body.code !== undefined && body.code in errorCodes ? body.code : res.status === 404 ? 'PB_ERR_NOT_FOUND' : 'PB_ERR_INTERNAL'
      ) as ErrorCode;
      throw new PortbanditError(code, body.message ?? `HTTP ${res.status}`, { where: `${url.origin}${url.pathname}` });
    }
    return res;
  };
  /** The body's lines (without the newline), as they arrive. */
  async function* lines(res: Response): AsyncIterable<string> {
    const decoder = new TextDecoder();
    let buffer = '';
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        yield buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
      }
    }
    buffer += decoder.decode();
    if (buffer !== '') yield buffer;
  }
  return {
    async events(request, sink) {
      // The server filters; parse here too so a bad query fails the same way on both paths.
      parseEventQuery(request.query);
      try {
        const res = await get('/api/v1/events', { q: request.query, cursor: request.cursor, follow: request.follow }, request.signal);
        for await (const line of lines(res)) {
          if (line === '') continue;
          const value = JSON.parse(line) as StoreEvent | { cursor?: string };
          if ('kind' in value) await sink.event(value);
          else if (typeof value.cursor === 'string') await sink.cursor(value.cursor);
        }
      } catch (error) {
        if (!request.signal.aborted) throw error;
      }
    },
    async recording(options, write) {
      for await (const line of lines(await get('/api/v1/export/recording', options))) if (line !== '') await write(line);
    },
    async nmapXml(ip, scanId) {
      return (await get('/api/v1/export/nmap', { ip, scan: scanId })).text();
    },
    async visits(options, write) {
      const res = await get('/api/v1/search', { q: options.query, view: options.latest ? 'latest' : 'history', format: 'ndjson' });
      for await (const line of lines(res)) if (line !== '') await write(line);
    },
  };
}
