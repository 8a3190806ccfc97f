/**
 * The agent wire protocol (version 1): what `GET /api/v1/agent/work` hands out and what
 * `POST /api/v1/agent/results` accepts. Each message is written once, as the JSON schema fastify
 * validates and serialises with; its TypeScript type is derived from that schema (`FromSchema`,
 * json-schema-to-ts), so the two cannot drift. docs/api.md documents it for agent authors.
 */

import type { FromSchema } from 'json-schema-to-ts';

export const PROTOCOL_VERSION = 1;

/** Most work items one `GET /api/v1/agent/work?max=` hands out. */
export const MAX_WORK_BATCH = 256;

/** Most lease ids one `POST /api/v1/agent/release` may name (an agent gives back more in several). */
export const MAX_RELEASE_BATCH = 1024;

/**
 * Ports one `GET /api/v1/agent/work?max=` hands out at most, summed over its items (2^20: the
 * 17th item of the whole port space reaches it). A budget that covers the port space makes each item 65,535
 * ports (~380 KB of JSON, tens of ms to lease and to take back); 256 of them in one answer were
 * ~100 MB and seconds of a blocked coordinator. The item that reaches the cap is still handed
 * out, so one item is never refused for its size; the answer then says `more`.
 */
export const MAX_WORK_BATCH_PORTS = 1 << 20;

/**
 * The request header an agent sends with `GET /api/v1/agent/work` to list the wire features it
 * reads (comma-separated; unknown ones are ignored), and the feature of work items whose ports
 * come as a range spec (`portRanges`). A header rather than a query parameter: coordinators
 * before it refuse unknown query parameters (400) but ignore unknown headers, so an agent sends
 * it to any coordinator and reads whichever form the answer has.
 */
export const WORK_FEATURES_HEADER = 'portbandit-features';
export const WORK_FEATURE_PORT_RANGES = 'port-ranges';
/**
 * The feature of work items marked `silent`: a later round of a visit whose earlier rounds found
 * no open port. An agent that lists it scans the rounds of hosts that answered first.
 */
export const WORK_FEATURE_SILENT_ROUNDS = 'silent-rounds';
/**
 * The feature of `likely` on work items: the first ports of the strategy's own order for a host
 * with nothing known open, which the agent's masscan sight check tries first.
 */
export const WORK_FEATURE_LIKELY_PORTS = 'likely-ports';
/**
 * The feature of `skipDetection` on work items and of `silent` on result ports: an agent that
 * lists it gets `skipDetection` on every item (empty when there is nothing to skip), and reads
 * its presence as the coordinator's word that it stores `silent` on result ports (a coordinator
 * before it refuses a port property it does not know).
 */
export const WORK_FEATURE_SKIP_SILENT = 'skip-silent';
/** Ports in a work item's `likely` at most. */
export const MAX_LIKELY_PORTS = 16;

/**
 * Lease requests whose answer was lost. An agent names each `GET /api/v1/agent/work` with a key
 * (`portbandit-work-request`, 8-64 of `[A-Za-z0-9_-]`), stored with the leases it hands out. When
 * a request fails without an answer (a time-out, a cut connection, a coordinator that went away),
 * the agent lists its key in `portbandit-work-abandoned` (comma-separated, at most
 * MAX_ABANDONED_WORK_REQUESTS) on its next work request, to the same coordinator or another on
 * the same store: the leases made under those keys, which the agent never saw, are given back and
 * queued again at once (the same request may lease them anew) instead of being held until they
 * expire. Coordinators before it ignore both headers.
 */
export const WORK_REQUEST_HEADER = 'portbandit-work-request';
export const WORK_ABANDONED_HEADER = 'portbandit-work-abandoned';
export const MAX_ABANDONED_WORK_REQUESTS = 16;
/** A work request key: what the two headers above carry. */
export const WORK_REQUEST_KEY = /^[A-Za-z0-9_-]{8,64}$/;

/** Most results one `POST /api/v1/agent/results/batch` carries. */
export const MAX_RESULT_BATCH = 64;

/** Most screenshots one result carries. */
export const MAX_SCREENSHOTS_PER_RESULT = 16;

/** Largest screenshot (decoded bytes), and largest total of one result's screenshots. */
export const MAX_SCREENSHOT_BYTES = 1024 * 1024;
export const MAX_SCREENSHOT_RESULT_BYTES = 4 * 1024 * 1024;

/** A message type as the code reads it: the schema's type, read-only all the way down. */
export type Wire<T> = T extends (infer E)[] ? readonly Wire<E>[] : T extends object ? { readonly [K in keyof T]: Wire<T[K]> } : T;

