/**
 * A tagged template for HTML that escapes every interpolation unless it is already `SafeHtml`.
 * All UI markup goes through it, so data from scans (banners, script output, tags) can never
 * become markup.
 */
import { escapeHtml } from '../../core/index.js';

/** Markup that is known to be safe (built by `html` or explicitly trusted with `trustedHtml`). */
export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

export { escapeHtml };

/** Any value an interpolation may hold: arrays are joined, null/undefined/false render nothing. */
export type HtmlValue = SafeHtml | string | number | bigint | boolean | null | undefined | readonly HtmlValue[];

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return value.map((v: HtmlValue) => render(v)).join('');
  return escapeHtml(String(value));
}

/** Build markup; every `${...}` is escaped unless it is SafeHtml (nested `html` results are). */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new SafeHtml(out);
}

/** Mark markup as safe without escaping: only for markup serialised by a DOM (the SVG charts). */
export function trustedHtml(markup: string): SafeHtml {
  return new SafeHtml(markup);
}
