/**
 * The agent wire protocol (version 1): what `GET /api/v1/agent/work` hands out and what
 * `POST /api/v1/agent/results` accepts, as TypeScript types and the JSON schemas fastify
 * validates against. docs/api.md documents it for agent authors.
 */

export const PROTOCOL_VERSION = 1;

/** How the agent runs nmap for a work item, decided by the target's policy. */
export interface ScanOptions {
  /** nmap -sV. */
  readonly versionDetection: boolean;
  /** NSE scripts to run (--script), already filtered by the server's allowlist. */
  readonly scripts: readonly string[];
  /** nmap --host-timeout, seconds. */
  readonly hostTimeoutSeconds: number;
  /** nmap --script-timeout, seconds. */
  readonly scriptTimeoutSeconds: number;
  /**
   * Port preflight before nmap: `auto` (masscan where the agent can run it: root, installed,
   * routed; else the TCP connect sweep), masscan, a connect sweep, or none (nmap's own port scan).
   */
  readonly preflight: PreflightRequest;
  /** nmap --version-intensity (0-9): fewer probes per silent service. Absent: the agent's default. */
  readonly versionIntensity?: number;
}

/** The preflight that ran (what a result reports). */
export type Preflight = 'masscan' | 'connect' | 'none';

/** The preflight a policy asks for. */
export type PreflightRequest = Preflight | 'auto';

/** One work item: scan these TCP ports on this host and report before the deadline. */
export interface WorkItem {
  readonly protocol: typeof PROTOCOL_VERSION;
  /** Submit the result with this id; it is bound to the agent that received it. */
  readonly leaseId: string;
  readonly ip: string;
  readonly tags: readonly string[];
  /** TCP ports to probe, ascending. Results for other ports are rejected. */
  readonly ports: readonly number[];
  /**
   * Ports of `ports` last known open on this host. A fast preflight that loses a packet must not
   * turn one of them into a closed service: the agent confirms a silent answer for these with
   * probes of its own before it reports them not open.
   */
  readonly verify?: readonly number[];
  /** 0 for the first work item of a host visit; 1, 2, ... for the strategy's follow-ups. */
  readonly round: number;
  readonly cycle: number;
  readonly reason: 'cycle' | 'manual' | 'expired' | 'followup';
  /** Milliseconds since the Unix epoch. */
  readonly issuedAt: number;
  readonly deadline: number;
  readonly scan: ScanOptions;
}

/** Most work items one `GET /api/v1/agent/work?max=` hands out. */
export const MAX_WORK_BATCH = 256;

/** Most results one `POST /api/v1/agent/results/batch` carries. */
export const MAX_RESULT_BATCH = 64;

export interface WorkResponse {
  /** null when there is nothing to do right now; with `max` > 1, the first of `items`. */
  readonly work: WorkItem | null;
  /** With `max` > 1 only: every item handed out (0 to `max`, distinct addresses of the cycle). */
  readonly items?: readonly WorkItem[];
  /** When nothing was handed out: how long to wait before asking again. */
  readonly retryAfterMs?: number;
}

export interface ScriptOutput {
  readonly id: string;
  readonly output: string;
  readonly fields?: unknown;
}

export type PortStateText = 'open' | 'closed' | 'filtered' | 'open|filtered' | 'closed|filtered' | 'unfiltered';

/** One port as nmap reported it (-sV detail when version detection ran). */
export interface PortResult {
  readonly port: number;
  readonly protocol?: 'tcp';
  readonly state: PortStateText;
  readonly service?: string;
  readonly product?: string;
  readonly version?: string;
  readonly extrainfo?: string;
  readonly cpes?: readonly string[];
  readonly scripts?: readonly ScriptOutput[];
  /**
   * nmap's `tunnel="ssl"` (-sV found TLS in front of the service). Agent-internal: the screenshot
   * step reads it to pick https; the agent removes it before submitting (not part of the wire schema).
   */
  readonly tunnel?: 'ssl';
  /**
   * nmap could not name the service, but its fingerprint shows an HTTP answer to an HTTP probe
   * (a web server without a Server header: Node, Go, ...). Agent-internal like `tunnel`.
   */
  readonly answersHttp?: true;
}

/** Most screenshots one result carries. */
export const MAX_SCREENSHOTS_PER_RESULT = 16;

/** Largest screenshot (decoded bytes), and largest total of one result's screenshots. */
export const MAX_SCREENSHOT_BYTES = 1024 * 1024;
export const MAX_SCREENSHOT_RESULT_BYTES = 4 * 1024 * 1024;