const timestamp = { type: 'integer', minimum: 0, maximum: 8.64e15 } as const;
const port = { type: 'integer', minimum: 1, maximum: 65535 } as const;
const shortText = (maxLength: number) => ({ type: 'string', maxLength }) as const;

/** How the agent runs nmap for a work item, decided by the target's policy. */
export const scanOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['versionDetection', 'scripts', 'hostTimeoutSeconds', 'scriptTimeoutSeconds', 'preflight'],
  properties: {
    /** nmap -sV. */
    versionDetection: { type: 'boolean' },
    /** NSE scripts to run (--script), already filtered by the server's allowlist. */
    scripts: { type: 'array', maxItems: 64, items: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,63}$' } },
    /** nmap --host-timeout, seconds. */
    hostTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 86400 },
    /** nmap --script-timeout, seconds. */
    scriptTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 86400 },
    /**
     * Port preflight before nmap: `auto` (masscan where the agent can run it: root, installed,
     * routed; else the TCP connect sweep), masscan, a connect sweep, or none (nmap's own port scan).
     */
    preflight: { type: 'string', enum: ['auto', 'masscan', 'connect', 'none'] },
    /** nmap --version-intensity (0-9): fewer probes per silent service. Absent: the agent's default. */
    versionIntensity: { type: 'integer', minimum: 0, maximum: 9 },
  },
} as const;
export type ScanOptions = Wire<FromSchema<typeof scanOptionsSchema>>;

/** The preflight a policy asks for. */
export type PreflightRequest = ScanOptions['preflight'];

/** One work item: scan these TCP ports on this host and report before the deadline. */
export const workItemSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['protocol', 'leaseId', 'ip', 'tags', 'ports', 'round', 'cycle', 'reason', 'issuedAt', 'deadline', 'scan'],
  properties: {
    protocol: { type: 'integer', const: PROTOCOL_VERSION },
    /** Submit the result with this id; it is bound to the agent that received it. */
    leaseId: shortText(64),
    ip: shortText(64),
    tags: { type: 'array', items: shortText(64) },
    /**
     * TCP ports to probe, ascending. Results for other ports are rejected. Empty when the item
     * carries `portRanges` instead.
     */
    ports: { type: 'array', maxItems: 65535, items: port },
    /**
     * The same ports as a canonical range spec ("1-1024,8080": ascending, merged, no spaces),
     * sent instead of the list (then `ports` is empty) only to an agent that asked for it with
     * the request header `Portbandit-Features: port-ranges` (WORK_FEATURE_PORT_RANGES). A
     * whole-port item is 7 bytes instead of ~380 KB. Older agents never ask, so never get one.
     */
    portRanges: { type: 'string', minLength: 1, maxLength: 400_000, pattern: '^[0-9][0-9,-]*$' },
    /**
     * Ports of `ports` last known open on this host. A fast preflight that loses a packet must not
     * turn one of them into a closed service: the agent confirms a silent answer for these with
     * probes of its own before it reports them not open.
     */
    verify: { type: 'array', maxItems: 65535, items: port },
    /**
     * The first visit round of a host with no port of `ports` known open: the ports of `ports` the
     * strategy ranks most likely open, most likely first (its learned ports for the host's tag and
     * /24 included). Sent only to an agent that asked for it with the header
     * `Portbandit-Features: likely-ports` (WORK_FEATURE_LIKELY_PORTS); portbandit's agent tries
     * them first when masscan saw nothing of the host (its sight check, agent/masscan-blind.ts).
     * Absent on a round handed out again from the queue (its stored ports keep no order), and
     * from strategies that learn nothing (fixed, top-k, random: a list's or a draw's order).
     */
    likely: { type: 'array', maxItems: MAX_LIKELY_PORTS, items: port },
    /**
     * Ports of `ports` that were open at the host's last visit and whose service detection got no
     * answer within the -sV time-out there (result port `silent`): found open again, they are
     * reported open and `silent` without running nmap on them (a silent service costs the whole
     * time-out each visit, and answers the next one no better). The policy's
     * `silentRecheckCycles` sets the cycles that run -sV on them again; a manual rescan always
     * does. Sent only to an agent that asked for it with the header `Portbandit-Features:
     * skip-silent` (WORK_FEATURE_SKIP_SILENT), then on every item, empty when there is nothing to
     * skip. An agent that runs nmap as the port scan (preflight `none`) ignores it.
     */
    skipDetection: { type: 'array', maxItems: 65535, items: port },
    /** 0 for the first work item of a host visit; 1, 2, ... for the strategy's follow-ups. */
    round: { type: 'integer', minimum: 0 },
    /**
     * A later round of a visit whose earlier rounds found no open port (a dead or firewalled
     * address, most of a sparse scope), sent only to an agent that asked for it with the header
     * `Portbandit-Features: silent-rounds` (WORK_FEATURE_SILENT_ROUNDS): it scans the rounds of
     * hosts that answered first, and these in waves of bounded sending time, each probe sent
     * once by default (the agent's `--silent-retries`).
     */
    silent: { type: 'boolean', const: true },
    cycle: { type: 'integer', minimum: 0 },
    reason: { type: 'string', enum: ['cycle', 'manual', 'expired', 'followup'] },
    /** Milliseconds since the Unix epoch. */
    issuedAt: timestamp,
    deadline: timestamp,
    scan: scanOptionsSchema,
  },
} as const;
export type WorkItem = Wire<FromSchema<typeof workItemSchema>>;

