import { describe, expect } from 'vitest';
import { fc, test } from '@fast-check/vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import { parseEventQuery, parseQuery, printQuery } from '../../src/store/query.js';
import { TERM_FIELDS, tokenizeText, type QueryNode } from '../../src/store/query-ast.js';

const DAY = 86_400_000;
const MAX_TIME = Date.UTC(9998, 0, 1);

const wordChars = fc.constantFrom(...'abcxyz019-_.:/"\\() é*'.split(''));
const anyString = fc.string({ unit: wordChars, minLength: 1, maxLength: 12 });
const textValue = anyString.filter((s) => tokenizeText(s).length > 0);
const ipv4 = fc.ipV4().map((a) => a.split('.').map(Number).join('.'));
const cidr4 = fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 32 })).map(([address, prefix]) => {
  const n = address.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
  const mask = prefix === 0 ? 0 : Math.floor(n / 2 ** (32 - prefix)) * 2 ** (32 - prefix);
  return `${[24, 16, 8, 0].map((shift) => Math.floor(mask / 2 ** shift) % 256).join('.')}/${prefix}`;
});
const instant = fc.oneof(
  fc.integer({ min: 0, max: MAX_TIME }),
  fc.integer({ min: 0, max: Math.floor(MAX_TIME / DAY) }).map((d) => d * DAY),
);

const leaf: fc.Arbitrary<QueryNode> = fc.oneof(
  fc.integer({ min: 1, max: 65535 }).map((port) => ({ type: 'port' as const, port })),
  fc.record({ type: fc.constant('term' as const), field: fc.constantFrom(...TERM_FIELDS), value: anyString }),
  fc.oneof(ipv4, cidr4, fc.constantFrom('2001:db8::1', '2001:db8::/32', '::1')).map((value) => ({ type: 'ip' as const, value })),
  fc.record({
    type: fc.constant('time' as const),
    op: fc.constantFrom('>' as const, '>=' as const, '<' as const, '<=' as const),
    at: instant,
  }),
  fc.tuple(instant, fc.integer({ min: 1, max: 400 * DAY })).map(([from, span]) => ({ type: 'timeRange' as const, from, to: from + span })),
  textValue.map((value) => ({ type: 'text' as const, value })),
  fc.constant({ type: 'screenshot' as const }),
  fc.constant({ type: 'anyPort' as const }),
);

const { node: queryArb } = fc.letrec<{ node: QueryNode }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('node'), { minLength: 2, maxLength: 3 }).map((children) => ({ type: 'and' as const, children })),
    fc.array(tie('node'), { minLength: 2, maxLength: 3 }).map((children) => ({ type: 'or' as const, children })),
    tie('node').map((child) => ({ type: 'not' as const, child })),
  ),
}));

function errorOf(query: string): { message: string; where: string | undefined } {
  try {
    parseQuery(query);
  } catch (error) {
    if (isPortbanditError(error, 'PB_ERR_QUERY')) return { message: error.message, where: error.where };
    throw error;
  }
  throw new Error(`expected '${query}' to be rejected`);
}

