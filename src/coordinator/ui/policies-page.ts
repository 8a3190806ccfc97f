import { strategyNames } from '../../../strategies/index.js';
import { PortbanditError } from '../../core/index.js';
import { describeRetention, policyLabel } from '../admin-actions.js';
import { type Coordinator, rangesOfSorted } from '../coordinator.js';
import { parseGroupList } from '../groups.js';
import { DEFAULT_POLICY_KEY, type Policy, type PolicyInput } from '../policy.js';
import { type RetentionRule, dropsAnything } from '../retention.js';
import { checkTag } from '../scope-file.js';
import { formatCount } from './format.js';
import { type FormBody, type FormContext, checkboxField, field, messages, numberField, portsField, postForm } from './forms.js';
import { type SafeHtml, html } from './html.js';

/** The form's name of the default policy (as in the API's URLs). */
export const DEFAULT_TAG_FIELD = '_default';

/** A policy key from a form field: `_default` (or blank) is the default policy, else a checked tag. */
export function policyKeyField(text: string): string {
  const t = text.trim();
  return t === '' || t === DEFAULT_TAG_FIELD ? DEFAULT_POLICY_KEY : checkTag(t, 'tag');
}

/** The retention choices of the policy form: the default policy's rule, keep everything, or the numbers. */
export const RETENTION_MODES = ['inherit', 'all', 'rule'] as const;
type RetentionMode = (typeof RETENTION_MODES)[number];

/** The rule's fields in the form, with their bounds (as retention.ts's schema). */
const RETENTION_FIELDS = [
  ['keepLast', 'Keep the newest N visits', 1, 1_000_000],
  ['keepDays', 'Keep days of history', 1, 36_500],
  ['dailyAfterDays', 'One a day after (days)', 0, 36_500],
  ['weeklyAfterDays', 'One a week after (days)', 0, 36_500],
] as const;

/**
 * The `groups` a posted form asks for: undefined when the form has no such field (keep the
 * current ones), null for a blank field (any agent), else the checked names.
 */
export function groupsFromForm(body: FormBody): string[] | null | undefined {
  if (body.groups === undefined) return undefined;
  const text = field(body, 'groups', 4160).trim();
  return text === '' ? null : parseGroupList(text.split(/[\s,]+/u).join(','), 'groups');
}

/**
 * The `retention` a posted form asks for: undefined without a `retention` field (keep the
 * current rule), null for the default policy's rule, `{}` to keep everything, else the numbers
 * (at least one). Numbers typed under another choice are refused rather than dropped silently.
 * The Coordinator checks how the numbers relate (retention.ts, `checkRetention`).
 */
export function retentionFromForm(body: FormBody): RetentionRule | null | undefined {
  if (body.retention === undefined) return undefined;
  const mode = field(body, 'retention', 16);
  if (!(RETENTION_MODES as readonly string[]).includes(mode))
    throw new PortbanditError('PB_ERR_RETENTION_RULE', `expected one of ${RETENTION_MODES.join(', ')}, got ${JSON.stringify(mode)}`, {
      where: 'retention',
    });
  const rule: Record<string, number> = {};
  for (const [name, , min, max] of RETENTION_FIELDS) {
    const n = numberField(body, name, { min, max, integer: true });
    if (n !== undefined) rule[name] = n;
  }
  const stated = Object.keys(rule);
  if (mode !== 'rule') {
    if (stated.length > 0)
      throw new PortbanditError('PB_ERR_RETENTION_RULE', `choose "keep by these numbers" to apply ${stated.join(', ')}, or clear them`, {
        where: 'retention',
      });
    return mode === 'all' ? {} : null;
  }
  if (stated.length === 0)
    throw new PortbanditError(
      'PB_ERR_RETENTION_RULE',
      'state at least one number: keep the newest N, keep days, or thin daily/weekly after some days',
      { where: 'keepLast' },
    );
  return rule;
}

