import { readFileSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import { PortbanditError } from '../core/index.js';

/**
 * Every setting, written once: its JSON schema (ajv validates each value against it), its default,
 * its environment variable (`env`), its `serve` flag where it has one (`flag`), the phrase a bad
 * value is told it should have been (`expected`), and its meaning (`description`). The defaults,
 * the `serve` flags and their help (src/cli/config-options.ts) and the table in
 * docs/coordinator.md (`renderConfigTable`, kept in sync by a test) are all generated from it.
 */
export const configSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    host: {
      type: 'string',
      pattern: '\\S',
      default: '127.0.0.1',
      env: 'PORTBANDIT_HOST',
      flag: '--host <host>',
      expected: 'a non-empty string',
      description: 'listen address (loopback by default: exposing the API is a decision)',
    },
    port: {
      type: 'integer',
      minimum: 0,
      maximum: 65535,
      default: 8080,
      env: 'PORTBANDIT_PORT',
      flag: '--port <n>',
      description: 'listen port (0 = any free port)',
    },
    dataDir: {
      type: 'string',
      pattern: '\\S',
      default: './data',
      env: 'PORTBANDIT_DATA',
      flag: '--data <dir>',
      expected: 'a non-empty string',
      description: 'data directory: holds `portbandit.db` (+ WAL files)',
    },
    leaseSeconds: {
      type: 'integer',
      minimum: 1,
      maximum: 7 * 86400,
      default: 900,
      env: 'PORTBANDIT_LEASE_SECONDS',
      flag: '--lease-seconds <n>',
      description: 'time an agent has to submit a work item, seconds',
    },
    bodyLimitBytes: {
      type: 'integer',
      minimum: 1024,
      maximum: 256 * 1024 * 1024,
      default: 8 * 1024 * 1024,
      docDefault: '8 MiB',
      env: 'PORTBANDIT_BODY_LIMIT',
      description: 'request body limit, bytes (413 above)',
    },
    learnBatchSize: {
      type: 'integer',
      minimum: 1,
      maximum: 1_000_000,
      default: 64,
      env: 'PORTBANDIT_LEARN_BATCH',
      description: 'finished host visits per `observe` batch',
    },
    sweepIntervalMs: {
      type: 'integer',
      minimum: 10,
      maximum: 3_600_000,
      default: 1000,
      env: 'PORTBANDIT_SWEEP_MS',
      description: 'lease expiry, scope reload, state flush period, ms',
    },
    allowedScripts: {
      type: 'array',
      items: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,63}$' },
      default: ['ssl-cert', 'http-title', 'http-headers', 'ssh-hostkey', 'banner'],
      env: 'PORTBANDIT_ALLOWED_SCRIPTS',
      expected: 'a list of NSE script names ("ssl-cert,http-title")',
      description: 'NSE scripts a policy may ask for (comma-separated in the environment)',
    },
    authFailuresPerMinute: {
      type: 'integer',
      minimum: 1,
      maximum: 1_000_000,
      default: 30,
      env: 'PORTBANDIT_AUTH_FAILURES_PER_MINUTE',
      description: 'requests without a valid token per client address and minute',
    },
    retryAfterMs: {
      type: 'integer',
      minimum: 0,
      maximum: 3_600_000,
      default: 5000,
      env: 'PORTBANDIT_RETRY_AFTER_MS',
      description: 'what agents are told to wait when there is no work, ms',
    },
    logLevel: {
      type: 'string',
      enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      default: 'info',
      env: 'PORTBANDIT_LOG_LEVEL',
      flag: '--log-level <level>',
      description: 'pino log level',
    },
    elasticsearchUrl: {
      type: 'string',
      pattern: '^$|^https?://[^\\s/]+',
      default: '',
      docDefault: '(empty: none)',
      env: 'PORTBANDIT_ELASTICSEARCH_URL',
      flag: '--elasticsearch <url>',
      expected: 'an http(s) URL such as "http://127.0.0.1:9200", or "" for no search index',
      description:
        "also index results in this Elasticsearch cluster for search, fed from the coordination store's outbox; coordination stays in SQLite or PostgreSQL",
    },
    elasticsearchPrefix: {
      type: 'string',
      pattern: '\\S',
      default: 'portbandit',
      env: 'PORTBANDIT_ELASTICSEARCH_PREFIX',
      flag: '--elasticsearch-prefix <prefix>',
      expected: 'a non-empty string',
      description: 'Elasticsearch index name prefix (`PREFIX-scans`, `-latest`, `-events`)',
    },
    screenshotBudgetBytes: {
      type: 'integer',
      minimum: 0,
      maximum: 2 ** 40,
      default: 1024 * 1024 * 1024,
      docDefault: '1 GiB',
      env: 'PORTBANDIT_SCREENSHOT_BUDGET',
      flag: '--screenshot-budget <bytes>',
      description: 'total bytes of web screenshots kept in `<dataDir>/screenshots.db`; the oldest go first',
    },
    resolver: {
      type: 'string',
      pattern: '\\S',
      default: 'system',
      env: 'PORTBANDIT_RESOLVER',
      flag: '--resolver <spec>',
      expected: 'a non-empty string',
      description:
        "how scope DNS names resolve: `system` (the system's DNS servers), `hosts:FILE` (an /etc/hosts-style file, read again each cycle) or `dns:ADDRESS:PORT` (one DNS server; also `serve --dns ADDRESS:PORT`)",
    },
    sqliteWriter: {
      type: 'string',
      enum: ['inline', 'thread'],
      default: 'inline',
      env: 'PORTBANDIT_SQLITE_WRITER',
      flag: '--sqlite-writer <where>',
      description:
        "where the SQLite store's writes run: `inline` on the event loop's thread, or `thread`, a worker thread of their own (reads stay on the event loop's thread); on 2 cores `thread` raised the batched closed loop 11-36% for 13-23% more CPU per visit and a longer lease tail (docs/coordinator.md, \"The store's thread\")",
    },
    postgresUrl: {
      type: 'string',
      pattern: '^$|^postgres(ql)?://\\S+$',
      default: '',
      docDefault: '(empty: SQLite)',
      env: 'PORTBANDIT_POSTGRES_URL',
      flag: '--postgres <url>',
      expected: 'a PostgreSQL URL such as "postgres://portbandit@127.0.0.1:5432/portbandit", or "" for SQLite',
      description:
        'keep the whole store in this PostgreSQL database; several coordinators may share it (docs/store.md); combines with `elasticsearchUrl`',
    },
    postgresSchema: {
      type: 'string',
      pattern: '^[a-z_][a-z0-9_]{0,62}$',
      default: 'portbandit',
      env: 'PORTBANDIT_POSTGRES_SCHEMA',
      flag: '--postgres-schema <name>',
      expected: 'a schema name (lower-case letters, digits and _, at most 63)',
      description: 'schema in that database (one schema = one installation)',
    },
    postgresPool: {
      type: 'integer',
      minimum: 2,
      maximum: 1000,
      default: 10,
      env: 'PORTBANDIT_POSTGRES_POOL',
      flag: '--postgres-pool <n>',
      description:
        "connections this coordinator keeps to PostgreSQL at most; raise it for many agents per coordinator (each coordinator has its own pool: keep their sum under the server's max_connections)",
    },
  },
} as const;

