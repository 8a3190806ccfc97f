export { uiRoutes, type UiOptions } from './routes.js';
export { html, escapeHtml, trustedHtml, SafeHtml, type HtmlValue } from './html.js';
export { CONTENT_SECURITY_POLICY } from './layout.js';
export { SESSION_COOKIE } from './ui-auth.js';
