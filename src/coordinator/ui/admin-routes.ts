import type { FastifyInstance, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler, preParsingAsyncHookHandler } from 'fastify';
import { isPortbanditError, PortbanditError } from '../../core/index.js';
import type { ScopeListName } from '../../store/index.js';
import { AdminActions } from '../admin-actions.js';
import { type AuditActor, identifyAdmin } from '../audit.js';
import type { Coordinator } from '../coordinator.js';
import { parseGroupList } from '../groups.js';
import type { RetentionRunner } from '../retention-runner.js';
import { formatScopeFile, normalizeScopeLine, parseScopeFile } from '../scope-file.js';
import { renderAgentsPage, type CreatedToken } from './agents-page.js';
import { type AlertForm, renderAlertsPage } from './alerts-page.js';
import { renderAuditPage } from './audit-page.js';
import { CSRF_FIELD, checkCsrfToken, csrfTokenFor } from './csrf.js';
import { renderEvents } from './events-page.js';
import { type FormBody, type FormContext, type NoticeCode, checkboxField, field, linesField, noticeOf } from './forms.js';
import { hostHref } from './format.js';
import { type SafeHtml, html } from './html.js';
import type { Section } from './layout.js';
import { policyFromForm, policyKeyField, renderPoliciesPage } from './policies-page.js';
import { renderRetentionPage } from './retention-page.js';
import { renderScopePage } from './scope-page.js';
import { clearedSessionCookie, presentedToken } from './ui-auth.js';

/** What the admin pages borrow from the UI plugin. */
export interface AdminUiDeps {
  readonly coordinator: Coordinator;
  /** History retention: the dry run and the pass an admin runs from the retention page. */
  readonly retention: RetentionRunner;
  readonly csrfKey: Buffer;
  readonly requireAdmin: preParsingAsyncHookHandler;
  readonly signedInOnly: object;
  readonly sendPage: (reply: FastifyReply, status: number, title: string, section: Section, body: SafeHtml) => FastifyReply;
}

const hidden = { hide: true, tags: ['ui'] } as const;
const pageQuery = { page: { type: 'integer', minimum: 1, maximum: 100_000, default: 1 }, done: { type: 'string', maxLength: 40 } } as const;
const listQuery = { list: { type: 'string', enum: ['scope', 'blocklist'], default: 'scope' } } as const;
/** The largest posted body: a scope file or services file upload. */
export const UPLOAD_LIMIT_BYTES = 16 * 1024 * 1024;

/** A form's failure the operator can fix (bad input, unknown name): shown on the page with its status, nothing changed. */
function formError(error: unknown): { status: number; message: string } | undefined {
  return isPortbanditError(error) && error.statusCode < 500 ? { status: error.statusCode, message: error.message } : undefined;
}

/**
 * The admin pages of the UI: scope and blocklist, policies, agents and tokens, alerts, the
 * events and audit pages, and the host page's rescan button. Every POST carries the session's
 * CSRF token (checked before anything happens) and goes through AdminActions, so each change is
 * validated by the Coordinator and audited exactly as through the API.
 */