/** The schema's own keywords beside JSON Schema's (ajv is told about them). */
const META_KEYWORDS = ['env', 'flag', 'expected', 'docDefault'];

/** One setting's schema, as the generators read it. */
export interface SettingSchema {
  readonly type: 'string' | 'integer' | 'array';
  readonly description: string;
  readonly default: unknown;
  readonly env: string;
  readonly flag?: string;
  readonly expected?: string;
  readonly docDefault?: string;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly enum?: readonly string[];
}

export type ConfigKey = keyof typeof configSchema.properties;

/** Every setting by key, in the schema's order. */
export const settings = configSchema.properties as unknown as Readonly<Record<ConfigKey, SettingSchema>>;

/** The coordinator's resolved configuration (frozen; the core never sees raw input). */
export type CoordinatorConfig = {
  readonly [K in ConfigKey]: (typeof configSchema.properties)[K] extends { enum: readonly (infer E)[] }
    ? E
    : (typeof configSchema.properties)[K]['type'] extends 'integer'
      ? number
      : (typeof configSchema.properties)[K]['type'] extends 'array'
        ? readonly string[]
        : string;
};

/** What a bad value of a setting is told it should have been. */
export function expectedOf(setting: SettingSchema): string {
  if (setting.expected !== undefined) return setting.expected;
  if (setting.enum !== undefined) return `one of ${setting.enum.join(', ')}`;
  return `an integer from ${setting.minimum} to ${setting.maximum}`;
}

