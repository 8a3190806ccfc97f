import { ipMatches } from './ip-key.js';
import { timeMatches, tokenizeText, type QueryNode } from './query-ast.js';
import type { NewStoreEvent } from './types.js';

type ServiceFields = { service?: unknown; product?: unknown; version?: unknown; extrainfo?: unknown };

/** The service views an event's detail carries: itself, or `before` and `after` for a change. */
function servicesOf(detail: unknown): ServiceFields[] {
  if (detail === null || typeof detail !== 'object') return [];
  const d = detail as ServiceFields & { before?: unknown; after?: unknown };
  const out: ServiceFields[] = [d];
  for (const side of [d.before, d.after]) if (side !== null && typeof side === 'object') out.push(side as ServiceFields);
  return out;
}

function lower(value: unknown): string | undefined {
  return typeof value === 'string' ? value.toLowerCase() : undefined;
}

/**
 * An event query (`parseEventQuery`) evaluated on one event: `kind`, `port`, `tag`, `ip` and
 * `ctime` (the event's `at`) test the event itself; `service`, `product` and `version` match its
 * detail (either side of a service-changed); free text matches words of those and `extrainfo`.
 * String comparisons are exact and case-insensitive, as in search.
 */
export function matchEvent(event: NewStoreEvent, node: QueryNode | undefined): boolean {
  if (node === undefined) return true;
  const services = servicesOf(event.detail);
  let words: Set<string> | undefined;
  const test = (n: QueryNode): boolean => {
    switch (n.type) {
      case 'and':
        return n.children.every(test);
      case 'or':
        return n.children.some(test);
      case 'not':
        return !test(n.child);
      case 'kind':
        return event.kind === n.value;
      case 'port':
        return event.port === n.port;
      case 'anyPort':
        return event.port !== undefined;
      case 'term': {
        const want = n.value.toLowerCase();
        if (n.field === 'tag') return event.tags.some((t) => t.toLowerCase() === want);
        if (n.field === 'service' || n.field === 'product' || n.field === 'version')
          return services.some((s) => lower(s[n.field as 'service']) === want);
        // cpe, script, agent: not part of an event (parseEventQuery refuses them).
        return false;
      }
      case 'ip':
        return ipMatches(event.ip, n.value);
      case 'time':
      case 'timeRange':
        return timeMatches(event.at, n);
      case 'screenshot':
        // Events carry no screenshots (parseEventQuery refuses the field).
        return false;
      case 'text': {
        words ??= new Set(
          services.flatMap((s) =>
            [s.service, s.product, s.version, s.extrainfo].flatMap((v) => (typeof v === 'string' ? tokenizeText(v) : [])),
          ),
        );
        return tokenizeText(n.value).every((word) => words!.has(word));
      }
    }
  };
  return test(node);
}