export function registerAdminUiRoutes(app: FastifyInstance, deps: AdminUiDeps): void {
  const { coordinator, retention, csrfKey, requireAdmin, signedInOnly, sendPage } = deps;
  const actions = new AdminActions(coordinator);
  const actor = (req: FastifyRequest): Promise<AuditActor> => identifyAdmin(coordinator.store, presentedToken(req), 'ui');
  const context = (req: FastifyRequest, extra: { notice?: string | undefined; error?: string | undefined } = {}): FormContext => ({
    csrf: csrfTokenFor(csrfKey, presentedToken(req) ?? ''),
    now: coordinator.now(),
    ...(extra.notice !== undefined ? { notice: extra.notice } : {}),
    ...(extra.error !== undefined ? { error: extra.error } : {}),
  });

  /**
   * preHandler of every POST (after the admin check and the body parser): the form must carry the
   * session's CSRF token, and a browser that says the request is cross-site is refused outright.
   */
  const requireCsrf: preHandlerAsyncHookHandler = async (req, reply) => {
    const token = presentedToken(req) ?? '';
    const posted = (req.body as FormBody | undefined)?.[CSRF_FIELD];
    const crossSite = req.headers['sec-fetch-site'] === 'cross-site';
    if (!crossSite && checkCsrfToken(csrfKey, token, posted)) return;
    req.log.warn({ url: req.url, crossSite, hadToken: posted !== undefined }, 'ui form refused: CSRF check failed');
    await sendPage(
      reply,
      403,
      'Form refused',
      'dashboard',
      html`<h1>Form refused</h1><div class="error" role="alert"><strong>Nothing was changed.</strong> The form did not carry this session's security token (CSRF protection): it came from another site, or from a page rendered before you signed in again.</div>
<p>Go back, reload the page, and submit it again.</p>`,
    );
  };
  const get = { preParsing: requireAdmin, config: signedInOnly } as const;
  const post = { preParsing: requireAdmin, preHandler: requireCsrf, config: signedInOnly } as const;
  const done = (reply: FastifyReply, path: string, code: NoticeCode) =>
    reply.redirect(`${path}${path.includes('?') ? '&' : '?'}done=${code}`, 303);

  // ---------------------------------------------------------------- scope and blocklist
  type ScopeQuery = { list: ScopeListName; page: number; done?: string };
  app.get<{ Querystring: ScopeQuery }>(
    '/ui/admin/scope',
    { schema: { ...hidden, querystring: { type: 'object', properties: { ...listQuery, ...pageQuery } } }, ...get },
    async (req, reply) =>
      sendPage(
        reply,
        200,
        req.query.list === 'scope' ? 'Scope' : 'Blocklist',
        'scope',
        await renderScopePage(coordinator, req.query, context(req, { notice: noticeOf(req.query.done) })),
      ),
  );

  app.get<{ Querystring: { list: ScopeListName } }>(
    '/ui/admin/scope/export',
    { schema: { ...hidden, querystring: { type: 'object', properties: listQuery } }, ...get },
    async (req, reply) => {
      const listing = await coordinator.store.listScope(req.query.list);
      return reply
        .type('text/plain; charset=utf-8')
        .header('content-disposition', `attachment; filename="portbandit-${req.query.list}.txt"`)
        .send(formatScopeFile(listing.entries));
    },
  );

  /** Run a scope form's change; on bad input show the page again with the message (status 400). */
  async function scopeChange(
    req: FastifyRequest<{ Querystring: { list: ScopeListName } }>,
    reply: FastifyReply,
    change: () => Promise<unknown>,
    code: NoticeCode,
    keep: { range?: string; tags?: string; text?: string } = {},
  ) {
    try {
      await change();
    } catch (error) {
      const failed = formError(error);
      if (failed === undefined) throw error;
      return sendPage(
        reply,
        failed.status,
        'Scope',
        'scope',
        await renderScopePage(coordinator, { list: req.query.list, page: 1, ...keep }, context(req, { error: failed.message })),
      );
    }
    return done(reply, `/ui/admin/scope?list=${req.query.list}`, code);
  }
  const listOnly = { schema: { ...hidden, querystring: { type: 'object', properties: listQuery } }, ...post };

  app.post<{ Querystring: { list: ScopeListName }; Body: FormBody }>('/ui/admin/scope/add', listOnly, async (req, reply) => {
    const range = field(req.body, 'range', 260).trim();
    const tags = field(req.body, 'tags', 600);
    return scopeChange(
      req,
      reply,
      async () => {
        if (range === '') throw new PortbanditError('PB_ERR_FORM_FIELD', 'enter an address, CIDR or first-last range', { where: 'range' });
        const line = normalizeScopeLine(
          range,
          tags.split(/[\s,]+/).filter((t) => t !== ''),
          'range',
        );
        await actions.addScope(await actor(req), req.query.list, [line]);
      },
      'scope-added',
      { range, tags },
    );
  });

  app.post<{ Querystring: { list: ScopeListName }; Body: FormBody }>('/ui/admin/scope/remove', listOnly, async (req, reply) =>
    scopeChange(
      req,
      reply,
      async () => {
        const ranges = linesField(req.body, 'ranges');
        if (ranges.length === 0) throw new PortbanditError('PB_ERR_FORM_FIELD', 'enter at least one range to remove', { where: 'ranges' });
        const { removed } = await actions.removeScope(await actor(req), req.query.list, ranges);
        if (removed === 0)
          throw new PortbanditError('PB_ERR_NOT_FOUND', `none of ${ranges.join(', ')} is an entry of the ${req.query.list}`, {
            where: 'ranges',
          });
      },
      'scope-removed',
    ),
  );

  app.post<{ Querystring: { list: ScopeListName }; Body: FormBody }>('/ui/admin/scope/import', listOnly, async (req, reply) => {
    const file = field(req.body, 'file', UPLOAD_LIMIT_BYTES);
    const text = field(req.body, 'text', UPLOAD_LIMIT_BYTES);
    return scopeChange(
      req,
      reply,
      async () => {
        const source = file.trim() !== '' ? { text: file, name: 'file' } : { text, name: 'text' };
        if (source.text.trim() === '')
          throw new PortbanditError('PB_ERR_FORM_FIELD', 'choose a file or paste lines to import', { where: 'file' });
        const lines = parseScopeFile(source.text, source.name);
        await actions.importScope(await actor(req), req.query.list, lines, checkboxField(req.body, 'replace'));
      },
      'scope-imported',
      // Pasted text comes back for correction; a file is chosen again.
      { text: text.length <= 65_536 ? text : '' },
    );
  });

  // ---------------------------------------------------------------- policies
  app.get<{ Querystring: { tag?: string; done?: string } }>(
    '/ui/admin/policies',
    {
      schema: { ...hidden, querystring: { type: 'object', properties: { tag: { type: 'string', maxLength: 64 }, done: pageQuery.done } } },
      ...get,
    },
    async (req, reply) =>
      sendPage(
        reply,
        200,
        'Policies',
        'policies',
        renderPoliciesPage(
          coordinator,
          { ...(req.query.tag !== undefined ? { tag: req.query.tag } : {}) },
          context(req, { notice: noticeOf(req.query.done) }),
        ),
      ),
  );

  const policyFailure = (req: FastifyRequest, reply: FastifyReply, error: unknown, posted: FormBody | undefined) => {
    const failed = formError(error);
    if (failed === undefined) throw error;
    const tag = field(posted, 'tag', 64);
    return sendPage(
      reply,
      failed.status,
      'Policies',
      'policies',
      renderPoliciesPage(coordinator, { tag, ...(posted !== undefined ? { posted } : {}) }, context(req, { error: failed.message })),
    );
  };

  app.post<{ Body: FormBody }>('/ui/admin/policies', { schema: hidden, ...post }, async (req, reply) => {
    let key: string;
    try {
      key = policyKeyField(field(req.body, 'tag', 64));
      await actions.setPolicy(await actor(req), key, policyFromForm(coordinator, key, req.body));
    } catch (error) {
      return policyFailure(req, reply, error, req.body);
    }
    return done(reply, `/ui/admin/policies?tag=${encodeURIComponent(key === '' ? '_default' : key)}`, 'policy-saved');
  });

  app.post<{ Body: FormBody }>('/ui/admin/policies/services', { schema: hidden, ...post }, async (req, reply) => {
    let key: string;
    try {
      key = policyKeyField(field(req.body, 'tag', 64));
      const text = field(req.body, 'file', UPLOAD_LIMIT_BYTES);
      if (text.trim() === '')
        throw new PortbanditError('PB_ERR_FORM_FIELD', 'choose a services file (lines "name port/proto")', { where: 'file' });
      await actions.uploadServices(await actor(req), key, text, 'services file');
    } catch (error) {
      return policyFailure(req, reply, error, undefined);
    }
    return done(reply, `/ui/admin/policies?tag=${encodeURIComponent(key === '' ? '_default' : key)}`, 'services-uploaded');
  });

  app.post<{ Body: FormBody }>('/ui/admin/policies/delete', { schema: hidden, ...post }, async (req, reply) => {
    try {
      const key = policyKeyField(field(req.body, 'tag', 64));
      if (!(await actions.deletePolicy(await actor(req), key)))
        throw new PortbanditError('PB_ERR_NOT_FOUND', `no policy for tag "${key}"`, { where: 'tag' });
    } catch (error) {
      return policyFailure(req, reply, error, undefined);
    }
    return done(reply, '/ui/admin/policies', 'policy-deleted');
  });

  // ---------------------------------------------------------------- agents and admin tokens
  app.get<{ Querystring: { done?: string } }>(
    '/ui/admin/agents',
    { schema: { ...hidden, querystring: { type: 'object', properties: { done: pageQuery.done } } }, ...get },
    async (req, reply) =>
      sendPage(
        reply,
        200,
        'Agents and tokens',
        'agents',
        await renderAgentsPage(coordinator, context(req, { notice: noticeOf(req.query.done) })),
      ),
  );

  /** A token's name from the form: 1-64 characters, as the API's schema says. */
  const nameOf = (body: FormBody): string => {
    const name = field(body, 'name', 64).trim();
    if (name === '') throw new PortbanditError('PB_ERR_FORM_FIELD', 'enter a name (1-64 characters)', { where: 'name' });
    return name;
  };
  /** Group names from a form field ("internal, external" or one per space; blank = none). */
  const groupsOf = (body: FormBody): string[] => {
    const text = field(body, 'groups', 4160).trim();
    return text === '' ? [] : parseGroupList(text.split(/[\s,]+/u).join(','), 'groups');
  };
  const agentsFailure = async (req: FastifyRequest, reply: FastifyReply, error: unknown, form?: { name: string; groups: string }) => {
    const failed = formError(error);
    if (failed === undefined) throw error;
    return sendPage(
      reply,
      failed.status,
      'Agents and tokens',
      'agents',
      await renderAgentsPage(coordinator, context(req, { error: failed.message }), undefined, form),
    );
  };

  /** Created tokens are shown on the response itself (no redirect: the token must not reach a URL or a later page). */
  const create = (kind: CreatedToken['kind']) => async (req: FastifyRequest<{ Body: FormBody }>, reply: FastifyReply) => {
    let created: CreatedToken;
    try {
      const name = nameOf(req.body);
      if (kind === 'agent') {
        const made = await actions.createAgent(await actor(req), name, groupsOf(req.body));
        created = { kind, id: made.id, name: made.name, token: made.token, groups: made.groups };
      } else {
        const made = await actions.createAdminToken(await actor(req), name);
        created = { kind, id: made.id, name: made.name, token: made.token };
      }
    } catch (error) {
      // The typed name and groups come back for correction (never a token: none was made).
      return agentsFailure(
        req,
        reply,
        error,
        kind === 'agent' ? { name: field(req.body, 'name', 64), groups: field(req.body, 'groups', 4160) } : undefined,
      );
    }
    return sendPage(reply, 200, 'Agents and tokens', 'agents', await renderAgentsPage(coordinator, context(req), created));
  };
  app.post<{ Body: FormBody }>('/ui/admin/agents', { schema: hidden, ...post }, create('agent'));
  app.post<{ Body: FormBody }>('/ui/admin/tokens', { schema: hidden, ...post }, create('admin'));

  app.post<{ Body: FormBody }>('/ui/admin/agents/groups', { schema: hidden, ...post }, async (req, reply) => {
    try {
      const id = field(req.body, 'id', 64);
      await actions.setAgentGroups(await actor(req), id, groupsOf(req.body));
    } catch (error) {
      return agentsFailure(req, reply, error);
    }
    return done(reply, '/ui/admin/agents', 'agent-groups-saved');
  });

  app.post<{ Body: FormBody }>('/ui/admin/agents/delete', { schema: hidden, ...post }, async (req, reply) => {
    try {
      const id = field(req.body, 'id', 64);
      if (!(await actions.deleteAgent(await actor(req), id)).deleted)
        throw new PortbanditError('PB_ERR_NOT_FOUND', `no agent ${JSON.stringify(id)}`, { where: 'id' });
    } catch (error) {
      return agentsFailure(req, reply, error);
    }
    return done(reply, '/ui/admin/agents', 'agent-removed');
  });

  app.post<{ Body: FormBody }>('/ui/admin/tokens/delete', { schema: hidden, ...post }, async (req, reply) => {
    let own = false;
    try {
      const id = field(req.body, 'id', 64);
      const who = await actor(req);
      if (!(await actions.revokeAdminToken(who, id)))
        throw new PortbanditError('PB_ERR_NOT_FOUND', `no admin token ${JSON.stringify(id)}`, { where: 'id' });
      own = who.id === id;
    } catch (error) {
      return agentsFailure(req, reply, error);
    }
    if (own) {
      // This browser's token no longer exists: sign it out.
      reply.header('set-cookie', clearedSessionCookie());
      return reply.redirect('/ui/login', 303);
    }
    return done(reply, '/ui/admin/agents', 'token-revoked');
  });

  // ---------------------------------------------------------------- retention
  app.get<{ Querystring: { done?: string } }>(
    '/ui/admin/retention',
    { schema: { ...hidden, querystring: { type: 'object', properties: { done: pageQuery.done } } }, ...get },
    async (req, reply) =>
      sendPage(
        reply,
        200,
        'Retention',
        'retention',
        await renderRetentionPage(coordinator, await retention.run({ dryRun: true }), context(req, { notice: noticeOf(req.query.done) })),
      ),
  );

  app.post<{ Body: FormBody }>('/ui/admin/retention/run', { schema: hidden, ...post }, async (req, reply) => {
    const who = await actor(req);
    const report = await retention.run({ dryRun: false });
    req.log.info({ dropped: report.dropped, kept: report.kept, hosts: report.hosts }, 'retention pass run by an admin (UI)');
    await actions.recordRetentionRun(who, report);
    return done(reply, '/ui/admin/retention', 'retention-run');
  });

  // ---------------------------------------------------------------- rescan
  app.post<{ Params: { ip: string }; Body: FormBody }>(
    '/ui/host/:ip/rescan',
    { schema: { ...hidden, params: { type: 'object', required: ['ip'], properties: { ip: { type: 'string', maxLength: 64 } } } }, ...post },
    async (req, reply) => {
      let scanning = false;
      try {
        scanning = (await actions.rescan(await actor(req), [req.params.ip])).scanning.length > 0;
      } catch (error) {
        const failed = formError(error);
        if (failed === undefined) throw error;
        return sendPage(
          reply,
          failed.status,
          `Host ${req.params.ip}`,
          'host',
          html`<h1>Host <span class="mono">${req.params.ip}</span></h1><div class="error" role="alert"><strong>Nothing was queued.</strong> ${failed.message}</div><p><a href="${hostHref(req.params.ip)}">Back to the host</a></p>`,
        );
      }
      return done(reply, hostHref(req.params.ip), scanning ? 'rescan-scanning' : 'rescan-queued');
    },
  );

  // ---------------------------------------------------------------- events and audit
  app.get<{ Querystring: { q: string; page: number } }>(
    '/ui/events',
    {
      schema: {
        ...hidden,
        querystring: { type: 'object', properties: { q: { type: 'string', maxLength: 4096, default: '' }, page: pageQuery.page } },
      },
      ...get,
    },
    async (req, reply) => {
      const rendered = await renderEvents(coordinator, req.query);
      return sendPage(reply, rendered.status, req.query.q === '' ? 'Events' : `Events: ${req.query.q}`, 'events', rendered.body);
    },
  );

  app.get<{ Querystring: { page: number } }>(
    '/ui/audit',
    { schema: { ...hidden, querystring: { type: 'object', properties: { page: pageQuery.page } } }, ...get },
    async (req, reply) => sendPage(reply, 200, 'Audit log', 'audit', await renderAuditPage(coordinator, req.query)),
  );

  // ---------------------------------------------------------------- alerts
  app.get<{ Querystring: { page: number; done?: string } }>(
    '/ui/alerts',
    { schema: { ...hidden, querystring: { type: 'object', properties: pageQuery } }, ...get },
    async (req, reply) =>
      sendPage(
        reply,
        200,
        'Alerts',
        'alerts',
        await renderAlertsPage(coordinator, { page: req.query.page }, context(req, { notice: noticeOf(req.query.done) })),
      ),
  );

  const alertsFailure = async (req: FastifyRequest, reply: FastifyReply, error: unknown, form?: AlertForm) => {
    const failed = formError(error);
    if (failed === undefined) throw error;
    return sendPage(
      reply,
      failed.status,
      'Alerts',
      'alerts',
      await renderAlertsPage(coordinator, { page: 1, ...(form ? { form } : {}) }, context(req, { error: failed.message })),
    );
  };

  app.post<{ Body: FormBody }>('/ui/alerts', { schema: hidden, ...post }, async (req, reply) => {
    const form = {
      name: field(req.body, 'name', 64).trim(),
      query: field(req.body, 'query', 4096).trim(),
      url: field(req.body, 'url', 2048).trim(),
    };
    try {
      await actions.addAlertRule(await actor(req), form);
    } catch (error) {
      return alertsFailure(req, reply, error, form);
    }
    return done(reply, '/ui/alerts', 'alert-added');
  });

  app.post<{ Body: FormBody }>('/ui/alerts/delete', { schema: hidden, ...post }, async (req, reply) => {
    try {
      await actions.removeAlertRule(await actor(req), field(req.body, 'name', 64));
    } catch (error) {
      return alertsFailure(req, reply, error);
    }
    return done(reply, '/ui/alerts', 'alert-removed');
  });
}

/** The host page's rescan button (and the outcome of the last one). */
export function rescanControls(ctx: FormContext): (ip: string) => SafeHtml {
  return (ip) =>
    html`${ctx.notice !== undefined ? html`<div class="notice" role="status">${ctx.notice}</div>` : ''}${ctx.error !== undefined ? html`<div class="error" role="alert"><strong>Nothing was queued.</strong> ${ctx.error}</div>` : ''}
<form method="post" action="${hostHref(ip)}/rescan" class="inline"><input type="hidden" name="${CSRF_FIELD}" value="${ctx.csrf}"><button type="submit">Rescan now</button>
<span class="muted">Queues a manual visit, served before the cycle (the host must still be in scope).</span></form>`;
}
