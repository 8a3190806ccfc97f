import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { isPortbanditError } from '../../src/core/errors.js';
import { noticeOf, numberField, portsField } from '../../src/coordinator/ui/forms.js';

describe('form field parsers', () => {
  test.prop([fc.uniqueArray(fc.integer({ min: 1, max: 65535 }), { maxLength: 40 }), fc.array(fc.constantFrom(',', ' ', ', ', '\n', ' ,  '), { minLength: 40, maxLength: 40 })])(
    'reads any list of ports, whatever separators an operator types, as the sorted set',
    (ports, seps) => {
      const text = ports.map((p, i) => `${p}${seps[i]}`).join('');
      expect(portsField({ mustHave: text }, 'mustHave')).toEqual([...ports].sort((a, b) => a - b));
    },
  );

  test.prop([fc.string({ maxLength: 12 }).filter((s) => /[^\d\s,-]/.test(s))])('refuses anything that is not a port list, naming the field', (junk) => {
    try {
      portsField({ exclude: `22,${junk}` }, 'exclude');
    } catch (error) {
      expect(isPortbanditError(error)).toBe(true);
      expect((error as Error).message).toMatch(/^exclude: /);
      return;
    }
    throw new Error(`accepted ${JSON.stringify(junk)}`);
  });

  test.prop([fc.integer({ min: 0, max: 65535 })])('reads an integer in range as itself', (n) => {
    expect(numberField({ budget: ` ${n} ` }, 'budget', { min: 0, max: 65535, integer: true })).toBe(n);
  });

  it('refuses numbers out of range, fractions where integers are due, and non-numbers; blank is undefined', () => {
    const opts = { min: 0, max: 10, integer: true };
    expect(numberField({ budget: '' }, 'budget', opts)).toBeUndefined();
    for (const bad of ['-1', '11', '1.5', 'ten', 'Infinity', '1e400', '0x']) expect(() => numberField({ budget: bad }, 'budget', opts), bad).toThrow(/^budget: expected an integer/);
    expect(() => numberField({ rate: '0' }, 'rate', { min: 0, max: 5, exclusiveMin: true })).toThrow(/above 0/);
  });

  it('shows only the fixed notices (a crafted link cannot put text on a page)', () => {
    expect(noticeOf('scope-added')).toBe('Added.');
    for (const x of ['<b>hi</b>', 'toString', '__proto__', undefined, 42]) expect(noticeOf(x)).toBeUndefined();
  });
});
