import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isPortbanditError } from '../../core/index.js';
import type { SearchView } from '../../store/index.js';
import type { Coordinator } from '../coordinator.js';
import type { RetentionRunner } from '../retention-runner.js';
import { UPLOAD_LIMIT_BYTES, registerAdminUiRoutes, rescanControls } from './admin-routes.js';
import { csrfTokenFor, loadCsrfKey } from './csrf.js';
import { renderDashboard } from './dashboard-page.js';
import { noticeOf } from './forms.js';
import { renderHost } from './host-page.js';
import { type HtmlValue, html } from './html.js';
import { CONTENT_SECURITY_POLICY, type Section, renderPage } from './layout.js';
import { renderLogin, safeNext } from './login-page.js';
import { renderSearch } from './search-page.js';
import { renderGallery } from './screenshots-page.js';
import { screenshotParams, sendScreenshot } from '../routes/screenshots.js';
import { authenticateUi, clearedSessionCookie, presentedToken, sessionCookie } from './ui-auth.js';

/** Options of the UI plugin. */
export interface UiOptions {
  readonly coordinator: Coordinator;
  /** History retention (the retention page's dry run and pass). */
  readonly retention: RetentionRunner;
}

const hidden = { hide: true, tags: ['ui'] } as const;

function sendPage(
  reply: FastifyReply,
  status: number,
  title: string,
  section: Section,
  body: HtmlValue,
  options: { query?: string; signedIn?: boolean } = {},
): FastifyReply {
  const page = renderPage(
    { title, section, signedIn: options.signedIn ?? true, ...(options.query !== undefined ? { query: options.query } : {}) },
    body,
  );
  return reply.status(status).type('text/html; charset=utf-8').send(page.value);
}

const isSecure = (req: FastifyRequest): boolean => req.protocol === 'https';

/**
 * The operators' web UI under /ui: dashboard, search, host pages, events, and the admin pages
 * (scope, policies, agents and tokens, alerts, audit log). Server-rendered HTML without scripts;
 * every page needs an admin token, from the sign-in cookie or the Authorization header, like the
 * admin API it mirrors; every form that changes something carries a CSRF token.
 */
