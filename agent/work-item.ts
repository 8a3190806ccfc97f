import { AjvCompiler } from '@fastify/ajv-compiler';
import { PortRanges } from '../src/core/index.js';
import { type WorkItem, workItemSchema } from '../src/protocol/index.js';
import type { AllowList } from './allow-list.js';

/**
 * The agent's check of one work item, before anything runs: the coordinator is not trusted (a
 * compromised or misconfigured server must not aim the agent elsewhere or inject scanner
 * options). An item passes only if it matches the wire schema the server itself validates
 * against (src/protocol/protocol.ts, compiled by the same ajv the server uses but without
 * type coercion or defaults: what arrives is what is checked), its numbers are in range, and its
 * address is canonical text inside --allow.
 */

interface Validator {
  (data: unknown): boolean;
  errors?: Array<{ instancePath: string; message?: string }> | null;
}

// The same compiler fastify uses, but strict: no coercion ("10" stays a string), no defaults,
// nothing removed. Compiled once, on first use.
let validate: Validator | undefined;
function validator(): Validator {
  if (!validate) {
    const build = AjvCompiler()(
      {},
      { customOptions: { coerceTypes: false, useDefaults: false, removeAdditional: false, allErrors: false } },
    ) as unknown as (route: { schema: unknown }) => Validator;
    validate = build({ schema: workItemSchema });
  }
  return validate;
}

/** The ranges of a canonical spec ("1-1024,8080": what the coordinator writes), or undefined for any other text. */
export function canonicalPortRanges(spec: string): PortRanges | undefined {
  try {
    const ranges = PortRanges.parse(spec);
    return ranges.toString() === spec ? ranges : undefined;
  } catch {
    return undefined;
  }
}

/** How many ports an unchecked work item hands out (`ports` or `portRanges`), or undefined when neither is readable. */
export function portCountOf(raw: unknown): number | undefined {
  const i = raw as { ports?: unknown; portRanges?: unknown } | null;
  if (typeof i?.portRanges === 'string') return canonicalPortRanges(i.portRanges)?.size;
  return Array.isArray(i?.ports) ? i.ports.length : undefined;
}

/** Items grouped by their size and round (a label), in first-seen order, with their printed addresses. */
export function groupLeased(items: readonly unknown[]): Array<{ readonly label: string; readonly ips: readonly string[] }> {
  const groups = new Map<string, string[]>();
  for (const raw of items) {
    const i = raw as { ip?: unknown; round?: unknown } | null;
    const label = `${portCountOf(raw) ?? '?'} ports${typeof i?.round === 'number' && i.round > 0 ? `, round ${i.round}` : ''}`;
    let ips = groups.get(label);
    if (ips === undefined) groups.set(label, (ips = []));
    ips.push(JSON.stringify(i?.ip)?.slice(0, 80) ?? 'undefined');
  }
  return [...groups].map(([label, ips]) => ({ label, ips }));
}

/** Addresses a log line names per kind of item before it says how many more there are. */
export const LEASED_NAMED = 8;

/** The first LEASED_NAMED of `names`, then how many more there are. */
export function nameSome(names: readonly string[]): string {
  const named = names.slice(0, LEASED_NAMED).join(', ');
  return names.length > LEASED_NAMED ? `${named} and ${names.length - LEASED_NAMED} more` : named;
}

/**
 * The log's account of one lease: the items grouped by size and round, in the order they came,
 * each group with its first few addresses and a count of the rest (a first lease of a /24 is 256
 * items: one line naming each was 10 KB). Items are unchecked here: nothing of their shape is
 * trusted (an address is printed as JSON, cut at 80 characters).
 */
export function describeLeased(items: readonly unknown[]): string {
  const parts = groupLeased(items).map(({ label, ips }) => `${ips.length} x ${label}: ${nameSome(ips)}`);
  return `leased ${items.length} work item(s): ${parts.join('; ')}`;
}

/** Largest value a Node timer takes (setTimeout clamps anything above to 1 ms). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Refused items are reported with their lease id when it is readable (else none). */
export type WorkItemCheck = { readonly item: WorkItem } | { readonly reason: string; readonly leaseId?: string; readonly ip?: string };

function short(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function at(raw: unknown, path: string): unknown {
  let node = raw;
  for (const key of path.split('/').filter(Boolean)) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/**
 * Validate one work item as received. Returns the item, or the reason it is refused (naming the
 * field and the value). `allow` is the agent's --allow list; the address must be canonical text
 * (the exact string the scanners will receive) and inside it.
 */
export function checkWorkItem(raw: unknown, allow: AllowList): WorkItemCheck {
  const leaseId =
    typeof (raw as { leaseId?: unknown })?.leaseId === 'string' ? ((raw as { leaseId: string }).leaseId as string) : undefined;
  const ip = typeof (raw as { ip?: unknown })?.ip === 'string' ? ((raw as { ip: string }).ip as string) : undefined;
  const refuse = (reason: string): WorkItemCheck => ({
    reason,
    ...(leaseId !== undefined && /^[\x21-\x7e]{1,64}$/.test(leaseId) ? { leaseId } : {}),
    ...(ip !== undefined ? { ip } : {}),
  });
  const check = validator();
  if (!check(raw)) {
    const error = check.errors?.[0];
    const path = error?.instancePath ?? '';
    const field = path === '' ? 'work item' : path.slice(1).replace(/\//g, '.');
    return refuse(`${field} ${error?.message ?? 'is invalid'} (got ${short(at(raw, path))}); the item does not match the wire schema`);
  }
  let item = raw as WorkItem;
  if (item.portRanges !== undefined) {
    // Ports as a range spec (the agent asked for them): only the canonical form is read, and the
    // item is scanned as if it had listed them.
    if (item.ports.length > 0) return refuse('ports and portRanges are both given; an item carries its ports one way or the other');
    const ranges = canonicalPortRanges(item.portRanges);
    if (ranges === undefined)
      return refuse(`portRanges ${short(item.portRanges)} is not a canonical port range spec (ascending, merged, such as "1-1024,8080")`);
    const { portRanges: _spec, ...rest } = item;
    item = { ...rest, ports: ranges.toArray() };
  }
  // The schema bounds each number; these are the relations between them.
  for (let i = 1; i < item.ports.length; i++) {
    if (item.ports[i]! <= item.ports[i - 1]!)
      return refuse(`ports must be ascending and distinct (ports[${i}] = ${item.ports[i]} after ${item.ports[i - 1]})`);
  }
  if (item.ports.length === 0) return refuse('ports is empty');
  if (item.deadline < item.issuedAt) return refuse(`deadline ${item.deadline} is before issuedAt ${item.issuedAt}`);
  for (const seconds of [item.scan.hostTimeoutSeconds, item.scan.scriptTimeoutSeconds]) {
    // nmap gets "<n>s" and the agent arms a timer of about n x hosts: both must stay exact.
    if (seconds * 1000 * 16 > MAX_TIMER_MS) return refuse(`a timeout of ${seconds} s is longer than this agent's timers allow`);
  }
  if (!/^[\x21-\x7e]{1,64}$/.test(item.leaseId)) return refuse(`leaseId ${short(item.leaseId)} is not 1-64 printable ASCII characters`);
  const why = allow.refusal(item.ip);
  if (why !== undefined) return refuse(why);
  return { item };
}
