import { PortbanditError } from '../core/errors.js';
import { ipKeyRange } from './ip-key.js';
import { tokenizeText } from './query-ast.js';
import type { QueryNode } from './query-ast.js';

// A fixed map, so an AST from an untrusted source cannot put arbitrary text into the SQL.
const TIME_OPS: Readonly<Record<string, string>> = { '>': '>', '>=': '>=', '<': '<', '<=': '<=' };

/** A SQL boolean expression over the `scans` alias `s`, with its bound parameters. */
export interface SqlCondition {
  readonly sql: string;
  readonly params: unknown[];
}

/**
 * Translate a query AST into a WHERE condition. Values are only ever bound parameters; the SQL
 * text is built from fixed fragments, so no query can inject SQL.
 */
export function compileSqliteQuery(node: QueryNode | undefined): SqlCondition {
  if (node === undefined) return { sql: '1', params: [] };
  const params: unknown[] = [];
  const sql = compile(node, params);
  return { sql, params };
}

function compile(node: QueryNode, params: unknown[]): string {
  switch (node.type) {
    case 'and':
    case 'or':
      return `(${node.children.map((child) => compile(child, params)).join(node.type === 'and' ? ' AND ' : ' OR ')})`;
    case 'not':
      return `(NOT ${compile(node.child, params)})`;
    case 'port':
      params.push(String(node.port));
      return `s.row IN (SELECT scan_row FROM scan_terms WHERE field = 'port' AND value = ?)`;
    case 'term':
      params.push(node.field, node.value.toLowerCase());
      return `s.row IN (SELECT scan_row FROM scan_terms WHERE field = ? AND value = ?)`;
    case 'ip': {
      const [lo, hi] = ipKeyRange(node.value, 'query ip');
      params.push(lo, hi);
      return `(s.ip_key BETWEEN ? AND ?)`;
    }
    case 'time': {
      const op = TIME_OPS[node.op];
      if (op === undefined) throw new PortbanditError('PB_ERR_QUERY', `unknown time operator ${JSON.stringify(node.op)}`, { where: 'query' });
      params.push(node.at);
      return `(s.finished_at ${op} ?)`;
    }
    case 'timeRange':
      params.push(node.from, node.to);
      return `(s.finished_at >= ? AND s.finished_at < ?)`;
    case 'text': {
      const words = tokenizeText(node.value);
      if (words.length === 0) return '1';
      for (const word of words) params.push(` ${word} `);
      return `(${words.map(() => 'instr(s.words, ?) > 0').join(' AND ')})`;
    }
  }
}