export async function uiRoutes(app: FastifyInstance, options: UiOptions): Promise<void> {
  const { coordinator } = options;
  const csrfKey = await loadCsrfKey(coordinator.store, coordinator.now());

  // Forms post url-encoded (up to 1 MiB: a bulk remove) or, with a file, multipart.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 1024 * 1024 }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  await app.register(multipart, {
    attachFieldsToBody: 'keyValues',
    limits: { fileSize: UPLOAD_LIMIT_BYTES, fieldSize: UPLOAD_LIMIT_BYTES, files: 1, fields: 40, parts: 42 },
  });

  app.addHook('onSend', async (_req, reply, payload) => {
    reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('cache-control', 'no-store');
    return payload;
  });

  // Pages, not JSON, for errors a person sees (unknown host, bad address, bad parameter).
  app.setErrorHandler((error, req, reply) => {
    const err = error as { statusCode?: number; message: string; validation?: unknown };
    const status = isPortbanditError(error)
      ? error.statusCode
      : err.validation
        ? 400
        : err.statusCode && err.statusCode >= 400
          ? err.statusCode
          : 500;
    if (status >= 500) req.log.error({ err: error }, 'ui request failed');
    const message = status >= 500 ? 'internal error (see the server log)' : err.message;
    return sendPage(
      reply,
      status,
      'Error',
      'dashboard',
      html`<h1>${status === 404 ? 'Not found' : 'Error'}</h1><div class="error" role="alert">${message}</div><p><a href="/ui">Back to the dashboard</a></p>`,
    );
  });

  // The UI is rate-limited like the API: only requests without a valid admin token count.
  const signedInOnly = { rateLimit: { allowList: async (req: FastifyRequest) => (await authenticateUi(req, coordinator)).ok } };

  /** preParsing (after the rate limiter, before any parsing or validation): anonymous browsers go to the sign-in form; bad or wrong tokens get 401/403. */
  const requireAdmin = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const auth = await authenticateUi(req, coordinator);
    if (auth.ok) return;
    coordinator.metrics.authFailures.inc({ kind: auth.reason });
    if (auth.reason === 'missing') {
      await reply.redirect(`/ui/login?${new URLSearchParams({ next: req.url }).toString()}`, 303);
      return;
    }
    const status = auth.reason === 'wrong-role' ? 403 : 401;
    const message =
      auth.reason === 'wrong-role'
        ? 'That is an agent token; the UI needs an admin token.'
        : 'The token is not valid (revoked or mistyped). Sign in again.';
    reply.header('set-cookie', clearedSessionCookie());
    await sendPage(reply, status, 'Sign in', 'login', renderLogin({ next: safeNext(req.url), message }), { signedIn: false });
  };

  app.get('/', { schema: hidden, config: { rateLimit: false } }, async (_req, reply) => reply.redirect('/ui', 302));

  app.get<{ Querystring: { next?: string } }>(
    '/ui/login',
    {
      schema: { ...hidden, querystring: { type: 'object', properties: { next: { type: 'string', maxLength: 2048 } } } },
      config: { rateLimit: false },
    },
    async (req, reply) => sendPage(reply, 200, 'Sign in', 'login', renderLogin({ next: safeNext(req.query.next) }), { signedIn: false }),
  );

  app.post<{ Body: { token: string; next?: string } }>(
    '/ui/login',
    {
      schema: {
        ...hidden,
        body: {
          type: 'object',
          required: ['token'],
          properties: { token: { type: 'string', maxLength: 256 }, next: { type: 'string', maxLength: 2048 } },
        },
      },
      // Every sign-in attempt counts against the per-address limit: this form is a token oracle.
      config: { rateLimit: { allowList: async () => false } },
    },
    async (req, reply) => {
      const token = req.body.token.trim();
      const next = safeNext(req.body.next);
      // Check the typed token, not whatever header or cookie the request also carries.
      const probe = { headers: { authorization: `Bearer ${token}` } } as unknown as FastifyRequest;
      const auth = token === '' ? ({ ok: false, reason: 'missing' } as const) : await authenticateUi(probe, coordinator);
      if (!auth.ok) {
        coordinator.metrics.authFailures.inc({ kind: auth.reason });
        const message =
          auth.reason === 'wrong-role' ? 'That is an agent token; the UI needs an admin token.' : 'That token is not a valid admin token.';
        return sendPage(reply, 401, 'Sign in', 'login', renderLogin({ next, message }), { signedIn: false });
      }
      reply.header('set-cookie', sessionCookie(token, isSecure(req)));
      return reply.redirect(next, 303);
    },
  );

  app.post('/ui/logout', { schema: hidden, config: { rateLimit: false } }, async (_req, reply) => {
    reply.header('set-cookie', clearedSessionCookie());
    return reply.redirect('/ui/login', 303);
  });

  app.get('/ui', { schema: hidden, preParsing: requireAdmin, config: signedInOnly }, async (_req, reply) =>
    sendPage(reply, 200, 'Dashboard', 'dashboard', await renderDashboard(coordinator)),
  );

  app.get<{ Querystring: { q: string; page: number; view: SearchView } }>(
    '/ui/search',
    {
      schema: {
        ...hidden,
        querystring: {
          type: 'object',
          properties: {
            q: { type: 'string', maxLength: 4096, default: '' },
            page: { type: 'integer', minimum: 1, maximum: 100_000, default: 1 },
            view: { type: 'string', enum: ['latest', 'history'], default: 'latest' },
          },
        },
      },
      preParsing: requireAdmin,
      config: signedInOnly,
    },
    async (req, reply) => {
      const rendered = await renderSearch(coordinator, req.query);
      return sendPage(reply, rendered.status, req.query.q === '' ? 'Search' : `Search: ${req.query.q}`, 'search', rendered.body, {
        query: req.query.q,
      });
    },
  );

  app.get<{ Params: { ip: string }; Querystring: { scan?: string; from?: string; to?: string; done?: string } }>(
    '/ui/host/:ip',
    {
      schema: {
        ...hidden,
        params: { type: 'object', required: ['ip'], properties: { ip: { type: 'string', maxLength: 64 } } },
        querystring: {
          type: 'object',
          properties: {
            scan: { type: 'string', maxLength: 64 },
            from: { type: 'string', maxLength: 64 },
            to: { type: 'string', maxLength: 64 },
            done: { type: 'string', maxLength: 40 },
          },
        },
      },
      preParsing: requireAdmin,
      config: signedInOnly,
    },
    async (req, reply) => {
      const { done, ...shown } = req.query;
      const controls = rescanControls({
        csrf: csrfTokenFor(csrfKey, presentedToken(req) ?? ''),
        now: coordinator.now(),
        ...(noticeOf(done) !== undefined ? { notice: noticeOf(done)! } : {}),
      });
      const body = await renderHost(coordinator, { ip: req.params.ip, ...shown }, controls);
      return sendPage(reply, 200, `Host ${req.params.ip}`, 'host', body);
    },
  );

  app.get<{ Querystring: { page: number } }>(
    '/ui/screenshots',
    {
      schema: {
        ...hidden,
        querystring: { type: 'object', properties: { page: { type: 'integer', minimum: 1, maximum: 1_000_000, default: 1 } } },
      },
      preParsing: requireAdmin,
      config: signedInOnly,
    },
    async (req, reply) => sendPage(reply, 200, 'Screenshots', 'screenshots', renderGallery(coordinator, req.query.page)),
  );

  // The images of host pages and the gallery: the API's image, authenticated by the UI cookie.
  app.get<{ Params: { ip: string; scanId: string; port: number } }>(
    '/ui/host/:ip/screenshots/:scanId/:port',
    { schema: { ...hidden, params: screenshotParams }, preParsing: requireAdmin, config: signedInOnly },
    async (req, reply) => sendScreenshot(reply, coordinator, req.params),
  );

  // Browsers cannot add an Authorization header to a link, so exports go through the UI and
  // are answered by the API's own search route with the operator's token.
  app.get<{ Querystring: { q: string; view: SearchView; format: 'json' | 'ndjson' | 'hosts' } }>(
    '/ui/export',
    {
      schema: {
        ...hidden,
        querystring: {
          type: 'object',
          properties: {
            q: { type: 'string', maxLength: 4096, default: '' },
            view: { type: 'string', enum: ['latest', 'history'], default: 'latest' },
            format: { type: 'string', enum: ['json', 'ndjson', 'hosts'], default: 'ndjson' },
          },
        },
      },
      preParsing: requireAdmin,
      config: signedInOnly,
    },
    async (req, reply) => {
      const { q, view, format } = req.query;
      const params = new URLSearchParams({ q, view, format, ...(format === 'json' ? { limit: '1000' } : {}) });
      const res = await app.inject({
        method: 'GET',
        url: `/api/v1/search?${params.toString()}`,
        headers: { authorization: `Bearer ${presentedToken(req) ?? ''}` },
      });
      const ext = format === 'hosts' ? 'txt' : format;
      reply.status(res.statusCode).header('content-type', res.headers['content-type'] ?? 'application/octet-stream');
      if (res.statusCode === 200) reply.header('content-disposition', `attachment; filename="portbandit-search.${ext}"`);
      return reply.send(res.rawPayload);
    },
  );

  registerAdminUiRoutes(app, { coordinator, retention: options.retention, csrfKey, requireAdmin, signedInOnly, sendPage });
}
