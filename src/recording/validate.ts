import { formatIp, ipv4Value, tryParseIp, PortbanditError, isPort, PortRanges } from '../core/index.js';
import { RECORDING_FORMAT, RECORDING_VERSION, type Observation, type RecordingHeader } from './types.js';

/**
 * Highest epoch a recording may use. Epochs index a dense array (`epochStart`), so a typo such as
 * 1e9 must be rejected rather than allocate gigabytes.
 */
export const MAX_EPOCH = 1_000_000;

function fail(where: string, message: string): never {
  throw new PortbanditError('PB_ERR_RECORDING', message, { where });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Parse a `probed` value (string or list), turning a port-spec error into a recording error at `where`. */
export function parseProbed(value: unknown, where: string, field = 'probed'): PortRanges {
  if (typeof value !== 'string' && !Array.isArray(value)) {
    fail(
      where,
      `expected "${field}" to be a port-range string such as "1-65535" or a list of ports and "a-b" ranges, got ${describe(value)}`,
    );
  }
  try {
    return PortRanges.parse(value as string | (number | string)[]);
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new PortbanditError('PB_ERR_RECORDING', `invalid "${field}": ${detail}`, { where, cause });
  }
}

/**
 * Validate a parsed header line. Returns the header with only the known fields (unknown fields
 * are allowed and dropped) and its `probed` parsed.
 */
export function validateHeader(value: unknown, where: string): { header: RecordingHeader; probed: PortRanges } {
  if (!isPlainObject(value))
    fail(where, `expected a header object {"format":"${RECORDING_FORMAT}","version":${RECORDING_VERSION},...}, got ${describe(value)}`);
  if (value.format !== RECORDING_FORMAT)
    fail(where, `expected "format": "${RECORDING_FORMAT}" in the header, got ${describe(value.format)}`);
  if (value.version !== RECORDING_VERSION) {
    fail(
      where,
      `expected "version": ${RECORDING_VERSION} in the header (the only version this reader knows), got ${describe(value.version)}`,
    );
  }
  if (typeof value.name !== 'string') fail(where, `expected "name" to be a string in the header, got ${describe(value.name)}`);
  const probed = parseProbed(value.probed, where);
  if (value.description !== undefined && typeof value.description !== 'string') {
    fail(where, `expected "description" to be a string when present, got ${describe(value.description)}`);
  }
  if (value.source !== undefined && !isPlainObject(value.source))
    fail(where, `expected "source" to be an object when present, got ${describe(value.source)}`);
  const header: { -readonly [K in keyof RecordingHeader]: RecordingHeader[K] } = {
    format: RECORDING_FORMAT,
    version: RECORDING_VERSION,
    name: value.name,
    probed: value.probed as RecordingHeader['probed'],
  };
  if (value.description !== undefined) header.description = value.description as string;
  if (value.source !== undefined) header.source = value.source as Record<string, unknown>;
  return { header, probed };
}

/** An observation line after validation: open ports sorted, probed resolved, services as numbers. */
export interface ValidObservation {
  readonly epoch: number;
  readonly ip: string;
  readonly tags: readonly string[];
  /** Ascending, distinct, inside `probedSet`. */
  readonly open: readonly number[];
  /** The line's own `probed` as written, or undefined to use the header's. */
  readonly probedSpec: Observation['probed'] | undefined;
  /** The set the open ports were checked against. */
  readonly probedSet: PortRanges;
  /** Service names by port, or undefined when the line has none. */
  readonly services: ReadonlyMap<number, string> | undefined;
}

/**
 * Resolves a line's `probed` override to a set. The builder passes an interning resolver so a
 * million lines repeating one override parse it once.
 */
export type ProbedResolver = (spec: unknown, where: string) => PortRanges;

/**
 * Validate one parsed observation line (the one function both the streaming reader and
 * `recordingFromObservations` use). `headerProbed` applies when the line has no `probed`.
 * Duplicate (epoch, ip) pairs span lines, so the builder checks those.
 */
export function validateObservation(
  value: unknown,
  where: string,
  headerProbed: PortRanges,
  resolveProbed: ProbedResolver = parseProbed,
): ValidObservation {
  if (!isPlainObject(value))
    fail(where, `expected an observation object {"epoch":..,"ip":..,"tags":[..],"open":[..]}, got ${describe(value)}`);
  const { epoch, ip, tags, open } = value;
  if (typeof epoch !== 'number' || !Number.isInteger(epoch) || epoch < 0 || epoch > MAX_EPOCH) {
    fail(where, `expected "epoch" to be an integer from 0 to ${MAX_EPOCH}, got ${describe(epoch)}`);
  }
  // A strict dotted quad is already canonical text (the fast path: a million lines per load).
  const address = typeof ip === 'string' && ipv4Value(ip) >= 0 ? null : tryParseIp(ip);
  if (address === undefined)
    fail(where, `expected "ip" to be an IPv4 or IPv6 address (IPv4: four decimal octets without leading zeros), got ${describe(ip)}`);
  if (!Array.isArray(tags)) fail(where, `expected "tags" to be an array of strings, got ${describe(tags)}`);
  for (let i = 0; i < tags.length; i++) {
    const tag: unknown = tags[i];
    if (typeof tag !== 'string' || tag === '') fail(where, `expected "tags" to hold non-empty strings, got ${describe(tag)} at tags[${i}]`);
    for (let j = 0; j < i; j++) if (tags[j] === tag) fail(where, `expected distinct tags, got ${describe(tag)} twice`);
  }
  const probedSpec = value.probed as Observation['probed'] | undefined;
  const probedSet = probedSpec === undefined ? headerProbed : resolveProbed(probedSpec, where);
  if (!Array.isArray(open)) fail(where, `expected "open" to be an array of ports, got ${describe(open)}`);
  let sorted = true;
  for (let i = 0; i < open.length; i++) {
    const port: unknown = open[i];
    if (!isPort(port)) fail(where, `expected "open" to hold integer ports 1-65535, got ${describe(port)} at open[${i}]`);
    if (!probedSet.has(port)) {
      fail(
        where,
        `open port ${port} is outside the line's probed set (${probedSpec === undefined ? 'the header\'s "probed"' : 'its "probed"'}: ${truncate(probedSet.toString())})`,
      );
    }
    if (i > 0 && port <= (open[i - 1] as number)) sorted = false;
  }
  let ports = open as number[];
  if (!sorted) {
    ports = [...ports].sort((a, b) => a - b);
    for (let i = 1; i < ports.length; i++)
      if (ports[i] === ports[i - 1]) fail(where, `expected distinct open ports, got ${ports[i]} twice`);
  }
  let services: Map<number, string> | undefined;
  if (value.services !== undefined) {
    if (!isPlainObject(value.services))
      fail(where, `expected "services" to be an object {"port": "name"}, got ${describe(value.services)}`);
    for (const key of Object.keys(value.services)) {
      const port = /^[1-9]\d{0,4}$/.test(key) ? Number(key) : NaN;
      if (!isPort(port)) fail(where, `expected "services" keys to be ports 1-65535 written in decimal, got ${describe(key)}`);
      const name = value.services[key];
      if (typeof name !== 'string') fail(where, `expected "services"."${key}" to be a service name string, got ${describe(name)}`);
      (services ??= new Map()).set(port, name);
    }
  }
  // IPv6 (and mapped IPv4) is rewritten to its canonical text.
  const canonical = address === null ? (ip as string) : formatIp(address.family, address.value);
  return { epoch, ip: canonical, tags: tags as string[], open: ports, probedSpec, probedSet, services };
}

function truncate(text: string): string {
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}
