import { fc, test } from '@fast-check/vitest';
import { describe, expect, it } from 'vitest';
import { SafeHtml, escapeHtml, html, trustedHtml } from '../../src/coordinator/ui/html.js';

describe('the html tagged template', () => {
  it('escapes every interpolated string, in text and in attribute values', () => {
    const banner = '<script>alert("x")</script>';
    const attr = `" onmouseover='alert(1)`;
    const out = html`<p title="${attr}">${banner}</p>`.value;
    expect(out).toBe('<p title="&quot; onmouseover=&#39;alert(1)">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</p>');
  });

  it('keeps nested html fragments, joins arrays and drops null, undefined and false', () => {
    const items = ['a&b', '<i>'];
    const out = html`<ul>${items.map((i) => html`<li>${i}</li>`)}</ul>${null}${undefined}${false}${0}`.value;
    expect(out).toBe('<ul><li>a&amp;b</li><li>&lt;i&gt;</li></ul>0');
  });

  it('trusts only what is explicitly marked as trusted', () => {
    expect(html`${trustedHtml('<svg></svg>')}`.value).toBe('<svg></svg>');
    expect(html`${'<svg></svg>'}`.value).toBe('&lt;svg&gt;&lt;/svg&gt;');
    expect(html``).toBeInstanceOf(SafeHtml);
  });

  test.prop([fc.string({ unit: 'binary' })])('no interpolated string can open a tag, an entity or leave a quoted attribute', (s) => {
    const e = escapeHtml(s);
    expect(html`<a title="${s}">${s}</a>`.value).toBe(`<a title="${e}">${e}</a>`);
    expect(e).not.toMatch(/[<>"'`]/);
    // Every ampersand starts one of our entities, and decoding gives the input back.
    expect(e.replace(/&(amp|lt|gt|quot|#39|#96);/g, '')).not.toContain('&');
    const decoded = e.replace(
      /&(amp|lt|gt|quot|#39|#96);/g,
      (_m, n: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", '#96': '`' })[n]!,
    );
    expect(decoded).toBe(s);
  });
});
