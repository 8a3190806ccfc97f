import { fc, test } from '@fast-check/vitest';
import { expect } from 'vitest';
import { escapeHtml } from '../../src/core/escape-html.js';
import { escapeHtml as uiEscape } from '../../src/coordinator/ui/html.js';
import { escapeHtml as experimentsEscape } from '../../experiments/html.js';

const unescape = (s: string) =>
  s.replace(/&(amp|lt|gt|quot|#39|#96);/g, (_m, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", '#96': '`' })[e]!);

test.prop([fc.string({ unit: 'grapheme' })])('escaped text holds no markup character and reads back as the text', (text) => {
  const out = escapeHtml(text);
  expect(out).not.toMatch(/[<>"'`]/);
  expect(out.replace(/&(amp|lt|gt|quot|#39|#96);/g, '')).not.toContain('&');
  expect(unescape(out)).toBe(text);
});

test('the UI and the experiment pages use the one escaper', () => {
  expect(uiEscape).toBe(escapeHtml);
  expect(experimentsEscape).toBe(escapeHtml);
  expect(escapeHtml(`<a href="x" title='y'>\`&`)).toBe('&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&#96;&amp;');
});