export const workResponseSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['work'],
  properties: {
    /** null when there is nothing to do right now; with `max` > 1, the first of `items`. */
    // nullable instead of anyOf: fast-json-stringify serialises anyOf by validating each branch.
    work: { ...workItemSchema, nullable: true },
    /** With `max` > 1 only: every item handed out (0 to `max`, distinct addresses of the cycle). */
    items: { type: 'array', maxItems: MAX_WORK_BATCH, items: workItemSchema },
    /** When nothing was handed out: how long to wait before asking again. */
    retryAfterMs: { type: 'integer', minimum: 0 },
    /** With `max` > 1: fewer than `max` items because the answer reached MAX_WORK_BATCH_PORTS; ask again at once. */
    more: { type: 'boolean' },
  },
} as const;
export type WorkResponse = Wire<FromSchema<typeof workResponseSchema>>;

const portStates = ['open', 'closed', 'filtered', 'open|filtered', 'closed|filtered', 'unfiltered'] as const;
export type PortStateText = (typeof portStates)[number];

const scriptOutputSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'output'],
  properties: { id: shortText(64), output: shortText(65536), fields: {} },
} as const;
export type ScriptOutput = Wire<FromSchema<typeof scriptOutputSchema>>;

/** One port as nmap reported it (-sV detail when version detection ran). */
export const portResultSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['port', 'state'],
  properties: {
    port,
    protocol: { type: 'string', enum: ['tcp'] },
    state: { type: 'string', enum: portStates },
    service: shortText(128),
    product: shortText(256),
    version: shortText(256),
    extrainfo: shortText(512),
    cpes: { type: 'array', maxItems: 32, items: shortText(256) },
    scripts: { type: 'array', maxItems: 64, items: scriptOutputSchema },
    /**
     * Open, and nmap's service detection got no answer on it within the -sV time-out (or, listed
     * in the work item's `skipDetection`, was not run: it got none at the last visit). Sent only
     * in answer to an item that carried `skipDetection` (WORK_FEATURE_SKIP_SILENT).
     */
    silent: { type: 'boolean', const: true },
  },
} as const;

/**
 * Notes the agent's nmap step keeps on a port, not part of the wire schema: the agent removes them
 * before submitting (agent/scan-batch.ts), and the server refuses them (additionalProperties).
 */
export interface AgentPortNotes {
  /** nmap's `tunnel="ssl"` (-sV found TLS in front of the service): the screenshot step picks https. */
  readonly tunnel?: 'ssl';
  /**
   * nmap could not name the service, but its fingerprint shows an HTTP answer to an HTTP probe
   * (a web server without a Server header: Node, Go, ...).
   */
  readonly answersHttp?: true;
}

/** A port of a result: the wire schema's fields, plus the agent's own notes while it scans. */
export type PortResult = Wire<FromSchema<typeof portResultSchema>> & AgentPortNotes;

/** A rendered web service (agent `--screenshots`): one open HTTP(S) port of the result. */
export const screenshotSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['port', 'scheme', 'mime', 'data', 'width', 'height'],
  properties: {
    /** An open port of the same result. */
    port,
    scheme: { type: 'string', enum: ['http', 'https'] },
    mime: { type: 'string', enum: ['image/png', 'image/jpeg'] },
    /** The image, base64 (at most MAX_SCREENSHOT_BYTES decoded). */
    data: { type: 'string', minLength: 16, maxLength: Math.ceil(MAX_SCREENSHOT_BYTES / 3) * 4, pattern: '^[A-Za-z0-9+/]+={0,2}$' },
    /** Pixel size, as the image's own header says. */
    width: { type: 'integer', minimum: 1, maximum: 16384 },
    height: { type: 'integer', minimum: 1, maximum: 16384 },
    /** The page's title. */
    title: shortText(256),
  },
} as const;
export type Screenshot = Wire<FromSchema<typeof screenshotSchema>>;

