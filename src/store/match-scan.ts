import { ipMatches } from './ip-key.js';
import { kindOnScans, timeMatches, tokenizeText, type QueryNode } from './query-ast.js';
import { indexScan } from './scan-index.js';
import type { ScanDocument } from './types.js';

/**
 * The query language's semantics evaluated in memory on one scan: the reference both stores are
 * tested against, and usable by the coordinator (e.g. alert rules over an ingested scan).
 */
export function matchScan(scan: ScanDocument, node: QueryNode | undefined): boolean {
  if (node === undefined) return true;
  const fields = indexScan(scan);
  const words = new Set(fields.words);
  const test = (n: QueryNode): boolean => {
    switch (n.type) {
      case 'and':
        return n.children.every(test);
      case 'or':
        return n.children.some(test);
      case 'not':
        return !test(n.child);
      case 'port':
        return fields.ports.includes(n.port);
      case 'anyPort':
        return fields.ports.length > 0;
      case 'term':
        return fields.terms[n.field].includes(n.value.toLowerCase());
      case 'ip':
        return ipMatches(scan.ip, n.value);
      case 'time':
      case 'timeRange':
        return timeMatches(scan.finishedAt, n);
      case 'text':
        return tokenizeText(n.value).every((word) => words.has(word));
      case 'kind':
        throw kindOnScans();
      case 'screenshot':
        return fields.screenshot;
    }
  };
  return test(node);
}
