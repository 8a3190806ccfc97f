import * as Plot from '@observablehq/plot';
import { JSDOM } from 'jsdom';
import { escapeHtml } from '../src/core/index.js';
import type { Estimate } from './stats.js';

export { escapeHtml };

/** A fixed palette so one strategy has one colour on every chart of a page. */
export const PALETTE = ['#4e79a7', '#f28e2c', '#e15759', '#76b7b2', '#59a14f', '#edc949', '#af7aa1', '#ff9da7', '#9c755f', '#bab0ab'];

/** The colour scale shared by every chart (Plot options). */
export function colorScale(domain: readonly string[]): Plot.ScaleOptions {
  return { domain: [...domain], range: PALETTE.slice(0, Math.max(1, domain.length)) };
}

/** Render Observable Plot options to an SVG string, in Node, through jsdom. */
export function renderPlot(options: Plot.PlotOptions): string {
  const { document } = new JSDOM('<!doctype html><html><body></body></html>').window;
  const element = Plot.plot({ ...options, document } as Plot.PlotOptions);
  return element.outerHTML;
}

/** A legend as plain HTML (so each chart holds exactly one SVG). */
export function renderLegend(domain: readonly string[], label = ''): string {
  const items = domain
    .map((d, i) => `<span class="swatch"><i style="background:${PALETTE[i % PALETTE.length]}"></i>${escapeHtml(d)}</span>`)
    .join('');
  return `<div class="legend">${label ? `<b>${escapeHtml(label)}</b> ` : ''}${items}</div>`;
}

/** A chart as a figure: one SVG, a caption, and the chart's kind for tests and readers. */
export function renderFigure(kind: string, caption: string, svg: string, attrs: Readonly<Record<string, string>> = {}): string {
  const extra = Object.entries(attrs)
    .map(([k, v]) => ` data-${k}="${escapeHtml(v)}"`)
    .join('');
  return `<figure class="chart" data-chart="${escapeHtml(kind)}"${extra}>${svg}<figcaption>${escapeHtml(caption)}</figcaption></figure>`;
}

export type NumberStyle = 'percent' | 'points' | 'fixed1' | 'fixed2' | 'fixed3' | 'int';

/** Format a number for tables: percent, percentage points, fixed digits. */
export function formatNumber(value: number | null | undefined, style: NumberStyle = 'fixed2'): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  switch (style) {
    case 'percent':
      return `${(value * 100).toFixed(1)}%`;
    case 'points':
      return `${(value * 100).toFixed(1)} pts`;
    case 'fixed1':
      return value.toFixed(1);
    case 'fixed3':
      return value.toFixed(3);
    case 'int':
      return String(Math.round(value));
    default:
      return value.toFixed(2);
  }
}

/** "12.3% [11.0, 13.5]" for an estimate with its interval. */
export function formatEstimate(e: Estimate | null | undefined, style: NumberStyle = 'fixed2', signed = false): string {
  if (e === null || e === undefined || e.value === null) return '–';
  const f = (v: number | null, inner = false) => {
    const text = formatNumber(v, style);
    // Units are shown once, on the value; the interval carries bare numbers.
    const s = inner ? text.replace(/ pts$|%$/, '') : text;
    return signed && v !== null && v > 0 ? `+${s}` : s;
  };
  const interval = e.low !== null && e.high !== null ? ` <span class="ci">[${f(e.low, true)}, ${f(e.high, true)}]</span>` : '';
  return `${f(e.value)}${interval}`;
}

/** An HTML table; cells are trusted HTML (escape text before passing it). */
export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[], className = 'data'): string {
  const head = `<tr>${headers.map((h) => `<th>${h}</th>`).join('')}</tr>`;
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('\n');
  return `<div class="table-wrap"><table class="${className}"><thead>${head}</thead><tbody>\n${body}\n</tbody></table></div>`;
}

const styles = `
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d1d1f; background: #fff; }
main { max-width: 1160px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 1.7rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.3rem; margin-top: 2.4rem; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
p, li { line-height: 1.5; max-width: 80ch; }
.meta { color: #555; font-size: 0.9rem; }
figure.chart { margin: 12px 0 24px; }
figure.chart svg { max-width: 100%; height: auto; font-size: 11px; }
figcaption { color: #444; font-size: 0.88rem; margin-top: 4px; max-width: 90ch; }
.legend { margin: 8px 0; font-size: 0.9rem; }
.swatch { display: inline-flex; align-items: center; margin-right: 14px; }
.swatch i { display: inline-block; width: 12px; height: 12px; margin-right: 5px; border-radius: 2px; }
table.data { border-collapse: collapse; font-size: 0.85rem; margin: 8px 0 16px; }
table.data th, table.data td { border-bottom: 1px solid #e4e4e4; padding: 4px 10px; text-align: right; white-space: nowrap; }
table.data th:first-child, table.data td:first-child, table.data th:nth-child(2), table.data td:nth-child(2) { text-align: left; }
table.data th { background: #f6f6f6; }
.ci { color: #777; font-size: 0.8em; }
table.data td .ci { display: block; line-height: 1.1; }
.table-wrap { overflow-x: auto; max-width: 100%; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 8px 24px; }
pre { background: #f6f6f6; padding: 12px; overflow-x: auto; font-size: 0.8rem; }
.better { color: #1a7f37; } .worse { color: #b42318; }
`;

/** A complete, self-contained HTML page (inline CSS, inline SVG, no scripts, no network). */
export function renderPage(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${styles}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}
