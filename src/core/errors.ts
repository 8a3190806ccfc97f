/**
 * Errors with stable codes. Every error portbandit raises on purpose is a PortbanditError
 * with a `PB_ERR_*` code; where it can reach an HTTP client it carries a status code.
 * Areas add their codes here so that `docs/errors.md` has one source.
 */

export const errorCodes = {
  PB_ERR_SCHEMA: { status: 400, summary: "A request's body, query string or path parameters do not match the route's JSON schema." },
  PB_ERR_FLAG_VALUE: { status: 400, summary: 'A command-line flag has a value it does not accept.' },
  PB_ERR_FLAG_MISSING: { status: 400, summary: 'A required command-line flag (or the environment variable standing for it) is missing.' },
  PB_ERR_FLAG_CONFLICT: {
    status: 400,
    summary: 'Command-line flags that exclude each other were given together, or only some of a set that goes together.',
  },
  PB_ERR_URL: { status: 400, summary: "A URL (the coordinator's, a webhook's) is malformed or not http(s)." },
  PB_ERR_TAG: { status: 400, summary: 'A tag is malformed (letters, digits, "_.:-", 1-64 characters).' },
  PB_ERR_UNKNOWN_TAG: { status: 404, summary: 'No learned group has that tag.' },
  PB_ERR_GROUP: { status: 400, summary: 'An agent group name, or a list of them, is invalid.' },
  PB_ERR_POLICY: { status: 400, summary: 'A policy is invalid (budget or rate, strategy or its parameters, a period on a tag policy).' },
  PB_ERR_SCRIPT_NOT_ALLOWED: { status: 400, summary: "A policy asks for an NSE script that is not in the server's allowlist." },
  PB_ERR_RETENTION_RULE: {
    status: 400,
    summary: 'A retention rule is invalid (a count or age out of range, thinning steps out of order).',
  },
  PB_ERR_ALERT_RULE: { status: 400, summary: "An alert rule's name is malformed." },
  PB_ERR_FORM_FIELD: { status: 400, summary: 'A field of an admin-UI form is empty, too long or out of range.' },
  PB_ERR_LEASE_ADDRESS: { status: 400, summary: "A result names an address other than its lease's." },
  PB_ERR_LEASE_PORT: { status: 400, summary: 'A result reports a port that was not in its work item.' },
  PB_ERR_SCREENSHOT: {
    status: 400,
    summary: 'A submitted screenshot is invalid (not of an open port, too large, not PNG or JPEG as its bytes say).',
  },
  PB_ERR_CURSOR: { status: 400, summary: 'A paging, event or learning-queue cursor is not one this server returned.' },
  PB_ERR_PAGE: { status: 400, summary: 'A page limit or offset is out of range.' },
  PB_ERR_SCAN_DOCUMENT: { status: 400, summary: 'A scan document handed to the store lacks a field or has one of the wrong type.' },
  PB_ERR_SCAN_OPTION: {
    status: 400,
    summary: 'A scanner option (timeout, timing, version intensity, masscan rate or route, targets and ports) is out of bounds.',
  },
  PB_ERR_SIMULATOR_OPTION: { status: 400, summary: 'A simulator or synthetic-scope option is invalid.' },
  PB_ERR_UNKNOWN_NOTEBOOK: { status: 400, summary: 'No notebook is registered under that name.' },
  PB_ERR_PORT_SPEC: { status: 400, summary: 'A port or port-range specification is invalid.' },
  PB_ERR_RECORDING: { status: 400, summary: 'A scope recording is malformed.' },
  PB_ERR_SERVICES_FILE: { status: 400, summary: 'A Natlas services file is malformed.' },
  PB_ERR_NMAP_SERVICES: { status: 500, summary: "nmap's nmap-services table was not found or is malformed." },
  PB_ERR_UNKNOWN_STRATEGY: { status: 400, summary: 'No strategy is registered under that name.' },
  PB_ERR_STRATEGY_OPTION: { status: 400, summary: 'A strategy option is invalid.' },
  PB_ERR_STRATEGY_STATE: { status: 400, summary: 'A saved strategy state does not fit the strategy.' },
  PB_ERR_UNKNOWN_PROFILE: { status: 400, summary: 'No synthetic scope profile is registered under that name.' },
  PB_ERR_IO: { status: 500, summary: 'A file could not be read or written.' },
  PB_ERR_CONFIG: { status: 500, summary: 'The configuration is invalid.' },
  PB_ERR_ADDRESS: { status: 400, summary: 'An IP address, CIDR or range is invalid.' },
  PB_ERR_UNSAFE_TARGET: { status: 403, summary: 'A target lies outside the allowed ranges.' },
  PB_ERR_EXPERIMENT: { status: 400, summary: 'An experiment specification is invalid.' },
  PB_ERR_SCANNER: { status: 500, summary: 'A scanner (nmap, masscan) failed or produced unreadable output.' },
  PB_ERR_NOT_FOUND: { status: 404, summary: 'The requested object does not exist.' },
  PB_ERR_UNAUTHORIZED: { status: 401, summary: 'A valid token is required.' },
  PB_ERR_FORBIDDEN: { status: 403, summary: 'The token does not allow this.' },
  PB_ERR_CONFLICT: { status: 409, summary: 'The request conflicts with the current state.' },
  PB_ERR_LEASE_EXPIRED: { status: 409, summary: "A result arrived after its lease's deadline (the target went back to the queue)." },
  PB_ERR_TIMESTAMP: {
    status: 400,
    summary: 'A timestamp is out of bounds (before the lease was issued, after the present, or finishing before it started).',
  },
  PB_ERR_FIELD_LIMIT: { status: 400, summary: 'A free-form JSON field (host, script fields) nests too deep or is too large.' },
  PB_ERR_QUERY: { status: 400, summary: 'A search query is malformed.' },
  PB_ERR_STORE: { status: 500, summary: 'The store failed.' },
  PB_ERR_STORE_BUSY: {
    status: 503,
    summary:
      "The store is overloaded: no database connection came free in time, or the database stayed locked past its busy timeout. Nothing of the request was stored; retry after the Retry-After header's seconds.",
  },
  PB_ERR_DOCUMENT_VALUE: { status: 400, summary: 'A document given to the store has no JSON form (undefined, a function or a symbol).' },
  PB_ERR_COORDINATOR_REJECTED: {
    status: 400,
    summary:
      "The coordinator refused an agent's request (4xx) without a portbandit error code in its answer; the message names the HTTP status.",
  },
  PB_ERR_RATE_LIMITED: { status: 429, summary: 'Too many requests without a valid token from one address.' },
  PB_ERR_INTERNAL: { status: 500, summary: 'An unexpected server error (details in the server log).' },
  PB_ERR_LAB: { status: 500, summary: 'The network-namespace lab could not be set up or torn down.' },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof errorCodes;

export interface PortbanditErrorOptions {
  cause?: unknown;
  /** Where the bad input is: `file:line`, a flag name, a JSON pointer. */
  where?: string;
}

export class PortbanditError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  readonly where: string | undefined;

  constructor(code: ErrorCode, message: string, options: PortbanditErrorOptions = {}) {
    super(options.where ? `${options.where}: ${message}` : message, { cause: options.cause });
    this.name = 'PortbanditError';
    this.code = code;
    this.statusCode = errorCodes[code].status;
    this.where = options.where;
  }
}

/** Narrow an unknown thrown value to a PortbanditError with the given code (or any code). */
export function isPortbanditError(error: unknown, code?: ErrorCode): error is PortbanditError {
  return error instanceof PortbanditError && (code === undefined || error.code === code);
}