/** A setting's default as people read it (docs table, `--help`). */
export function describeDefault(setting: SettingSchema): string {
  if (setting.docDefault !== undefined) return setting.docDefault;
  return Array.isArray(setting.default) ? setting.default.join(',') : String(setting.default);
}

/** Defaults, in one place (the schema's). Loopback by default: exposing the API is an operator's decision. */
export const configDefaults: CoordinatorConfig = Object.freeze(
  Object.fromEntries(
    Object.entries(settings).map(([key, s]) => [key, Array.isArray(s.default) ? Object.freeze([...(s.default as string[])]) : s.default]),
  ),
) as unknown as CoordinatorConfig;

const ajv = new Ajv({ strict: true, allErrors: false, keywords: META_KEYWORDS });
const validators = new Map<string, ValidateFunction>(Object.entries(settings).map(([key, s]) => [key, ajv.compile(s)]));

/** A value from text (environment, flags, file) read as its setting's type; ajv then checks it. */
function fromText(setting: SettingSchema, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  if (setting.type === 'integer') return /^\s*\d+\s*$/.test(value) ? Number(value) : value;
  if (setting.type === 'array')
    return value
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  return value;
}

function checkSetting(key: string, raw: unknown, where: string): unknown {
  const setting = (settings as Record<string, SettingSchema>)[key]!;
  const value = fromText(setting, raw);
  if (!validators.get(key)!(value)) {
    throw new PortbanditError('PB_ERR_CONFIG', `${key}: expected ${expectedOf(setting)}, got ${JSON.stringify(raw)}`, { where });
  }
  return Array.isArray(value) ? Object.freeze([...(value as string[])]) : value;
}

/** Raw configuration input from one source (flags, env, file): any subset of the keys. */
export type ConfigInput = Partial<Record<ConfigKey, unknown>>;

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
      throw new PortbanditError('PB_ERR_CONFIG', `cannot read the config file as JSON: ${(cause as Error).message}`, {
        where: file,
        cause,
      });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new PortbanditError('PB_ERR_CONFIG', 'expected a JSON object of settings', { where: file });
    }
    for (const [key, value] of Object.entries(parsed)) {
      if (!(key in settings))
        throw new PortbanditError('PB_ERR_CONFIG', `unknown setting "${key}" (known: ${Object.keys(settings).join(', ')})`, {
          where: file,
        });
      out[key] = checkSetting(key, value, file);
    }
  }
  for (const [key, setting] of Object.entries(settings)) {
    const value = env[setting.env];
    if (value !== undefined && value !== '') out[key] = checkSetting(key, value, `env ${setting.env}`);
  }
  for (const [key, value] of Object.entries(sources.flags ?? {})) {
    if (value === undefined || !(key in settings)) continue;
    out[key] = checkSetting(key, value, flagOf(key));
  }
  return Object.freeze(out) as unknown as CoordinatorConfig;
}

/** Where a flag value is named in errors: the key in kebab case (`--elasticsearch-url`), as before. */
export function flagOf(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

const TABLE_START = '<!-- config-table: generated from configSchema (src/coordinator/config.ts) by renderConfigTable -->';
const TABLE_END = '<!-- /config-table -->';

/** The settings table of docs/coordinator.md, between its markers (a test keeps the file in sync). */
export function renderConfigTable(): string {
  const rows = Object.entries(settings).map(([key, s]) => {
    const flag = s.flag !== undefined ? `\`${s.flag.split(' ')[0]}\`` : '';
    return `| ${key} | ${s.env} | ${flag} | ${describeDefault(s)} | ${s.description} |`;
  });
  return [TABLE_START, '| key | env | `serve` flag | default | meaning |', '|---|---|---|---|---|', ...rows, TABLE_END].join('\n');
}

/** `markdown` with its settings table replaced by a fresh `renderConfigTable()`. */
export function withConfigTable(markdown: string): string {
  const start = markdown.indexOf(TABLE_START);
  const end = markdown.indexOf(TABLE_END);
  if (start < 0 || end < start)
    throw new PortbanditError('PB_ERR_CONFIG', 'no config-table markers found', { where: 'docs/coordinator.md' });
  return markdown.slice(0, start) + renderConfigTable() + markdown.slice(end + TABLE_END.length);
}
