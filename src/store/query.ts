import { canonicalTarget, PortbanditError } from '../core/index.js';
import { TERM_FIELDS, tokenizeText, type QueryNode, type TermField, type TimeNode } from './query-ast.js';
import { EVENT_KINDS, type EventKind } from './types.js';

/**
 * The search language: parser (text -> QueryNode) and printer (QueryNode -> text), with
 * `printQuery(parseQuery(s))` a canonical form and `parseQuery(printQuery(ast))` equal to `ast`.
 *
 *   query   := or
 *   or      := and ( "OR" and )*
 *   and     := unary ( "AND"? unary )*          (juxtaposition is AND)
 *   unary   := ( "-" | "NOT" ) unary | primary
 *   primary := "(" or ")" | FIELD ":" value | value      (a bare value is free text)
 *   value   := bareword | '"' chars with \" and \\ escapes '"'
 *
 * Fields: port (a number, or * for any open port), service, product, version, cpe, script, tag, agent, group, name, ip, ctime, screenshot (true|false).
 * ctime values: DATE, >DATE, >=DATE, <DATE, <=DATE, DATE..DATE (half-open); DATE is
 * YYYY-MM-DD (UTC midnight) or an ISO instant such as 2026-11-01T12:30:00Z. A bare DATE means
 * that whole UTC day.
 *
 * Event queries (`parseEventQuery`, for the events stream and alert rules) use the same syntax
 * over an event's fields: kind, port, service, product, version, tag, ip, ctime (the event's
 * time) and free text (words of its service details).
 */

const MAX_QUERY_LENGTH = 4096;
const MAX_DEPTH = 64;
const DAY_MS = 86_400_000;
const KEYWORDS = new Set(['AND', 'OR', 'NOT']);

/** Which fields a query may name: scans (search) or events (events stream, alert rules). */
interface Dialect {
  readonly fields: ReadonlySet<string>;
  /** Appended to an unknown-field error, naming the other dialect's fields. */
  readonly hint: string;
}

const SCAN_DIALECT: Dialect = {
  fields: new Set<string>([...TERM_FIELDS, 'port', 'ip', 'ctime', 'screenshot']),
  hint: " (kind: filters events: `portbandit events`, /api/v1/events; quote free text that contains ':')",
};
const EVENT_DIALECT: Dialect = {
  fields: new Set<string>(['kind', 'port', 'service', 'product', 'version', 'tag', 'ip', 'ctime']),
  hint: " for events (quote free text that contains ':')",
};
const EVENT_KIND_SET = new Set<string>(EVENT_KINDS);

type Token =
  | { kind: 'lparen' | 'rparen' | 'minus' | 'and' | 'or' | 'not'; pos: number }
  | { kind: 'value'; pos: number; field: string | undefined; value: string; quoted: boolean; valuePos: number };

/** Parse a query string into an AST; undefined for an empty query. Errors name the column. */
export function parseQuery(text: string): QueryNode | undefined {
  return parseWith(text, SCAN_DIALECT);
}

/**
 * Parse an event query (`kind:service-new port:3389 tag:dmz`): the search syntax over the
 * fields of an event (see `matchEvent`); undefined for an empty query.
 */
export function parseEventQuery(text: string): QueryNode | undefined {
  return parseWith(text, EVENT_DIALECT);
}

function parseWith(text: string, dialect: Dialect): QueryNode | undefined {
  if (text.length > MAX_QUERY_LENGTH) {
    throw queryError(`the query is ${text.length} characters long; at most ${MAX_QUERY_LENGTH} are allowed`, 1);
  }
  const tokens = tokenize(text, dialect);
  if (tokens.length === 0) return undefined;
  const parser = new Parser(tokens, text.length);
  const node = parser.parseOr(0);
  if (parser.index < tokens.length) {
    const token = tokens[parser.index]!;
    throw queryError(token.kind === 'rparen' ? "unbalanced ')'" : `unexpected ${describe(token)}`, token.pos);
  }
  return node;
}

/** Print an AST in the canonical query syntax (parses back to an equal AST). */
export function printQuery(node: QueryNode | undefined): string {
  return node === undefined ? '' : printNode(node);
}

function printNode(node: QueryNode): string {
  switch (node.type) {
    case 'and':
      return node.children
        .map((child) => (child.type === 'and' || child.type === 'or' ? `(${printNode(child)})` : printNode(child)))
        .join(' ');
    case 'or':
      return node.children.map((child) => (child.type === 'or' ? `(${printNode(child)})` : printNode(child))).join(' OR ');
    case 'not': {
      const inner = printNode(node.child);
      return node.child.type === 'and' || node.child.type === 'or' ? `-(${inner})` : `-${inner}`;
    }
    case 'port':
      return `port:${node.port}`;
    case 'anyPort':
      return 'port:*';
    case 'term':
      return `${node.field}:${printValue(node.value, false)}`;
    case 'ip':
      return `ip:${node.value}`;
    case 'time':
      return `ctime:${node.op}${printDate(node.at)}`;
    case 'timeRange':
      return `ctime:${printDate(node.from)}..${printDate(node.to)}`;
    case 'text':
      return printValue(node.value, true);
    case 'kind':
      return `kind:${node.value}`;
    case 'screenshot':
      return 'screenshot:true';
  }
}

