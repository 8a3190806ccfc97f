/**
 * Errors with stable codes. Every error portbandit raises on purpose is a PortbanditError
 * with a `PB_ERR_*` code; where it can reach an HTTP client it carries a status code.
 * Areas add their codes here so that `docs/errors.md` has one source.
 */

export const errorCodes = {
  PB_ERR_INVALID_ARGUMENT: { status: 400, summary: 'A flag, option or parameter is invalid.' },
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
  PB_ERR_TIMESTAMP: { status: 400, summary: 'A timestamp is out of bounds (before the lease was issued, after the present, or finishing before it started).' },
  PB_ERR_FIELD_LIMIT: { status: 400, summary: 'A free-form JSON field (host, script fields) nests too deep or is too large.' },
  PB_ERR_QUERY: { status: 400, summary: 'A search query is malformed.' },
  PB_ERR_STORE: { status: 500, summary: 'The store failed.' },
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
