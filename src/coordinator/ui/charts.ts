import type * as PlotTypes from '@observablehq/plot';
import { type SafeHtml, html, trustedHtml } from './html.js';

/**
 * Server-side SVG charts with Observable Plot on a jsdom document. Both libraries load on the
 * first chart (jsdom takes ~0.4 s to start), so the coordinator's start-up and its API do not
 * pay for the UI. Plot builds DOM nodes and the serialiser escapes their text, so labels taken
 * from data (tags, services) are safe to embed.
 */

type PlotModule = typeof PlotTypes;

let loading: Promise<{ Plot: PlotModule; document: Document }> | undefined;

async function loadPlot(): Promise<{ Plot: PlotModule; document: Document }> {
  loading ??= (async () => {
    const [Plot, { JSDOM }] = await Promise.all([import('@observablehq/plot'), import('jsdom')]);
    const { document } = new JSDOM('<!doctype html><html><body></body></html>').window;
    return { Plot, document: document as unknown as Document };
  })();
  return loading;
}

function serialise(node: Element | SVGElement | HTMLElement): SafeHtml {
  return trustedHtml(node.outerHTML);
}

// Dashboards are reloaded often with unchanged figures; a chart costs ~10-20 ms to lay out, so
// the last few are kept by their inputs.
const CACHE_SIZE = 32;
const cache = new Map<string, SafeHtml>();

async function cached(key: string, draw: () => Promise<SafeHtml>): Promise<SafeHtml> {
  const hit = cache.get(key);
  if (hit) {
    cache.delete(key);
    cache.set(key, hit);
    return hit;
  }
  const svg = await draw();
  cache.set(key, svg);
  if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value!);
  return svg;
}

/** Counts get whole-number ticks only (no "2.5 hosts"). */
function integerTicks(max: number): { ticks?: number[]; tickFormat: string } {
  if (!(max <= 10)) return { tickFormat: ',d' };
  return { ticks: Array.from({ length: Math.ceil(max) + 1 }, (_, i) => i), tickFormat: 'd' };
}

const empty = (what: string): SafeHtml => html`<p class="muted">No ${what} yet.</p>`;

/** An hour tick in UTC: "15:00", or the date ("Dec 5") at midnight. */
export function hourTick(d: Date): string {
  return d.getUTCHours() === 0
    ? d.toLocaleDateString('en-US', { timeZone: 'UTC', month: 'short', day: 'numeric' })
    : `${String(d.getUTCHours()).padStart(2, '0')}:00`;
}

/** Scans finished per UTC hour, as columns over the window. */
export async function renderScansPerHourChart(
  rows: ReadonlyArray<{ hourStart: number; scans: number }>,
  since: number,
  until: number,
): Promise<SafeHtml> {
  if (rows.length === 0) return empty('scans in this window');
  return cached(JSON.stringify(['hours', rows, since, until]), async () => {
    const { Plot, document } = await loadPlot();
    const data = rows.map((r) => ({ from: new Date(r.hourStart), to: new Date(r.hourStart + 3_600_000), scans: r.scans }));
    return serialise(
      Plot.plot({
        document,
        width: 560,
        height: 240,
        marginLeft: 50,
        marginBottom: 36,
        style: { fontSize: '12px' },
        x: {
          type: 'utc',
          domain: [new Date(since), new Date(until)],
          label: 'hour (UTC)',
          labelAnchor: 'center',
          labelOffset: 32,
          ticks: 8,
          // A 24 h window starts and ends at the same hour: midnight shows its date, so the
          // reader sees which end is today.
          tickFormat: hourTick,
        },
        y: { grid: true, label: 'scans', nice: true, ...integerTicks(Math.max(...rows.map((r) => r.scans))) },
        marks: [Plot.rectY(data, { x1: 'from', x2: 'to', y: 'scans', fill: '#1f5fa8', inset: 0.5 }), Plot.ruleY([0])],
      }),
    );
  });
}

/** Horizontal bars: a label per row and a value (hosts with a port open, an estimate, ...). */
export async function renderBarChart(
  rows: ReadonlyArray<{ label: string; value: number }>,
  options: { xLabel: string; what: string; percent?: boolean },
): Promise<SafeHtml> {
  if (rows.length === 0) return empty(options.what);
  return cached(JSON.stringify(['bars', rows, options]), async () => {
    const { Plot, document } = await loadPlot();
    const data = rows.map((r) => ({ label: r.label, value: r.value }));
    return serialise(
      Plot.plot({
        document,
        width: 560,
        height: 50 + data.length * 24,
        marginLeft: 110,
        marginRight: 60,
        marginBottom: 36,
        style: { fontSize: '12px' },
        x: {
          grid: true,
          label: options.xLabel,
          labelAnchor: 'center',
          labelOffset: 32,
          ...(options.percent ? { percent: true } : integerTicks(Math.max(...data.map((d) => d.value)))),
        },
        y: { label: null, domain: data.map((d) => d.label) },
        marks: [
          Plot.barX(data, { y: 'label', x: 'value', fill: '#1f5fa8' }),
          Plot.text(data, {
            y: 'label',
            x: 'value',
            text: (d: { value: number }) => (options.percent ? `${(d.value * 100).toFixed(1)}%` : String(d.value)),
            textAnchor: 'start',
            dx: 4,
          }),
          Plot.ruleX([0]),
        ],
      }),
    );
  });
}
