import { PortbanditError, PortRanges } from '../../core/index.js';
import { CSRF_FIELD } from './csrf.js';
import { type HtmlValue, type SafeHtml, html } from './html.js';

/** What every admin page is rendered with: the session's CSRF token, and a message to show. */
export interface FormContext {
  readonly csrf: string;
  readonly now: number;
  /** A success message (after a redirect: one of NOTICES). */
  readonly notice?: string;
  /** Why the posted form was refused (nothing was changed). */
  readonly error?: string;
}

/** The messages a `?done=` after a successful POST may show (fixed text: a link cannot forge one). */
export const NOTICES = {
  'scope-added': 'Added.',
  'scope-removed': 'Removed.',
  'scope-imported': 'Imported.',
  'policy-saved': 'Policy saved; the strategy restarted with its saved state.',
  'policy-deleted': 'Policy removed; its hosts fall back to the default policy.',
  'services-uploaded': 'Services file applied.',
  'agent-removed': 'Agent removed; its token no longer works, and any work it had in flight went back to the queue.',
  'agent-groups-saved': "Agent groups saved; the agent's next work requests follow them.",
  'retention-run': 'Retention pass done: the visits the rules dropped are deleted (the audit log says how many).',
  'token-revoked': 'Admin token revoked.',
  'rescan-queued': 'Rescan queued: the next agent to ask for work gets this host first.',
  'rescan-scanning': 'This host is being scanned now: that scan is its rescan (nothing queued).',
  'alert-added': 'Alert rule added; it alerts on events from now on.',
  'alert-removed': 'Alert rule removed.',
} as const;

export type NoticeCode = keyof typeof NOTICES;

/** The message of a `done` code, or undefined for anything else. */
export function noticeOf(code: unknown): string | undefined {
  return typeof code === 'string' && Object.hasOwn(NOTICES, code) ? NOTICES[code as NoticeCode] : undefined;
}

/** The hidden CSRF field; every POST form of the UI carries it. */
export function csrfInput(csrf: string): SafeHtml {
  return html`<input type="hidden" name="${CSRF_FIELD}" value="${csrf}">`;
}

/** A POST form with its CSRF field (multipart when it uploads a file). */
export function postForm(
  action: string,
  csrf: string,
  body: HtmlValue,
  options: { className?: string; multipart?: boolean; label?: string } = {},
): SafeHtml {
  return html`<form method="post" action="${action}"${options.className !== undefined ? html` class="${options.className}"` : ''}${options.multipart === true ? html` enctype="multipart/form-data"` : ''}${options.label !== undefined ? html` aria-label="${options.label}"` : ''}>${csrfInput(csrf)}${body}</form>`;
}

/** The notice and error boxes at the top of a page. */
export function messages(ctx: FormContext): SafeHtml {
  return html`${ctx.notice !== undefined ? html`<div class="notice" role="status">${ctx.notice}</div>` : ''}${
    ctx.error !== undefined ? html`<div class="error" role="alert"><strong>Nothing was changed.</strong> ${ctx.error}</div>` : ''
  }`;
}

/** A posted body as the UI's parsers leave it: strings (url-encoded) or strings and Buffers (multipart). */
export type FormBody = Readonly<Record<string, unknown>>;

/** A text field of a posted form ('' when absent); a Buffer (an uploaded file) is read as UTF-8. */
export function field(body: FormBody | undefined, name: string, maxLength = 4096): string {
  const value = body?.[name];
  const text =
    typeof value === 'string'
      ? value
      : Buffer.isBuffer(value)
        ? value.toString('utf8')
        : Array.isArray(value)
          ? String(value[0] ?? '')
          : '';
  if (text.length > maxLength)
    throw new PortbanditError('PB_ERR_FORM_FIELD', `expected at most ${maxLength} characters, got ${text.length}`, { where: name });
  return text;
}

/** A port list field ("22,80,8000-8100", blank = none). */
export function portsField(body: FormBody | undefined, name: string): number[] {
  const text = field(body, name, 1 << 20).trim();
  const items = text.split(/[\s,]+/).filter((t) => t !== '');
  return items.length === 0 ? [] : PortRanges.parse(items.join(','), name).toArray();
}

/** A number field: undefined when blank; a clear error when not a number in [min, max]. */
export function numberField(
  body: FormBody | undefined,
  name: string,
  options: { min: number; max: number; integer?: boolean; exclusiveMin?: boolean },
): number | undefined {
  const text = field(body, name, 64).trim();
  if (text === '') return undefined;
  const n = Number(text);
  const low = options.exclusiveMin === true ? n <= options.min : n < options.min;
  if (!Number.isFinite(n) || low || n > options.max || (options.integer === true && !Number.isInteger(n))) {
    const kind = options.integer === true ? 'an integer' : 'a number';
    throw new PortbanditError(
      'PB_ERR_FORM_FIELD',
      `expected ${kind} ${options.exclusiveMin === true ? 'above' : 'from'} ${options.min}${options.exclusiveMin === true ? ',' : ''} up to ${options.max}, got ${JSON.stringify(text)}`,
      { where: name },
    );
  }
  return n;
}

/** Lines of a textarea, trimmed, blank lines and `#` comments dropped. */
export function linesField(body: FormBody | undefined, name: string, maxLength = 1 << 20): string[] {
  return field(body, name, maxLength)
    .split(/\r?\n/)
    .map((l) => l.replace(/#.*/, '').trim())
    .filter((l) => l !== '');
}

/** A checkbox: checked when present with any value. */
export function checkboxField(body: FormBody | undefined, name: string): boolean {
  return body?.[name] !== undefined && body[name] !== '';
}

/** Previous / page N of M / next links; `pages: 'more'` when only "there is a next page" is known. */
export function pager(
  page: number,
  pages: number | 'more',
  href: (page: number) => string,
  labels: readonly [string, string] = ['← newer', 'older →'],
): SafeHtml {
  const [back, forward] = labels;
  const hasNext = pages === 'more' || page < pages;
  return html`<nav class="pager" aria-label="pages">${page > 1 ? html`<a href="${href(page - 1)}">${back}</a>` : html`<span class="muted">${back}</span>`}
<span>page ${page}${pages === 'more' ? '' : ` of ${pages}`}</span>
${hasNext ? html`<a href="${href(page + 1)}">${forward}</a>` : html`<span class="muted">${forward}</span>`}</nav>`;
}