/** How a policy's retention reads in the table. */
function retentionCell(key: string, p: Policy): SafeHtml | string {
  if (p.retention === undefined) return key === DEFAULT_POLICY_KEY ? 'keep all' : html`<span class="muted">default's</span>`;
  return describeRetention(p.retention);
}

const ports = (list: readonly number[]): string => (list.length === 0 ? '' : rangesOfSorted([...list].sort((a, b) => a - b)));

/**
 * The policy a posted form asks for, on top of the tag's current policy (fields the form does
 * not show, such as time-outs or a strategy's pseudo-count threshold, are kept). Throws a coded
 * error naming the field; the Coordinator validates the rest (strategy, parameters, scripts).
 */
export function policyFromForm(coordinator: Coordinator, key: string, body: FormBody): PolicyInput {
  const current = coordinator.policy(key);
  const base = current ? (JSON.parse(JSON.stringify(current)) as PolicyInput) : undefined;
  const strategy = field(body, 'strategy', 64).trim();
  if (strategy === '') throw new PortbanditError('PB_ERR_POLICY', 'choose a strategy', { where: 'strategy' });
  const paramsText = field(body, 'params', 65_536).trim();
  let params: Record<string, unknown> = {};
  if (paramsText !== '') {
    try {
      params = JSON.parse(paramsText) as Record<string, unknown>;
    } catch (error) {
      throw new PortbanditError('PB_ERR_POLICY', `expected a JSON object of strategy parameters: ${(error as Error).message}`, {
        where: 'params',
      });
    }
    if (params === null || typeof params !== 'object' || Array.isArray(params))
      throw new PortbanditError('PB_ERR_POLICY', 'expected a JSON object of strategy parameters, like {"k": 100}', { where: 'params' });
  }
  const budget = numberField(body, 'budget', { min: 0, max: 65_535, integer: true });
  const rate = numberField(body, 'rate', { min: 0, max: 100_000_000, exclusiveMin: true });
  const period = key === DEFAULT_POLICY_KEY ? numberField(body, 'periodSeconds', { min: 1, max: 366 * 86_400, integer: true }) : undefined;
  if (budget === undefined && rate === undefined)
    throw new PortbanditError(
      'PB_ERR_POLICY',
      'state a budget (probes per host visit) or a rate (probes per second over the cycle period)',
      { where: 'budget' },
    );
  const scripts = [...coordinator.config.allowedScripts].filter((s) => checkboxField(body, `script:${s}`));
  const groups = groupsFromForm(body);
  const retention = retentionFromForm(body);
  const { periodSeconds: _p, ...rest } = base ?? { strategy };
  return {
    ...(key === DEFAULT_POLICY_KEY ? (base ?? {}) : rest),
    strategy,
    params,
    ...(budget !== undefined ? { budget } : {}),
    // A rate left blank means the budget is per visit: an inherited rate is removed.
    rate: rate ?? null,
    ...(key === DEFAULT_POLICY_KEY ? { periodSeconds: period ?? null } : {}),
    mustHave: portsField(body, 'mustHave'),
    exclude: portsField(body, 'exclude'),
    scan: { ...(base?.scan ?? {}), scripts },
    ...(groups !== undefined ? { groups } : {}),
    ...(retention !== undefined ? { retention } : {}),
  };
}

