import { PortbanditError } from '../core/index.js';
import type { EventKind } from './event-kind.js';

/**
 * The search language's syntax tree, shared by the parser/printer (query.ts) and both stores,
 * which translate it to SQL (bound parameters) or Elasticsearch query DSL. Store-neutral on
 * purpose: nothing here knows about a backend.
 *
 * Matching semantics (identical in every store; the conformance suite checks them):
 * - `port`, `service`, `product`, `version`, `cpe`, `script` match a scan when ANY of its ports
 *   with state `open` matches (they are independent: `port:22 service:http` is true for a host
 *   with ssh on 22 and http on 80). String comparisons are exact and case-insensitive.
 *   `port:*` matches a scan with at least one open port.
 * - `tag`, `agent`, `group` and `name` match the scan's tags / agent id / vantage group / scope DNS names exactly (case-insensitive).
 * - `ip` matches an address exactly or a CIDR block (IPv4 or IPv6).
 * - `ctime` compares the scan's `finishedAt` (ms since the Unix epoch).
 * - `screenshot:true` matches a scan with at least one web screenshot (its `screenshots` metadata).
 * - `kind` (event queries only, `parseEventQuery`) matches an event's kind exactly; scans have
 *   no kind, so the stores refuse it.
 * - `text` matches when every word of the value occurs as a word in the scan's banners
 *   (service, product, version, extrainfo, cpes, script ids and outputs of open ports); words are
 *   runs of letters and digits, compared case-insensitively (see `tokenizeText`).
 */
export type QueryNode =
  AndNode | OrNode | NotNode | PortNode | AnyPortNode | TermNode | IpNode | TimeNode | TimeRangeNode | TextNode | KindNode | ScreenshotNode;

/** All children must match. At least two children. */
export interface AndNode {
  readonly type: 'and';
  readonly children: readonly QueryNode[];
}

/** Any child must match. At least two children. */
export interface OrNode {
  readonly type: 'or';
  readonly children: readonly QueryNode[];
}

export interface NotNode {
  readonly type: 'not';
  readonly child: QueryNode;
}

/** An open port with this number. */
export interface PortNode {
  readonly type: 'port';
  readonly port: number;
}

/**
 * `port:*`: any open port at all (a host that exposes something; `-port:*` the scans with
 * nothing open). For events: an event about a port (service-new, -closed, -changed).
 */
export interface AnyPortNode {
  readonly type: 'anyPort';
}

export type TermField = 'service' | 'product' | 'version' | 'cpe' | 'script' | 'tag' | 'agent' | 'group' | 'name';

/** Exact, case-insensitive match of a string field. */
export interface TermNode {
  readonly type: 'term';
  readonly field: TermField;
  readonly value: string;
}

/** `value` is a canonical address (`198.18.0.7`) or CIDR (`198.18.0.0/24`, host bits zero). */
export interface IpNode {
  readonly type: 'ip';
  readonly value: string;
}

/** `finishedAt <op> at`. */
export interface TimeNode {
  readonly type: 'time';
  readonly op: '>' | '>=' | '<' | '<=';
  readonly at: number;
}

/** `from <= finishedAt < to` (half-open). */
export interface TimeRangeNode {
  readonly type: 'timeRange';
  readonly from: number;
  readonly to: number;
}

/** Free text: every word must occur in the scan's banners. */
export interface TextNode {
  readonly type: 'text';
  readonly value: string;
}

/** An event kind (`service-new`, ...): only in event queries (`parseEventQuery`, `matchEvent`). */
export interface KindNode {
  readonly type: 'kind';
  readonly value: EventKind;
}

/**
 * `screenshot:true`: the scan has at least one web screenshot (ScanDocument.screenshots; the agent's
 * `--screenshots`). `screenshot:false` parses as its negation. Scans only.
 */
export interface ScreenshotNode {
  readonly type: 'screenshot';
}

export const TERM_FIELDS: readonly TermField[] = ['service', 'product', 'version', 'cpe', 'script', 'tag', 'agent', 'group', 'name'];

/** Split text into lower-case words (runs of letters and digits), the unit free-text search matches. */
export function tokenizeText(text: string): string[] {
  return text
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter((word) => word.length > 0);
}

/** The error every scan backend throws for a `kind` node: scans have no kind, events do. */
export function kindOnScans(): PortbanditError {
  return new PortbanditError('PB_ERR_QUERY', 'kind: filters events (portbandit events, /api/v1/events, alert rules), not scans', {
    where: 'query',
  });
}

/** Whether a time `at` (ms since the epoch) satisfies a `ctime:` node: one comparison or a [from, to) range. */
export function timeMatches(at: number, n: TimeNode | TimeRangeNode): boolean {
  if (n.type === 'timeRange') return at >= n.from && at < n.to;
  switch (n.op) {
    case '>':
      return at > n.at;
    case '>=':
      return at >= n.at;
    case '<':
      return at < n.at;
    case '<=':
      return at <= n.at;
  }
  return false;
}
