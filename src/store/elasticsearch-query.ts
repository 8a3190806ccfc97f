import { PortbanditError } from '../core/index.js';
import { kindOnScans, tokenizeText, type QueryNode } from './query-ast.js';

/** An Elasticsearch query DSL clause (kept as plain JSON: only bool, term, range, match_all). */
export type EsQuery = Record<string, unknown>;

const RANGE_KEYS: Readonly<Record<string, string>> = { '>': 'gt', '>=': 'gte', '<': 'lt', '<=': 'lte' };

/**
 * Translate a query AST into query DSL over the scan index fields (see the mappings in
 * elasticsearch-store.ts). Deliberately a small subset — bool, term, range, match_all — so the
 * in-memory test double (test/helpers/es-memory.ts) can implement it faithfully.
 */
export function compileEsQuery(node: QueryNode | undefined): EsQuery {
  if (node === undefined) return { match_all: {} };
  switch (node.type) {
    case 'and':
      return { bool: { filter: node.children.map(compileEsQuery) } };
    case 'or':
      return { bool: { should: node.children.map(compileEsQuery), minimum_should_match: 1 } };
    case 'not':
      return { bool: { must_not: [compileEsQuery(node.child)] } };
    case 'port':
      return { term: { port: node.port } };
    case 'anyPort':
      return { exists: { field: 'port' } };
    case 'term':
      return { term: { [node.field]: node.value.toLowerCase() } };
    case 'ip':
      // `term` on an `ip` field accepts an address or a CIDR block.
      return { term: { ip: node.value } };
    case 'time': {
      const key = RANGE_KEYS[node.op];
      if (key === undefined)
        throw new PortbanditError('PB_ERR_QUERY', `unknown time operator ${JSON.stringify(node.op)}`, { where: 'query' });
      return { range: { finishedAt: { [key]: node.at } } };
    }
    case 'timeRange':
      return { range: { finishedAt: { gte: node.from, lt: node.to } } };
    case 'text': {
      const words = tokenizeText(node.value);
      return words.length === 0 ? { match_all: {} } : { bool: { filter: words.map((word) => ({ term: { words: word } })) } };
    }
    case 'kind':
      throw kindOnScans();
    case 'screenshot':
      return { term: { screenshot: 'true' } };
  }
}
