import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import { describeRetention } from '../../src/coordinator/admin-actions.js';
import { checkRetention } from '../../src/coordinator/retention.js';
import { noticeOf, numberField, portsField } from '../../src/coordinator/ui/forms.js';
import { groupsFromForm, retentionFromForm } from '../../src/coordinator/ui/policies-page.js';

describe('form field parsers', () => {
  test.prop([
    fc.uniqueArray(fc.integer({ min: 1, max: 65535 }), { maxLength: 40 }),
    fc.array(fc.constantFrom(',', ' ', ', ', '\n', ' ,  '), { minLength: 40, maxLength: 40 }),
  ])('reads any list of ports, whatever separators an operator types, as the sorted set', (ports, seps) => {
    const text = ports.map((p, i) => `${p}${seps[i]}`).join('');
    expect(portsField({ mustHave: text }, 'mustHave')).toEqual([...ports].sort((a, b) => a - b));
  });

  test.prop([fc.string({ maxLength: 12 }).filter((s) => /[^\d\s,-]/.test(s))])(
    'refuses anything that is not a port list, naming the field',
    (junk) => {
      try {
        portsField({ exclude: `22,${junk}` }, 'exclude');
      } catch (error) {
        expect(isPortbanditError(error)).toBe(true);
        expect((error as Error).message).toMatch(/^exclude: /);
        return;
      }
      throw new Error(`accepted ${JSON.stringify(junk)}`);
    },
  );

  test.prop([fc.integer({ min: 0, max: 65535 })])('reads an integer in range as itself', (n) => {
    expect(numberField({ budget: ` ${n} ` }, 'budget', { min: 0, max: 65535, integer: true })).toBe(n);
  });

  it('refuses numbers out of range, fractions where integers are due, and non-numbers; blank is undefined', () => {
    const opts = { min: 0, max: 10, integer: true };
    expect(numberField({ budget: '' }, 'budget', opts)).toBeUndefined();
    for (const bad of ['-1', '11', '1.5', 'ten', 'Infinity', '1e400', '0x'])
      expect(() => numberField({ budget: bad }, 'budget', opts), bad).toThrow(/^budget: expected an integer/);
    expect(() => numberField({ rate: '0' }, 'rate', { min: 0, max: 5, exclusiveMin: true })).toThrow(/above 0/);
  });

  it('shows only the fixed notices (a crafted link cannot put text on a page)', () => {
    expect(noticeOf('scope-added')).toBe('Added.');
    for (const x of ['<b>hi</b>', 'toString', '__proto__', undefined, 42]) expect(noticeOf(x)).toBeUndefined();
  });

  const groupName = fc.stringMatching(/^[A-Za-z0-9_.-]{1,20}$/);
  test.prop([
    fc.uniqueArray(groupName, { maxLength: 10 }),
    fc.array(fc.constantFrom(',', ' ', ', ', '  ,', '\t'), { minLength: 10, maxLength: 10 }),
  ])(
    'reads any list of group names, whatever separators, as the sorted set; blank is null and an absent field undefined',
    (names, seps) => {
      const text = names.map((n, i) => `${n}${seps[i]}`).join('');
      expect(groupsFromForm({ groups: text })).toEqual(names.length === 0 ? null : [...new Set(names)].sort());
      expect(groupsFromForm({})).toBeUndefined();
    },
  );

  const rule = fc.record(
    {
      keepLast: fc.integer({ min: 1, max: 1_000_000 }),
      keepDays: fc.integer({ min: 1, max: 36_500 }),
      dailyAfterDays: fc.integer({ min: 0, max: 36_500 }),
      weeklyAfterDays: fc.integer({ min: 0, max: 36_500 }),
    },
    { requiredKeys: [] },
  );
  test.prop([rule])('reads back any rule the form shows (blank fields unset); numbers under another choice are refused', (r) => {
    const fields = Object.fromEntries(
      ['keepLast', 'keepDays', 'dailyAfterDays', 'weeklyAfterDays'].map((k) => [
        k,
        r[k as keyof typeof r] !== undefined ? ` ${r[k as keyof typeof r]} ` : '',
      ]),
    );
    if (Object.keys(r).length === 0) {
      expect(() => retentionFromForm({ retention: 'rule', ...fields })).toThrow(/^keepLast: state at least one number/);
      expect(retentionFromForm({ retention: 'all', ...fields })).toEqual({});
      expect(retentionFromForm({ retention: 'inherit', ...fields })).toBeNull();
      return;
    }
    const read = retentionFromForm({ retention: 'rule', ...fields });
    expect(read).toEqual(r);
    // The table's words name every number that was set.
    for (const v of Object.values(r)) expect(describeRetention(read!)).toContain(String(v));
    for (const other of ['all', 'inherit'])
      expect(() => retentionFromForm({ retention: other, ...fields })).toThrow(/^retention: choose "keep by these numbers"/);
    // What the form reads, the coordinator either accepts unchanged or refuses naming a field.
    try {
      expect(checkRetention(read!, 'policy(x).retention')).toEqual(r);
    } catch (error) {
      expect((error as Error).message).toMatch(/^policy\(x\)\.retention\.(weeklyAfterDays|dailyAfterDays): /);
    }
  });
});
