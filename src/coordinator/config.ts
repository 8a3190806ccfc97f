import { readFileSync } from 'node:fs';
import { PortbanditError } from '../core/errors.js';

/** The coordinator's resolved configuration (frozen; the core never sees raw input). */
export interface CoordinatorConfig {
  /** Listen address. */
  readonly host: string;
  readonly port: number;
  /** Data directory holding the SQLite store (portbandit.db). */
  readonly dataDir: string;
  /** Seconds an agent has to submit a work item before it goes back to the queue. */
  readonly leaseSeconds: number;
  /** Maximum request body, bytes. */
  readonly bodyLimitBytes: number;
  /** Finished host visits collected before the strategy learns from them (observe). */
  readonly learnBatchSize: number;
  /** How often expired leases are swept and state is flushed, ms. */
  readonly sweepIntervalMs: number;
  /** NSE scripts a policy may ask for. */
  readonly allowedScripts: readonly string[];
  /** Requests with a missing or bad token allowed per client address and minute. */
  readonly authFailuresPerMinute: number;
  /** What agents are told to wait when there is no work, ms. */
  readonly retryAfterMs: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Elasticsearch cluster URL: a search index fed from the coordination store's outbox (SQLite or PostgreSQL); empty = none. */
  readonly elasticsearchUrl: string;
  /** Index name prefix in Elasticsearch (`${prefix}-scans`, ...). */
  readonly elasticsearchPrefix: string;
  /** Total bytes of screenshot images kept (`<dataDir>/screenshots.db`); the oldest go first. */
  readonly screenshotBudgetBytes: number;
  /** How scope names are resolved: `system` (the system's DNS), `hosts:FILE` or `dns:ADDRESS:PORT` (names.ts). */
  readonly resolver: string;
  /**
   * PostgreSQL URL; when set, the whole store (coordination and scan index) lives there and
   * several coordinators may share it (docs/store.md). Empty: SQLite under dataDir.
   */
  readonly postgresUrl: string;
  /** Schema in that database (one schema = one installation). */
  readonly postgresSchema: string;
}

type Kind = 'string' | 'port' | 'int' | 'list' | 'level' | 'url' | 'pgurl' | 'schema';

interface FieldSpec {
  readonly kind: Kind;
  readonly min?: number;
  readonly max?: number;
  readonly env: string;
}

const fields: Record<keyof CoordinatorConfig, FieldSpec> = {
  host: { kind: 'string', env: 'PORTBANDIT_HOST' },
  port: { kind: 'port', env: 'PORTBANDIT_PORT' },
  dataDir: { kind: 'string', env: 'PORTBANDIT_DATA' },
  leaseSeconds: { kind: 'int', min: 1, max: 7 * 86400, env: 'PORTBANDIT_LEASE_SECONDS' },
  bodyLimitBytes: { kind: 'int', min: 1024, max: 256 * 1024 * 1024, env: 'PORTBANDIT_BODY_LIMIT' },
  learnBatchSize: { kind: 'int', min: 1, max: 1_000_000, env: 'PORTBANDIT_LEARN_BATCH' },
  sweepIntervalMs: { kind: 'int', min: 10, max: 3_600_000, env: 'PORTBANDIT_SWEEP_MS' },
  allowedScripts: { kind: 'list', env: 'PORTBANDIT_ALLOWED_SCRIPTS' },
  authFailuresPerMinute: { kind: 'int', min: 1, max: 1_000_000, env: 'PORTBANDIT_AUTH_FAILURES_PER_MINUTE' },
  retryAfterMs: { kind: 'int', min: 0, max: 3_600_000, env: 'PORTBANDIT_RETRY_AFTER_MS' },
  logLevel: { kind: 'level', env: 'PORTBANDIT_LOG_LEVEL' },
  elasticsearchUrl: { kind: 'url', env: 'PORTBANDIT_ELASTICSEARCH_URL' },
  elasticsearchPrefix: { kind: 'string', env: 'PORTBANDIT_ELASTICSEARCH_PREFIX' },
  screenshotBudgetBytes: { kind: 'int', min: 0, max: 2 ** 40, env: 'PORTBANDIT_SCREENSHOT_BUDGET' },
  resolver: { kind: 'string', env: 'PORTBANDIT_RESOLVER' },
  postgresUrl: { kind: 'pgurl', env: 'PORTBANDIT_POSTGRES_URL' },
  postgresSchema: { kind: 'schema', env: 'PORTBANDIT_POSTGRES_SCHEMA' },
};