function policyRow(key: string, p: Policy, ctx: FormContext): SafeHtml {
  const tagField = key === DEFAULT_POLICY_KEY ? DEFAULT_TAG_FIELD : key;
  const params = Object.keys(p.params).length > 0 ? JSON.stringify(p.params) : '';
  return html`<tr><td>${policyLabel(key)}</td><td class="mono">${p.strategy}${params !== '' ? html`<div class="muted">${params.length > 80 ? `${params.slice(0, 79)}…` : params}</div>` : ''}</td>
<td class="num">${p.rate !== undefined ? html`${formatCount(p.rate)}/s <span class="muted">(rate)</span>` : formatCount(p.budget)}</td>
<td class="num">${p.periodSeconds !== undefined ? `${formatCount(p.periodSeconds)} s` : key === DEFAULT_POLICY_KEY ? 'back to back' : html`<span class="muted">default's</span>`}</td>
<td class="mono">${ports(p.mustHave)}</td><td class="mono">${ports(p.exclude)}</td><td class="mono">${p.scan.scripts.join(' ')}</td>
<td>${p.groups !== undefined ? p.groups.map((g) => html`<span class="tag">${g}</span>`) : html`<span class="muted">any agent</span>`}</td><td>${retentionCell(key, p)}</td>
<td class="actions"><a href="/ui/admin/policies?tag=${encodeURIComponent(tagField)}">edit</a>
${postForm('/ui/admin/policies/delete', ctx.csrf, html`<input type="hidden" name="tag" value="${tagField}"><button type="submit" class="danger" aria-label="remove the policy ${policyLabel(key)}">${key === DEFAULT_POLICY_KEY ? 'Reset' : 'Remove'}</button>`, { className: 'row' })}</td></tr>`;
}

/** The values the edit form shows: the posted ones after an error, else the policy's. */
function formValues(key: string, policy: Policy | undefined, posted: FormBody | undefined, defaults: Policy) {
  const get = (name: string, fallback: string): string => (posted !== undefined ? field(posted, name, 65_536) : fallback);
  return {
    strategy: get('strategy', policy?.strategy ?? 'thompson'),
    params: get('params', policy && Object.keys(policy.params).length > 0 ? JSON.stringify(policy.params) : ''),
    budget: get('budget', policy && policy.rate === undefined ? String(policy.budget) : ''),
    rate: get('rate', policy?.rate !== undefined ? String(policy.rate) : ''),
    periodSeconds: get('periodSeconds', policy?.periodSeconds !== undefined ? String(policy.periodSeconds) : ''),
    mustHave: get('mustHave', policy ? ports(policy.mustHave) : ''),
    exclude: get('exclude', policy ? ports(policy.exclude) : ''),
    // A new tag's policy starts with the default policy's scripts ticked.
    groups: get('groups', policy?.groups?.join(', ') ?? ''),
    retention: (posted !== undefined
      ? field(posted, 'retention', 16)
      : policy?.retention === undefined
        ? key === DEFAULT_POLICY_KEY
          ? 'all'
          : 'inherit'
        : dropsAnything(policy.retention)
          ? 'rule'
          : 'all') as RetentionMode,
    rule: (name: string): string =>
      get(
        name,
        policy?.retention?.[name as keyof RetentionRule] !== undefined ? String(policy.retention[name as keyof RetentionRule]) : '',
      ),
    scripts: (script: string): boolean =>
      posted !== undefined ? checkboxField(posted, `script:${script}`) : (policy ?? defaults).scan.scripts.includes(script),
    isDefault: key === DEFAULT_POLICY_KEY,
  };
}

/** The policies page: every policy, the edit form of one (or a new tag), and the services upload. */
export function renderPoliciesPage(coordinator: Coordinator, request: { tag?: string; posted?: FormBody }, ctx: FormContext): SafeHtml {
  let key: string | undefined;
  try {
    key = request.tag !== undefined ? policyKeyField(request.tag) : undefined;
  } catch {
    key = undefined;
  }
  const policy = key !== undefined ? coordinator.policy(key) : undefined;
  const v = formValues(key ?? 'new', policy, request.posted, coordinator.policy(DEFAULT_POLICY_KEY)!);
  const tagValue =
    request.posted !== undefined
      ? field(request.posted, 'tag', 64)
      : key === undefined
        ? ''
        : key === DEFAULT_POLICY_KEY
          ? DEFAULT_TAG_FIELD
          : key;
  return html`<h1>Policies</h1>
${messages(ctx)}
<p>A host's policy is that of its first tag (in sorted order) that has one, else the default policy. The budget is probes per host visit,
or derived from a rate (probes per second the fleet spends on the tag, over the default policy's cycle period).</p>
<p>Agent groups: a tag whose policy names groups is scanned only by agents of those groups (a host with several such tags: by agents of a group every one names).
Retention: what a pass keeps of each host's history (the latest visit, each vantage point's baseline and visits an event refers to are always kept);
see the <a href="/ui/admin/retention">retention dry run</a>.</p>
<table><thead><tr><th>tag</th><th>strategy</th><th class="num">budget</th><th class="num">cycle period</th><th>must-have</th><th>excluded</th><th>scripts</th><th>agent groups</th><th>retention</th><th></th></tr></thead><tbody>
${coordinator.policyKeys().map((k) => policyRow(k, coordinator.policy(k)!, ctx))}
</tbody></table>
<div class="grid2 spaced">
<div class="panel"><h2>${policy ? html`Edit the policy of <span class="mono">${policyLabel(key!)}</span>` : 'New policy'}</h2>
${postForm(
  '/ui/admin/policies',
  ctx.csrf,
  html`<label>Tag <input name="tag" maxlength="64" value="${tagValue}" placeholder="dmz (or _default)" required></label>
<label>Strategy <select name="strategy">${strategyNames.map((s) => html`<option value="${s}"${s === v.strategy ? html` selected` : ''}>${s}</option>`)}</select></label>
<label>Parameters (JSON) <input name="params" size="40" value="${v.params}" placeholder='{"ports": [22, 80]} for fixed'></label>
<label>Budget, probes per host visit <input name="budget" inputmode="numeric" size="8" value="${v.budget}"></label>
<label>or rate, probes per second <input name="rate" inputmode="decimal" size="8" value="${v.rate}"></label>
${v.isDefault || key === undefined ? html`<label>Cycle period, seconds (default policy only) <input name="periodSeconds" inputmode="numeric" size="8" value="${v.periodSeconds}"></label>` : ''}
<label>Must-have ports <input name="mustHave" size="40" value="${v.mustHave}" placeholder="22,80,443,8000-8100"></label>
<label>Excluded ports <input name="exclude" size="40" value="${v.exclude}" placeholder="9100"></label>
<fieldset><legend>NSE scripts (the server's allowlist)</legend>${coordinator.config.allowedScripts.map(
    (s) =>
      html`<label class="check"><input type="checkbox" name="script:${s}" value="1"${v.scripts(s) ? html` checked` : ''}> <span class="mono">${s}</span></label> `,
  )}</fieldset>
<label>Agent groups that may scan it (blank: any agent) <input name="groups" size="40" value="${v.groups}" placeholder="internal, external"></label>
<fieldset><legend>Retention of the history</legend>
<label>Rule <select name="retention">${(v.isDefault ? (['all', 'rule'] as const) : RETENTION_MODES).map(
    (m) =>
      html`<option value="${m}"${m === v.retention ? html` selected` : ''}>${m === 'inherit' ? "the default policy's rule" : m === 'all' ? 'keep every visit' : 'keep by these numbers'}</option>`,
  )}</select></label>
<div class="fields">${RETENTION_FIELDS.map(([name, label]) => html`<label>${label} <input name="${name}" inputmode="numeric" size="7" value="${v.rule(name)}"></label> `)}</div></fieldset>
<button type="submit">Save the policy</button>`,
  { className: 'stack', label: 'policy' },
)}</div>
<div class="panel"><h2>Upload a Natlas services file</h2>
${postForm(
  '/ui/admin/policies/services',
  ctx.csrf,
  html`<p class="muted">Lines <span class="mono">name port/proto</span>: the TCP ports become the port list of a <span class="mono">fixed</span> policy, otherwise its must-have ports.</p>
<label>Tag <input name="tag" maxlength="64" value="${tagValue}" placeholder="dmz (or _default)" required></label>
<label>File <input type="file" name="file" required></label>
<button type="submit">Upload</button>`,
  { className: 'stack', multipart: true, label: 'services file' },
)}</div></div>`;
}