function printValue(value: string, bare: boolean): string {
  const plain =
    value.length > 0 && !/[\s()"\\]/u.test(value) && !(bare && (value.includes(':') || value.startsWith('-') || KEYWORDS.has(value)));
  return plain ? value : `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

function printDate(at: number): string {
  const iso = new Date(at).toISOString();
  return at % DAY_MS === 0 ? iso.slice(0, 10) : iso;
}

function tokenize(text: string, dialect: Dialect): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/u.test(c)) {
      i++;
    } else if (c === '(' || c === ')') {
      tokens.push({ kind: c === '(' ? 'lparen' : 'rparen', pos: i + 1 });
      i++;
    } else if (c === '-' && i + 1 < text.length && !/\s/u.test(text[i + 1]!)) {
      tokens.push({ kind: 'minus', pos: i + 1 });
      i++;
    } else if (c === '"') {
      const [value, end] = readQuoted(text, i);
      tokens.push({ kind: 'value', pos: i + 1, field: undefined, value, quoted: true, valuePos: i + 1 });
      i = end;
    } else {
      const start = i;
      while (i < text.length && !/[\s()"]/u.test(text[i]!)) i++;
      const word = text.slice(start, i);
      const colon = word.indexOf(':');
      if (colon > 0 && /^[a-z]+$/iu.test(word.slice(0, colon))) {
        const field = word.slice(0, colon).toLowerCase();
        if (!dialect.fields.has(field)) {
          throw queryError(
            `unknown field '${word.slice(0, colon)}'; expected one of ${[...dialect.fields].join(', ')}${dialect.hint}`,
            start + 1,
          );
        }
        let value = word.slice(colon + 1);
        let quoted = false;
        if (value === '' && text[i] === '"') {
          const [quotedValue, end] = readQuoted(text, i);
          value = quotedValue;
          quoted = true;
          i = end;
        }
        tokens.push({ kind: 'value', pos: start + 1, field, value, quoted, valuePos: start + colon + 2 });
      } else if (KEYWORDS.has(word)) {
        tokens.push({ kind: word.toLowerCase() as 'and' | 'or' | 'not', pos: start + 1 });
      } else {
        tokens.push({ kind: 'value', pos: start + 1, field: undefined, value: word, quoted: false, valuePos: start + 1 });
      }
    }
  }
  return tokens;
}

function readQuoted(text: string, start: number): [string, number] {
  let value = '';
  let i = start + 1;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '\\' && i + 1 < text.length) {
      value += text[i + 1];
      i += 2;
    } else if (c === '"') {
      return [value, i + 1];
    } else {
      value += c;
      i++;
    }
  }
  throw queryError('unterminated quoted string (missing closing ")', start + 1);
}

class Parser {
  index = 0;
  constructor(
    private readonly tokens: readonly Token[],
    private readonly length: number,
  ) {}

  parseOr(depth: number): QueryNode {
    const children = [this.parseAnd(depth)];
    while (this.peek()?.kind === 'or') {
      const orToken = this.tokens[this.index++]!;
      if (!this.startsOperand()) throw queryError("expected a term after 'OR'", this.peek()?.pos ?? this.length + 1, orToken.pos);
      children.push(this.parseAnd(depth));
    }
    return children.length === 1 ? children[0]! : { type: 'or', children };
  }

  private parseAnd(depth: number): QueryNode {
    const children = [this.parseUnary(depth)];
    for (;;) {
      const next = this.peek();
      if (next?.kind === 'and') {
        this.index++;
        if (!this.startsOperand()) throw queryError("expected a term after 'AND'", this.peek()?.pos ?? this.length + 1, next.pos);
        children.push(this.parseUnary(depth));
      } else if (this.startsOperand()) {
        children.push(this.parseUnary(depth));
      } else {
        break;
      }
    }
    return children.length === 1 ? children[0]! : { type: 'and', children };
  }

  private parseUnary(depth: number): QueryNode {
    if (depth > MAX_DEPTH) throw queryError(`the query nests deeper than ${MAX_DEPTH} levels`, this.peek()?.pos ?? 1);
    const token = this.peek();
    if (token === undefined) throw queryError('expected a term, found the end of the query', this.length + 1);
    if (token.kind === 'minus' || token.kind === 'not') {
      this.index++;
      if (!this.startsOperand()) {
        throw queryError(`expected a term after '${token.kind === 'not' ? 'NOT' : '-'}'`, this.peek()?.pos ?? this.length + 1);
      }
      return { type: 'not', child: this.parseUnary(depth + 1) };
    }
    if (token.kind === 'lparen') {
      this.index++;
      if (this.peek()?.kind === 'rparen') throw queryError('empty parentheses', token.pos);
      const inner = this.parseOr(depth + 1);
      if (this.peek()?.kind !== 'rparen') throw queryError("missing ')' for the '(' here", token.pos);
      this.index++;
      return inner;
    }
    if (token.kind === 'value') {
      this.index++;
      return buildLeaf(token);
    }
    throw queryError(`unexpected ${describe(token)}`, token.pos);
  }

  private peek(): Token | undefined {
    return this.tokens[this.index];
  }

  private startsOperand(): boolean {
    const kind = this.peek()?.kind;
    return kind === 'value' || kind === 'lparen' || kind === 'minus' || kind === 'not';
  }
}

function buildLeaf(token: Extract<Token, { kind: 'value' }>): QueryNode {
  const { field, value, valuePos } = token;
  if (field === undefined) {
    if (tokenizeText(value).length === 0) throw queryError(`free text '${value}' has no letters or digits to search for`, token.pos);
    return { type: 'text', value };
  }
  if (value === '') throw queryError(`expected a value after '${field}:'`, valuePos);
  switch (field) {
    case 'port': {
      if (value === '*') return { type: 'anyPort' };
      if (!/^\d{1,5}$/u.test(value) || Number(value) < 1 || Number(value) > 65535) {
        throw queryError(`'${value}' is not a port; expected an integer 1-65535, or * for any open port`, valuePos);
      }
      return { type: 'port', port: Number(value) };
    }
    case 'ip':
      return { type: 'ip', value: normalizeIpValue(value, valuePos) };
    case 'ctime':
      return parseTime(value, valuePos);
    case 'screenshot': {
      const flag = value.toLowerCase();
      if (flag !== 'true' && flag !== 'false') throw queryError(`'${value}': screenshot takes true or false`, valuePos);
      return flag === 'true' ? { type: 'screenshot' } : { type: 'not', child: { type: 'screenshot' } };
    }
    case 'kind': {
      const kind = value.toLowerCase();
      if (!EVENT_KIND_SET.has(kind))
        throw queryError(`'${value}' is not an event kind; expected one of ${EVENT_KINDS.join(', ')}`, valuePos);
      return { type: 'kind', value: kind as EventKind };
    }
    default:
      return { type: 'term', field: field as TermField, value };
  }
}

function normalizeIpValue(value: string, pos: number): string {
  try {
    return canonicalTarget(value);
  } catch (cause) {
    throw new PortbanditError('PB_ERR_QUERY', `'${value}' is not an IP address or CIDR block (e.g. 198.18.0.7 or 198.18.0.0/24)`, {
      where: `query column ${pos}`,
      cause,
    });
  }
}

function parseTime(value: string, pos: number): QueryNode {
  const range = value.indexOf('..');
  if (range >= 0) {
    const from = parseDate(value.slice(0, range), pos);
    const to = parseDate(value.slice(range + 2), pos + range + 2);
    if (to <= from) throw queryError(`the range '${value}' is empty; expected FROM..TO with FROM before TO`, pos);
    return { type: 'timeRange', from, to };
  }
  const match = /^(>=|<=|>|<)/u.exec(value);
  if (match) {
    const op = match[1] as TimeNode['op'];
    return { type: 'time', op, at: parseDate(value.slice(op.length), pos + op.length) };
  }
  if (!/^\d{4}-\d{2}-\d{2}$/u.test(value)) {
    throw queryError(`'${value}': a ctime without an operator must be a day (YYYY-MM-DD); use >, >=, <, <= or FROM..TO`, pos);
  }
  const from = parseDate(value, pos);
  return { type: 'timeRange', from, to: from + DAY_MS };
}

function parseDate(text: string, pos: number): number {
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?Z?)?$/u.exec(text);
  if (match) {
    const [, y, mo, d, h = '0', mi = '0', s = '0', ms = '0'] = match;
    const at = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), Number(ms.padEnd(3, '0')));
    const check = new Date(at);
    if (
      check.getUTCFullYear() === Number(y) &&
      check.getUTCMonth() === Number(mo) - 1 &&
      check.getUTCDate() === Number(d) &&
      Number(h) < 24 &&
      Number(mi) < 60 &&
      Number(s) < 60
    ) {
      return at;
    }
  }
  throw queryError(`'${text}' is not a date; expected YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS[.mmm]]Z (UTC)`, pos);
}

function describe(token: Token): string {
  switch (token.kind) {
    case 'rparen':
      return "')'";
    case 'lparen':
      return "'('";
    case 'or':
      return "'OR'";
    case 'and':
      return "'AND'";
    default:
      return `'${token.kind}'`;
  }
}

function queryError(message: string, column: number, related?: number): PortbanditError {
  const suffix = related === undefined ? '' : ` (operator at column ${related})`;
  return new PortbanditError('PB_ERR_QUERY', message + suffix, { where: `query column ${column}` });
}