const preflights = ['masscan', 'connect', 'none'] as const;
/** The preflight that ran (what a result reports). */
export type Preflight = (typeof preflights)[number];

/**
 * The result of one work item. Ports not listed were probed and not open (closed or filtered),
 * except those in `unknownPorts`, whose state the agent could not observe.
 */
export const resultSubmissionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['leaseId', 'ip', 'status', 'startedAt', 'finishedAt', 'preflight', 'ports'],
  properties: {
    leaseId: shortText(64),
    ip: shortText(64),
    /** `down`: the host did not answer at all (no port results are expected). */
    status: { type: 'string', enum: ['up', 'down'] },
    startedAt: timestamp,
    finishedAt: timestamp,
    preflight: { type: 'string', enum: preflights },
    ports: { type: 'array', maxItems: 65535, items: portResultSchema },
    /**
     * Ports of the work item whose state is unknown (the preflight failed or was cut short, or
     * nmap timed out where it was the port scan), as an nmap-style spec ("1-1000,8080"). Absent:
     * every port not listed in `ports` was observed not open.
     */
    unknownPorts: { type: 'string', maxLength: 400_000, pattern: '^[0-9,-]*$' },
    /**
     * Why the result is partial (host time-out, nmap failure, preflight loss): open ports are still
     * open, but service detail may be missing. Absent when everything finished.
     */
    incomplete: shortText(500),
    /** Phase durations in milliseconds: `preflight`, `nmap`, `total`, ... */
    timings: { type: 'object', maxProperties: 32, additionalProperties: { type: 'number', minimum: 0 } },
    /** Host-level extras: hostname, os guess. */
    host: { type: 'object', maxProperties: 32 },
    agentVersion: shortText(64),
    /** Rendered web services (agent `--screenshots`); the coordinator stores the images apart from the scan. */
    screenshots: { type: 'array', maxItems: MAX_SCREENSHOTS_PER_RESULT, items: screenshotSchema },
  },
} as const;
/** A result; its ports may carry the agent's notes until the agent submits it. */
export type ResultSubmission = Omit<Wire<FromSchema<typeof resultSubmissionSchema>>, 'ports'> & { readonly ports: readonly PortResult[] };

export const submitResponseSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['scanId', 'accepted', 'duplicate', 'followUp', 'events'],
  properties: {
    scanId: { type: 'string' },
    /** False when this lease's result was already stored (a duplicate submission). */
    accepted: { type: 'boolean' },
    duplicate: { type: 'boolean' },
    /** The strategy asked for a follow-up round: a new work item for this host is queued. */
    followUp: { type: 'boolean' },
    /** New/closed/changed service events this result produced. */
    events: { type: 'integer', minimum: 0 },
  },
} as const;
export type SubmitResponse = Wire<FromSchema<typeof submitResponseSchema>>;

/**
 * `POST /api/v1/agent/results/batch`: several results in one request. The schema is the envelope
 * only: each result is checked against `resultSubmissionSchema` on its own
 * (src/coordinator/result-batch.ts), so one malformed result is answered alone and does not fail
 * the others.
 */
export const resultBatchSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['results'],
  properties: { results: { type: 'array', minItems: 1, maxItems: MAX_RESULT_BATCH, items: {} } },
} as const;

/**
 * The answer for one result of a batch, in the request's order. `accepted` and `duplicate` carry
 * what the single route answers; `rejected` (a 4xx of the single route: retrying will not help)
 * and `failed` (a 5xx: the result may be sent again) carry the error the single route would send.
 */
const resultBatchItemSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['outcome'],
  properties: {
    outcome: { type: 'string', enum: ['accepted', 'duplicate', 'rejected', 'failed'] },
    /** The item's lease id, when it had a readable one. */
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
} as const;
export type ResultBatchItem = Wire<FromSchema<typeof resultBatchItemSchema>>;

export const resultBatchResponseSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['results'],
  properties: { results: { type: 'array', items: resultBatchItemSchema } },
} as const;
export type ResultBatchResponse = Wire<FromSchema<typeof resultBatchResponseSchema>>;

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