/** A rendered web service (agent `--screenshots`): one open HTTP(S) port of the result. */
export interface Screenshot {
  /** An open port of the same result. */
  readonly port: number;
  readonly scheme: 'http' | 'https';
  readonly mime: 'image/png' | 'image/jpeg';
  /** The image, base64 (at most MAX_SCREENSHOT_BYTES decoded). */
  readonly data: string;
  /** Pixel size, as the image's own header says. */
  readonly width: number;
  readonly height: number;
  /** The page's title. */
  readonly title?: string;
}

/**
 * The result of one work item. Ports not listed were probed and not open (closed or filtered),
 * except those in `unknownPorts`, whose state the agent could not observe.
 */
export interface ResultSubmission {
  readonly leaseId: string;
  readonly ip: string;
  /** `down`: the host did not answer at all (no port results are expected). */
  readonly status: 'up' | 'down';
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly preflight: Preflight;
  readonly ports: readonly PortResult[];
  /**
   * Ports of the work item whose state is unknown (the preflight failed or was cut short, or
   * nmap timed out where it was the port scan), as an nmap-style spec ("1-1000,8080"). Absent:
   * every port not listed in `ports` was observed not open.
   */
  readonly unknownPorts?: string;
  /**
   * Why the result is partial (host time-out, nmap failure, preflight loss): open ports are still
   * open, but service detail may be missing. Absent when everything finished.
   */
  readonly incomplete?: string;
  /** Phase durations in milliseconds: `preflight`, `nmap`, `total`, ... */
  readonly timings?: Readonly<Record<string, number>>;
  /** Host-level extras: hostname, os guess. */
  readonly host?: Readonly<Record<string, unknown>>;
  readonly agentVersion?: string;
  /** Rendered web services (agent `--screenshots`); the coordinator stores the images apart from the scan. */
  readonly screenshots?: readonly Screenshot[];
}

export interface SubmitResponse {
  readonly scanId: string;
  /** False when this lease's result was already stored (a duplicate submission). */
  readonly accepted: boolean;
  readonly duplicate: boolean;
  /** The strategy asked for a follow-up round: a new work item for this host is queued. */
  readonly followUp: boolean;
  /** New/closed/changed service events this result produced. */
  readonly events: number;
}

/** `POST /api/v1/agent/results/batch`: several results in one request. */
export interface ResultBatch {
  readonly results: readonly ResultSubmission[];
}

/**
 * The answer for one result of a batch, in the request's order. `accepted` and `duplicate` carry
 * what the single route answers; `rejected` (a 4xx of the single route: retrying will not help)
 * and `failed` (a 5xx: the result may be sent again) carry the error the single route would send.
 */
export interface ResultBatchItem {
  readonly outcome: 'accepted' | 'duplicate' | 'rejected' | 'failed';
  /** The item's lease id, when it had a readable one. */
  readonly leaseId?: string;
  readonly scanId?: string;
  readonly followUp?: boolean;
  readonly events?: number;
  readonly error?: { readonly statusCode: number; readonly code: string; readonly message: string };
}

export interface ResultBatchResponse {
  readonly results: readonly ResultBatchItem[];
}

// ------------------------------------------------------------------ JSON schemas

const timestamp = { type: 'integer', minimum: 0, maximum: 8.64e15 } as const;
const port = { type: 'integer', minimum: 1, maximum: 65535 } as const;
const shortText = (maxLength: number) => ({ type: 'string', maxLength }) as const;

export const scanOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['versionDetection', 'scripts', 'hostTimeoutSeconds', 'scriptTimeoutSeconds', 'preflight'],
  properties: {
    versionDetection: { type: 'boolean' },
    scripts: { type: 'array', maxItems: 64, items: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,63}$' } },
    hostTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 86400 },
    scriptTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 86400 },
    preflight: { type: 'string', enum: ['auto', 'masscan', 'connect', 'none'] },
    versionIntensity: { type: 'integer', minimum: 0, maximum: 9 },
  },
} as const;

export const workItemSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['protocol', 'leaseId', 'ip', 'tags', 'ports', 'round', 'cycle', 'reason', 'issuedAt', 'deadline', 'scan'],
  properties: {
    protocol: { type: 'integer', const: PROTOCOL_VERSION },
    leaseId: shortText(64),
    ip: shortText(64),
    tags: { type: 'array', items: shortText(64) },
    ports: { type: 'array', maxItems: 65535, items: port },
    verify: { type: 'array', maxItems: 65535, items: port },
    round: { type: 'integer', minimum: 0 },
    cycle: { type: 'integer', minimum: 0 },
    reason: { type: 'string', enum: ['cycle', 'manual', 'expired', 'followup'] },
    issuedAt: timestamp,
    deadline: timestamp,
    scan: scanOptionsSchema,
  },
} as const;