describe('query language', () => {
  test.prop([queryArb], { numRuns: 400 })('printing an AST and parsing it back gives the same AST', (ast) => {
    expect(parseQuery(printQuery(ast))).toEqual(ast);
  });

  test.prop([queryArb])('the printed form is a fixed point of parse-then-print', (ast) => {
    const printed = printQuery(ast);
    expect(printQuery(parseQuery(printed))).toBe(printed);
  });

  test('field terms, implicit AND, OR precedence and negation parse as documented', () => {
    expect(parseQuery('port:22 service:ssh OR -tag:dmz')).toEqual({
      type: 'or',
      children: [
        {
          type: 'and',
          children: [
            { type: 'port', port: 22 },
            { type: 'term', field: 'service', value: 'ssh' },
          ],
        },
        { type: 'not', child: { type: 'term', field: 'tag', value: 'dmz' } },
      ],
    });
    expect(parseQuery('NOT (port:23 OR port:21) AND product:"Apache httpd"')).toEqual({
      type: 'and',
      children: [
        {
          type: 'not',
          child: {
            type: 'or',
            children: [
              { type: 'port', port: 23 },
              { type: 'port', port: 21 },
            ],
          },
        },
        { type: 'term', field: 'product', value: 'Apache httpd' },
      ],
    });
  });

  test('ip values are normalised to the network address of a CIDR block', () => {
    expect(parseQuery('ip:198.18.0.77/24')).toEqual({ type: 'ip', value: '198.18.0.0/24' });
    expect(parseQuery('ip:198.18.3.4')).toEqual({ type: 'ip', value: '198.18.3.4' });
    expect(parseQuery('ip:2001:DB8:0::1')).toEqual({ type: 'ip', value: '2001:db8::1' });
  });

  test('ctime accepts days, instants, comparisons and half-open ranges', () => {
    const nov1 = Date.UTC(2026, 10, 1);
    expect(parseQuery('ctime:>2026-11-01')).toEqual({ type: 'time', op: '>', at: nov1 });
    expect(parseQuery('ctime:<=2026-11-01T12:30:00Z')).toEqual({ type: 'time', op: '<=', at: nov1 + 12.5 * 3_600_000 });
    expect(parseQuery('ctime:2026-11-01')).toEqual({ type: 'timeRange', from: nov1, to: nov1 + DAY });
    expect(parseQuery('ctime:2026-11-01..2026-11-08')).toEqual({ type: 'timeRange', from: nov1, to: nov1 + 7 * DAY });
  });

  test('free text words become text nodes and an empty query is undefined', () => {
    expect(parseQuery('  ')).toBeUndefined();
    expect(parseQuery('OpenSSH "8.9p1 Ubuntu"')).toEqual({
      type: 'and',
      children: [
        { type: 'text', value: 'OpenSSH' },
        { type: 'text', value: '8.9p1 Ubuntu' },
      ],
    });
  });

  test('port:* is any open port; -port:* its negation; a port that is neither a number nor * is an error naming both', () => {
    expect(parseQuery('port:*')).toEqual({ type: 'anyPort' });
    expect(parseQuery('-port:* tag:dmz')).toEqual({
      type: 'and',
      children: [
        { type: 'not', child: { type: 'anyPort' } },
        { type: 'term', field: 'tag', value: 'dmz' },
      ],
    });
    expect(printQuery(parseQuery('NOT port:*'))).toBe('-port:*');
    expect(errorOf('port:**')).toMatchObject({ message: expect.stringContaining('expected an integer 1-65535, or * for any open port') });
    expect(parseEventQuery('port:* kind:service-new')).toEqual({
      type: 'and',
      children: [{ type: 'anyPort' }, { type: 'kind', value: 'service-new' }],
    });
  });

  test('screenshot:true is a node of its own, screenshot:false its negation, and anything else an error', () => {
    expect(parseQuery('screenshot:true')).toEqual({ type: 'screenshot' });
    expect(parseQuery('screenshot:TRUE port:80')).toEqual({ type: 'and', children: [{ type: 'screenshot' }, { type: 'port', port: 80 }] });
    expect(parseQuery('screenshot:false')).toEqual({ type: 'not', child: { type: 'screenshot' } });
    expect(printQuery(parseQuery('screenshot:false'))).toBe('-screenshot:true');
    expect(errorOf('port:80 screenshot:yes')).toMatchObject({
      where: 'query column 20',
      message: expect.stringContaining('screenshot takes true or false'),
    });
  });

  test('errors name the column of the problem and what was expected', () => {
    expect(errorOf('port:22 port:70000')).toEqual({
      where: 'query column 14',
      message: expect.stringContaining('expected an integer 1-65535'),
    });
    expect(errorOf('service:ssh colour:red')).toMatchObject({
      where: 'query column 13',
      message: expect.stringContaining("unknown field 'colour'"),
    });
    expect(errorOf('(port:22 OR port:80')).toMatchObject({ where: 'query column 1', message: expect.stringContaining("missing ')'") });
    expect(errorOf('port:22)')).toMatchObject({ where: 'query column 8', message: expect.stringContaining("unbalanced ')'") });
    expect(errorOf('port:22 OR')).toMatchObject({
      where: 'query column 11',
      message: expect.stringContaining("expected a term after 'OR'"),
    });
    expect(errorOf('ip:198.18.0.300')).toMatchObject({ where: 'query column 4', message: expect.stringContaining('not an IP address') });
    expect(errorOf('ctime:>2026-13-01')).toMatchObject({ where: 'query column 8', message: expect.stringContaining('not a date') });
    expect(errorOf('ctime:2026-11-05..2026-11-01')).toMatchObject({
      where: 'query column 7',
      message: expect.stringContaining('is empty'),
    });
    expect(errorOf('product:"nginx')).toMatchObject({ where: 'query column 9', message: expect.stringContaining('unterminated') });
    expect(errorOf('tag:')).toMatchObject({ where: 'query column 5', message: expect.stringContaining("expected a value after 'tag:'") });
  });

  test('overlong and overly deep queries are rejected instead of exhausting the stack', () => {
    expect(errorOf('x '.repeat(3000)).message).toContain('at most 4096');
    expect(errorOf('('.repeat(100) + 'x' + ')'.repeat(100)).message).toContain('deeper than 64');
  });
});
