import { type SafeHtml, html } from './html.js';

/** Only paths inside the UI are followed after sign-in (no open redirect). */
export function safeNext(next: string | undefined): string {
  // Control characters and backslashes never reach a Location header.
  return next !== undefined &&
    /^\/ui(?:[/?#]|$)/.test(next) &&
    ![...next].some((c) => c.charCodeAt(0) < 0x20 || c === '\u007f' || c === '\\')
    ? next
    : '/ui';
}

/** The sign-in form: the operator pastes an admin token, kept in an HttpOnly cookie. */
export function renderLogin(options: { next: string; message?: string }): SafeHtml {
  return html`<div class="login panel"><h1>Sign in</h1>
<p>The UI shows what the results API shows, so it needs an <strong>admin token</strong> (<span class="mono">pbk_…</span>).
Create one on the coordinator's machine with <span class="mono">portbandit token create --admin NAME</span>.</p>
${options.message !== undefined ? html`<div class="error" role="alert">${options.message}</div>` : ''}
<form method="post" action="/ui/login">
<label for="token">Admin token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required placeholder="pbk_..." autofocus>
<input type="hidden" name="next" value="${options.next}">
<button type="submit">Sign in</button></form>
<p class="muted">The token is kept in an HttpOnly, SameSite=Strict cookie for this browser session. Clients may send <span class="mono">Authorization: Bearer</span> instead.</p></div>`;
}