/** Defaults, in one place. Loopback by default: exposing the API is an operator's decision. */
export const configDefaults: CoordinatorConfig = Object.freeze({
  host: '127.0.0.1',
  port: 8080,
  dataDir: './data',
  leaseSeconds: 900,
  bodyLimitBytes: 8 * 1024 * 1024,
  learnBatchSize: 64,
  sweepIntervalMs: 1000,
  allowedScripts: Object.freeze(['ssl-cert', 'http-title', 'http-headers', 'ssh-hostkey', 'banner']),
  authFailuresPerMinute: 30,
  retryAfterMs: 5000,
  logLevel: 'info' as const,
  elasticsearchUrl: '',
  elasticsearchPrefix: 'portbandit',
  screenshotBudgetBytes: 1024 * 1024 * 1024,
  resolver: 'system',
  postgresUrl: '',
  postgresSchema: 'portbandit',
});

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function coerce(key: string, spec: FieldSpec, value: unknown, where: string): unknown {
  const fail = (expected: string): never => {
    throw new PortbanditError('PB_ERR_CONFIG', `${key}: expected ${expected}, got ${JSON.stringify(value)}`, { where });
  };
  switch (spec.kind) {
    case 'string':
      return typeof value === 'string' && value.trim() !== '' ? value : fail('a non-empty string');
    case 'url':
      return value === '' || (typeof value === 'string' && /^https?:\/\/[^\s/]+/.test(value)) ? value : fail('an http(s) URL such as "http://127.0.0.1:9200", or "" for SQLite');
    case 'pgurl':
      return value === '' || (typeof value === 'string' && /^postgres(ql)?:\/\/\S+$/.test(value))
        ? value
        : fail('a PostgreSQL URL such as "postgres://portbandit@127.0.0.1:5432/portbandit", or "" for SQLite');
    case 'schema':
      return typeof value === 'string' && /^[a-z_][a-z0-9_]{0,62}$/.test(value) ? value : fail('a schema name (lower-case letters, digits and _, at most 63)');
    case 'level':
      return typeof value === 'string' && LEVELS.includes(value) ? value : fail(`one of ${LEVELS.join(', ')}`);
    case 'list': {
      const list = typeof value === 'string' ? value.split(',').map((s) => s.trim()).filter((s) => s !== '') : value;
      if (!Array.isArray(list) || !list.every((s) => typeof s === 'string' && /^[a-z0-9][a-z0-9_-]{0,63}$/.test(s))) {
        return fail('a list of NSE script names ("ssl-cert,http-title")');
      }
      return Object.freeze([...list]);
    }
    case 'port':
    case 'int': {
      const n = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
      const min = spec.kind === 'port' ? 0 : spec.min!;
      const max = spec.kind === 'port' ? 65535 : spec.max!;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) return fail(`an integer from ${min} to ${max}`);
      return n;
    }
  }
}

/** Raw configuration input from one source (flags, env, file): any subset of the keys. */
export type ConfigInput = Partial<Record<keyof CoordinatorConfig, unknown>>;

/**
 * Resolve the configuration once, at the edge: defaults, then the config file (JSON), then
 * PORTBANDIT_* environment variables, then flags. Unknown file keys and bad values throw
 * PB_ERR_CONFIG naming the source and the key.
 */
export function resolveConfig(sources: { flags?: ConfigInput; env?: NodeJS.ProcessEnv; file?: string } = {}): CoordinatorConfig {
  const out: Record<string, unknown> = { ...configDefaults };
  const env = sources.env ?? {};
  const file = sources.file ?? env.PORTBANDIT_CONFIG;
  if (file) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (cause) {
      throw new PortbanditError('PB_ERR_CONFIG', `cannot read the config file as JSON: ${(cause as Error).message}`, { where: file, cause });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new PortbanditError('PB_ERR_CONFIG', 'expected a JSON object of settings', { where: file });
    }
    for (const [key, value] of Object.entries(parsed)) {
      const spec = (fields as Record<string, FieldSpec>)[key];
      if (!spec) throw new PortbanditError('PB_ERR_CONFIG', `unknown setting "${key}" (known: ${Object.keys(fields).join(', ')})`, { where: file });
      out[key] = coerce(key, spec, value, file);
    }
  }
  for (const [key, spec] of Object.entries(fields)) {
    const value = env[spec.env];
    if (value !== undefined && value !== '') out[key] = coerce(key, spec, value, `env ${spec.env}`);
  }
  for (const [key, value] of Object.entries(sources.flags ?? {})) {
    const spec = (fields as Record<string, FieldSpec>)[key];
    if (value === undefined || !spec) continue;
    out[key] = coerce(key, spec, value, `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
  }
  return Object.freeze(out) as unknown as CoordinatorConfig;
}