export const workResponseSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['work'],
  properties: {
    // nullable instead of anyOf: fast-json-stringify serialises anyOf by validating each branch.
    work: { ...workItemSchema, nullable: true },
    items: { type: 'array', maxItems: MAX_WORK_BATCH, items: workItemSchema },
    retryAfterMs: { type: 'integer', minimum: 0 },
  },
} as const;

export const portResultSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['port', 'state'],
  properties: {
    port,
    protocol: { type: 'string', enum: ['tcp'] },
    state: { type: 'string', enum: ['open', 'closed', 'filtered', 'open|filtered', 'closed|filtered', 'unfiltered'] },
    service: shortText(128),
    product: shortText(256),
    version: shortText(256),
    extrainfo: shortText(512),
    cpes: { type: 'array', maxItems: 32, items: shortText(256) },
    scripts: {
      type: 'array',
      maxItems: 64,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'output'],
        properties: { id: shortText(64), output: shortText(65536), fields: {} },
      },
    },
  },
} as const;

export const screenshotSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['port', 'scheme', 'mime', 'data', 'width', 'height'],
  properties: {
    port,
    scheme: { type: 'string', enum: ['http', 'https'] },
    mime: { type: 'string', enum: ['image/png', 'image/jpeg'] },
    data: { type: 'string', minLength: 16, maxLength: Math.ceil(MAX_SCREENSHOT_BYTES / 3) * 4, pattern: '^[A-Za-z0-9+/]+={0,2}$' },
    width: { type: 'integer', minimum: 1, maximum: 16384 },
    height: { type: 'integer', minimum: 1, maximum: 16384 },
    title: shortText(256),
  },
} as const;

export const resultSubmissionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['leaseId', 'ip', 'status', 'startedAt', 'finishedAt', 'preflight', 'ports'],
  properties: {
    leaseId: shortText(64),
    ip: shortText(64),
    status: { type: 'string', enum: ['up', 'down'] },
    startedAt: timestamp,
    finishedAt: timestamp,
    preflight: { type: 'string', enum: ['masscan', 'connect', 'none'] },
    ports: { type: 'array', maxItems: 65535, items: portResultSchema },
    unknownPorts: { type: 'string', maxLength: 400_000, pattern: '^[0-9,-]*$' },
    incomplete: shortText(500),
    timings: { type: 'object', maxProperties: 32, additionalProperties: { type: 'number', minimum: 0 } },
    host: { type: 'object', maxProperties: 32 },
    agentVersion: shortText(64),
    screenshots: { type: 'array', maxItems: MAX_SCREENSHOTS_PER_RESULT, items: screenshotSchema },
  },
} as const;

export const submitResponseSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['scanId', 'accepted', 'duplicate', 'followUp', 'events'],
  properties: {
    scanId: { type: 'string' },
    accepted: { type: 'boolean' },
    duplicate: { type: 'boolean' },
    followUp: { type: 'boolean' },
    events: { type: 'integer', minimum: 0 },
  },
} as const;

/**
 * The batch envelope only: each result is checked against `resultSubmissionSchema` on its own
 * (src/coordinator/result-batch.ts), so one malformed result is answered alone and does not fail
 * the others.
 */
export const resultBatchSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['results'],
  properties: { results: { type: 'array', minItems: 1, maxItems: MAX_RESULT_BATCH, items: {} } },
} as const;

export const resultBatchResponseSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['results'],
  properties: {
    results: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['outcome'],
        properties: {
          outcome: { type: 'string', enum: ['accepted', 'duplicate', 'rejected', 'failed'] },
          leaseId: { type: 'string' },
          scanId: { type: 'string' },
          followUp: { type: 'boolean' },
          events: { type: 'integer', minimum: 0 },
          error: {
            type: 'object',
            additionalProperties: false,
            required: ['statusCode', 'code', 'message'],
            properties: { statusCode: { type: 'integer' }, code: { type: 'string' }, message: { type: 'string' } },
          },
        },
      },
    },
  },
} as const;

/** Every error response: the stable code, the HTTP status and a message naming the input. */
export const errorResponseSchema = {
  type: 'object',
  required: ['statusCode', 'code', 'message'],
  properties: {
    statusCode: { type: 'integer' },
    code: { type: 'string' },
    error: { type: 'string' },
    message: { type: 'string' },
  },
} as const;
