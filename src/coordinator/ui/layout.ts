import { VERSION } from '../../core/index.js';
import { type HtmlValue, type SafeHtml, html } from './html.js';

/**
 * No script at all; styles are inline (one block plus the charts' own) because the UI must work
 * offline without a static file route. Everything else is denied.
 */
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const STYLE = `
:root { color-scheme: light; --fg: #1d232b; --muted: #5b6570; --line: #d9dee3; --bg: #f6f7f9; --accent: #1f5fa8; --bad: #a8261f; --good: #1d7a3a; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { background: #1d232b; color: #fff; padding: 0 24px; display: flex; align-items: center; gap: 14px; min-height: 48px; flex-wrap: wrap; }
header a { color: #dfe6ee; text-decoration: none; }
header a:hover, header a.here { color: #fff; text-decoration: underline; }
header .brand { font-weight: 600; color: #fff; margin-right: 8px; }
header form { margin-left: auto; display: flex; gap: 6px; }
header input[type=search] { width: 200px; }
main { padding: 20px 24px 40px; max-width: 1280px; }
h1 { font-size: 20px; margin: 0 0 16px; }
h2 { font-size: 16px; margin: 28px 0 10px; }
h3 { font-size: 14px; margin: 16px 0 6px; }
a { color: var(--accent); }
a.mono { white-space: nowrap; }
.muted { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 12px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 16px; }
.panel { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; overflow-x: auto; }
.panel h2 { margin-top: 0; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: 5px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; text-transform: uppercase; letter-spacing: .03em; background: #fafbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
td.mono, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.93em; }
pre { margin: 4px 0; padding: 6px 8px; background: #f3f5f7; border: 1px solid var(--line); border-radius: 4px; white-space: pre-wrap; word-break: break-word; font-size: 12px; max-height: 240px; overflow: auto; }
.tag { display: inline-block; padding: 0 6px; margin: 0 4px 2px 0; border-radius: 10px; background: #e7eef7; color: #1f3f66; font-size: 12px; }
.tag.partial { background: #fdf1dc; color: #7a4b00; }
.error { background: #fdecea; border: 1px solid #f1b0aa; color: var(--bad); padding: 10px 14px; border-radius: 6px; margin: 12px 0; }
.error pre { background: #fff; color: var(--fg); }
.opened { color: var(--good); font-weight: 600; }
.closed { color: var(--bad); font-weight: 600; }
input, select, button { font: inherit; padding: 4px 8px; border: 1px solid #aab3bd; border-radius: 4px; background: #fff; }
button { background: var(--accent); color: #fff; border-color: var(--accent); cursor: pointer; }
form.inline { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; margin: 8px 0; }
.pager { display: flex; gap: 16px; margin: 12px 0; align-items: center; }
.chart svg { max-width: 100%; height: auto; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 4px 0; font-size: 12px; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; word-break: break-all; }
.login { max-width: 420px; margin: 60px auto; }
.shots { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 14px; margin: 8px 0 16px; }
.shot { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 5px; font-size: 12px; word-break: break-all; }
.shot img { display: block; width: 100%; height: auto; border: 1px solid var(--line); background: #eef1f4; }
.shot figcaption { padding: 4px 2px 0; }
.shot.gone > div { padding: 40px 8px; text-align: center; border: 1px dashed var(--line); }
.notice { background: #e9f5ec; border: 1px solid #a9d5b5; color: #14532d; padding: 10px 14px; border-radius: 6px; margin: 12px 0; }
.notice.created input.token { width: 100%; margin-top: 4px; background: #fff; }
form.stack { display: flex; flex-direction: column; gap: 8px; align-items: flex-start; margin: 8px 0; }
form.stack label { display: flex; flex-direction: column; gap: 2px; }
form.stack label.check, label.check { flex-direction: row; align-items: center; gap: 6px; display: inline-flex; }
form.inline label { display: inline-flex; gap: 6px; align-items: center; }
form.row { margin: 0; display: inline; }
.grid2.spaced { margin-top: 20px; }
td.actions { white-space: nowrap; }
td.actions a { margin-right: 8px; }
textarea { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; padding: 4px 8px; border: 1px solid #aab3bd; border-radius: 4px; }
fieldset { border: 1px solid var(--line); border-radius: 4px; padding: 4px 10px 8px; }
button.danger { background: #fff; color: var(--bad); border-color: #e2a8a3; padding: 1px 8px; }
.login input { width: 100%; margin: 6px 0 12px; }
fieldset .fields { display: flex; gap: 10px; flex-wrap: wrap; margin-top: 6px; }
form.inline.groups { margin: 0; flex-wrap: nowrap; }
form.inline.groups input { width: 150px; }
div.resolved { margin-top: 2px; font-size: 13px; }
`;

/** Which header link is highlighted. */
export type Section = 'dashboard' | 'search' | 'host' | 'login' | 'screenshots' | AdminSection;

/** The admin pages' header links (issue 14: events, scope, policies, agents, alerts, audit). */
export type AdminSection = 'events' | 'scope' | 'policies' | 'retention' | 'agents' | 'alerts' | 'audit';

const ADMIN_LINKS: ReadonlyArray<readonly [AdminSection, string, string]> = [
  ['events', '/ui/events', 'Events'],
  ['scope', '/ui/admin/scope', 'Scope'],
  ['policies', '/ui/admin/policies', 'Policies'],
  ['retention', '/ui/admin/retention', 'Retention'],
  ['agents', '/ui/admin/agents', 'Agents'],
  ['alerts', '/ui/alerts', 'Alerts'],
  ['audit', '/ui/audit', 'Audit'],
];

/** The page shell: header with navigation and the search box, then the content. */
export function renderPage(options: { title: string; section: Section; query?: string; signedIn: boolean }, body: HtmlValue): SafeHtml {
  const nav = options.signedIn
    ? html`<a href="/ui" class="${options.section === 'dashboard' ? 'here' : ''}">Dashboard</a>
<a href="/ui/search" class="${options.section === 'search' ? 'here' : ''}">Search</a>
<a href="/ui/screenshots" class="${options.section === 'screenshots' ? 'here' : ''}">Screenshots</a>
${ADMIN_LINKS.map(
  ([section, href, label]) => html`<a href="${href}" class="${options.section === section ? 'here' : ''}">${label}</a>
`,
)}<a href="/docs">API</a>
<form method="get" action="/ui/search" role="search"><input type="search" name="q" aria-label="Search query" placeholder="port:22 service:ssh tag:dmz" value="${options.query ?? ''}"><button type="submit">Search</button></form>
<form method="post" action="/ui/logout"><button type="submit" title="Forget the token in this browser">Sign out</button></form>`
    : html``;
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${options.title} · portbandit</title>
<style>${STYLE}</style></head>
<body><header><a class="brand" href="/ui">portbandit</a>${nav}</header>
<main>${body}</main>
<footer class="muted" style="padding: 0 24px 20px">portbandit ${VERSION} coordinator · times in UTC</footer>
</body></html>`;
}
