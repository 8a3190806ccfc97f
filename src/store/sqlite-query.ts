import { PortbanditError } from '../core/index.js';
import { ipKeyRange } from './ip-key.js';
import { kindOnScans, TERM_FIELDS, tokenizeText, type QueryNode } from './query-ast.js';

const TERM_FIELD_SET = new Set<string>(TERM_FIELDS);

// A fixed map, so an AST from an untrusted source cannot put arbitrary text into the SQL.
const TIME_OPS: Readonly<Record<string, string>> = { '>': '>', '>=': '>=', '<': '<', '<=': '<=' };

/** A SQL boolean expression with its bound parameters. */
export interface SqlCondition {
  readonly sql: string;
  readonly params: unknown[];
}

/** Where the columns a condition needs live in the FROM clause it is used with. */
export interface SqlColumns {
  /** The scans.row of the scan (joins scan_terms). */
  readonly row: string;
  readonly ipKey: string;
  readonly finishedAt: string;
  /** Only needed for free text; the caller joins `scans` when `needsWords` says so. */
  readonly words: string;
  /** A condition with two parameters (field, value): the row has that search term. */
  readonly hasTerm: string;
  /**
   * The negation as a correlated primary-key probe: `NOT IN (list)` would materialise the whole
   * (often huge) list of hosts that have, say, product nginx on every query.
   */
  readonly lacksTerm: string;
  /** A condition with one parameter (field): the row has some search term of that field (`port:*`). */
  readonly hasField: string;
  /** Its negation, as a correlated probe like `lacksTerm`. */
  readonly lacksField: string;
  /** An always-true condition (`1` in SQLite; PostgreSQL needs `TRUE`). */
  readonly truth?: string;
  /** Substring test of two operands: `instr(a, b) > 0` in SQLite. */
  readonly contains?: (haystack: string) => string;
}

/** History view: the scans table itself. */
export const HISTORY_COLUMNS: SqlColumns = {
  row: 's.row',
  ipKey: 's.ip_key',
  finishedAt: 's.finished_at',
  words: 's.words',
  hasTerm: 's.row IN (SELECT scan_row FROM scan_terms WHERE field = ? AND value = ?)',
  lacksTerm: 'NOT EXISTS (SELECT 1 FROM scan_terms WHERE field = ? AND value = ? AND scan_row = s.row)',
  hasField: 's.row IN (SELECT scan_row FROM scan_terms WHERE field = ?)',
  lacksField: 'NOT EXISTS (SELECT 1 FROM scan_terms WHERE field = ? AND scan_row = s.row)',
};
/** Latest view: the latest table carries row, key and time, so only free text needs a join. */
export const LATEST_COLUMNS: SqlColumns = {
  row: 'l.scan_row',
  ipKey: 'l.ip_key',
  finishedAt: 'l.finished_at',
  words: 's.words',
  hasTerm: 'l.ip_key IN (SELECT ip_key FROM latest_terms WHERE field = ? AND value = ?)',
  lacksTerm: 'NOT EXISTS (SELECT 1 FROM latest_terms WHERE field = ? AND value = ? AND ip_key = l.ip_key)',
  hasField: 'l.ip_key IN (SELECT ip_key FROM latest_terms WHERE field = ?)',
  lacksField: 'NOT EXISTS (SELECT 1 FROM latest_terms WHERE field = ? AND ip_key = l.ip_key)',
};

/** True when the query has free text (the latest view must then join `scans` for its words). */
export function needsWords(node: QueryNode | undefined): boolean {
  if (node === undefined) return false;
  switch (node.type) {
    case 'and':
    case 'or':
      return node.children.some(needsWords);
    case 'not':
      return needsWords(node.child);
    default:
      return node.type === 'text';
  }
}

/**
 * Translate a query AST into a WHERE condition. Values are only ever bound parameters; the SQL
 * text is built from fixed fragments, so no query can inject SQL.
 */
export function compileSqliteQuery(node: QueryNode | undefined, columns: SqlColumns = HISTORY_COLUMNS): SqlCondition {
  if (node === undefined) return { sql: columns.truth ?? '1', params: [] };
  const params: unknown[] = [];
  const sql = compile(node, params, columns);
  return { sql, params };
}

function compile(node: QueryNode, params: unknown[], c: SqlColumns): string {
  switch (node.type) {
    case 'and':
    case 'or':
      return `(${node.children.map((child) => compile(child, params, c)).join(node.type === 'and' ? ' AND ' : ' OR ')})`;
    case 'not':
      if (node.child.type === 'port' || node.child.type === 'term' || node.child.type === 'screenshot') {
        compile(node.child, params, c);
        return c.lacksTerm;
      }
      if (node.child.type === 'anyPort') {
        params.push('port');
        return c.lacksField;
      }
      return `(NOT ${compile(node.child, params, c)})`;
    case 'port':
      params.push('port', String(node.port));
      return c.hasTerm;
    case 'anyPort':
      // The port facet rows are the scan's (or host's) open ports.
      params.push('port');
      return c.hasField;
    case 'term':
      if (!TERM_FIELD_SET.has(node.field))
        throw new PortbanditError('PB_ERR_QUERY', `unknown field ${JSON.stringify(node.field)}`, { where: 'query' });
      params.push(node.field, node.value.toLowerCase());
      return c.hasTerm;
    case 'ip': {
      const [lo, hi] = ipKeyRange(node.value, 'query ip');
      params.push(lo, hi);
      return `(${c.ipKey} BETWEEN ? AND ?)`;
    }
    case 'time': {
      const op = TIME_OPS[node.op];
      if (op === undefined)
        throw new PortbanditError('PB_ERR_QUERY', `unknown time operator ${JSON.stringify(node.op)}`, { where: 'query' });
      params.push(node.at);
      return `(${c.finishedAt} ${op} ?)`;
    }
    case 'timeRange':
      params.push(node.from, node.to);
      return `(${c.finishedAt} >= ? AND ${c.finishedAt} < ?)`;
    case 'text': {
      const words = tokenizeText(node.value);
      if (words.length === 0) return c.truth ?? '1';
      for (const word of words) params.push(` ${word} `);
      return `(${words.map(() => (c.contains ? c.contains(c.words) : `instr(${c.words}, ?) > 0`)).join(' AND ')})`;
    }
    case 'kind':
      throw kindOnScans();
    case 'screenshot':
      // A facet row (field 'screenshot', value 'true') written by indexScan for such scans.
      params.push('screenshot', 'true');
      return c.hasTerm;
  }
}
