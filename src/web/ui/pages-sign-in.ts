// The sign-in steps in the browser (docs/web-ui.md, docs/mfa.md): directory
// password, then a code from the authenticator app (or a recovery code) for
// people enrolled in TOTP, or the enrolment itself for people who must use
// it and have not enrolled; sign-out; the keep-alive the idle notice calls.
// The session and every check live in identity/ (WebSessions); this module
// only maps forms to it. The password form has its own anti-forgery token
// (a cookie and a field that must match), as no session exists yet.

import type { Context } from 'koa';
import { randomBytes } from 'node:crypto';
import { VellumError, type ComponentStatus } from '../../kernel/index.ts';
import type { WebSessionView } from '../../identity/index.ts';
import { SESSION_COOKIE, sessionToken } from '../api-session.ts';
import { html, raw, type Html } from './html.ts';
import { cookie, localPath, type UiKit, type UiRoutes } from './ui.ts';

const SIGN_IN_COOKIE = '__Host-vellum-sign-in';
const COOKIE_ATTRIBUTES = 'Path=/; Secure; HttpOnly; SameSite=Strict';
const MAX_LOGIN = 256;
const MAX_PASSWORD = 1024;

/** Where to go after signing in: a local path from ?next= or the form, else the dashboard. */
function nextOf(value: string | null | undefined): string {
  return value ? localPath(value) : '/';
}

const check = (form: URLSearchParams) => ({ csrfToken: form.get('_csrf') ?? undefined, stateChanging: true });

export function addSignInPages(routes: UiRoutes, kit: UiKit): void {
  const { webSessions } = kit.options;

  routes.open('GET', '/login', async (ctx) => showSignIn(ctx, kit));

  routes.open('POST', '/login', async (ctx, form) => {
    const next = nextOf(form.get('next'));
    const login = form.get('login')?.trim() ?? '';
    const password = form.get('password') ?? '';
    try {
      if (login === '' || password === '') throw new VellumError('BAD_REQUEST', 'Enter your user name and your password.');
      if (login.length > MAX_LOGIN || password.length > MAX_PASSWORD) throw new VellumError('BAD_REQUEST', 'The user name or password is too long.');
      const formCheck = { cookie: cookie(ctx.req.headers.cookie, SIGN_IN_COOKIE), field: form.get('_sign_in') };
      const { token, session } = await webSessions.signIn(login, password, kit.originOf(ctx.req), formCheck);
      ctx.append('Set-Cookie', `${SESSION_COOKIE}=${token}; ${COOKIE_ATTRIBUTES}`);
      ctx.append('Set-Cookie', `${SIGN_IN_COOKIE}=; ${COOKIE_ATTRIBUTES}; Max-Age=0`);
      afterStep(ctx, kit, session, next);
    } catch (e) {
      // Every refusal was audited by identity/; the form comes back with the reason.
      await showSignIn(ctx, kit, { login, next, error: e });
    }
  });

  routes.open('GET', '/login/code', async (ctx) => {
    const session = await sessionOf(ctx, kit);
    if (session.state !== 'second-factor') return afterStep(ctx, kit, session, nextOf(new URLSearchParams(ctx.querystring).get('next')));
    showCode(ctx, kit, session, nextOf(new URLSearchParams(ctx.querystring).get('next')));
  });

  routes.open('POST', '/login/code', async (ctx, form) => {
    const token = tokenOf(ctx);
    const next = nextOf(form.get('next'));
    const code = form.get('code')?.replace(/\s+/g, '') ?? '';
    const recoveryCode = form.get('recoveryCode')?.trim() ?? '';
    try {
      if ((code === '') === (recoveryCode === '')) throw new VellumError('BAD_REQUEST', 'Enter the six-digit code from your authenticator app, or one recovery code.');
      const proof = code !== '' ? { code: code.slice(0, 16) } : { recoveryCode: recoveryCode.slice(0, 64) };
      await webSessions.secondFactor(token, proof, check(form), kit.originOf(ctx.req));
      kit.redirect(ctx, next, recoveryCode !== '' ? 'You signed in with a recovery code; it cannot be used again. Make new ones under Account if few are left.' : undefined);
    } catch (e) {
      if (!(e instanceof VellumError) || e.code !== 'MFA_CODE_INVALID') throw e;
      showCode(ctx, kit, await sessionOf(ctx, kit), next, e);
    }
  });

  // Enrolment: for sessions that must enrol before anything else, and for signed-in people adding a new device (Account).
  routes.open('GET', '/login/enrol', async (ctx) => {
    const session = await sessionOf(ctx, kit);
    if (session.state === 'second-factor') return afterStep(ctx, kit, session, '/');
    const required = session.state === 'enrolment';
    signInPage(ctx, kit, required ? 'Set up your second sign-in step' : 'Set up an authenticator app', html`
<p>${required ? 'Your account must use a second sign-in step: a six-digit code from an authenticator app on your phone (for example FreeOTP, Google Authenticator or Microsoft Authenticator).' : 'Connect an authenticator app. Once you confirm it, codes from your earlier app stop working.'}</p>
<form method="post" action="/login/enrol" class="stacked">
  <input type="hidden" name="_csrf" value="${session.csrfToken}">
  <button type="submit">Show the QR code</button>
</form>
${required ? cancelForm(session) : html`<p><a href="/account">Back to your account</a></p>`}`);
  });

  routes.open('POST', '/login/enrol', async (ctx, form) => {
    const token = tokenOf(ctx);
    const enrolment = await webSessions.beginEnrolment(token, check(form), kit.originOf(ctx.req));
    showEnrolment(ctx, kit, await sessionOf(ctx, kit), enrolment);
  });

  routes.open('POST', '/login/enrol/confirm', async (ctx, form) => {
    const token = tokenOf(ctx);
    const code = form.get('code')?.replace(/\s+/g, '') ?? '';
    try {
      if (code === '') throw new VellumError('MFA_CODE_INVALID', 'Enter the six-digit code your app shows now.');
      const { recoveryCodes } = await webSessions.confirmEnrolment(token, code.slice(0, 16), check(form), kit.originOf(ctx.req));
      showRecoveryCodes(ctx, kit, recoveryCodes);
    } catch (e) {
      if (!(e instanceof VellumError) || e.code !== 'MFA_CODE_INVALID') throw e;
      // A new secret: the one shown before is not kept on the page.
      const session = await sessionOf(ctx, kit);
      const enrolment = await webSessions.beginEnrolment(token, check(form), kit.originOf(ctx.req));
      showEnrolment(ctx, kit, session, enrolment, e);
    }
  });

  routes.open('POST', '/logout', async (ctx, form) => {
    const token = sessionToken(ctx.req.headers.cookie);
    if (token !== null) await webSessions.signOut(token, check(form), kit.originOf(ctx.req));
    ctx.append('Set-Cookie', `${SESSION_COOKIE}=; ${COOKIE_ATTRIBUTES}; Max-Age=0`);
    kit.redirect(ctx, '/login', 'You have signed out.');
  });

  // The idle notice's "Stay signed in": counts as activity, answers when the session now ends.
  routes.open('GET', '/session/keepalive', async (ctx) => {
    const token = tokenOf(ctx);
    const origin = kit.originOf(ctx.req);
    const signIn = await webSessions.resume(token, { csrfToken: undefined, stateChanging: false }, origin);
    const session = await webSessions.view(token, { ...origin, session: signIn.session });
    ctx.type = 'json';
    ctx.body = { expiresAt: session.expiresAt };
  });
}

function tokenOf(ctx: Context): string {
  const token = sessionToken(ctx.req.headers.cookie);
  if (token === null) throw new VellumError('SESSION_EXPIRED', 'Sign in to continue.');
  return token;
}

async function sessionOf(ctx: Context, kit: UiKit): Promise<WebSessionView> {
  return kit.options.webSessions.view(tokenOf(ctx), kit.originOf(ctx.req));
}

/** After a step: the next step the session needs, or where the person was going. */
function afterStep(ctx: Context, kit: UiKit, session: WebSessionView, next: string): void {
  const query = next === '/' ? '' : `?next=${encodeURIComponent(next)}`;
  if (session.state === 'second-factor') kit.redirect(ctx, `/login/code${query}`);
  else if (session.state === 'enrolment') kit.redirect(ctx, `/login/enrol${query}`);
  else kit.redirect(ctx, next);
}

/** A page of the sign-in steps: the layout without navigation. */
function signInPage(ctx: Context, kit: UiKit, title: string, body: Html, problem?: unknown, status?: number): void {
  const error = problem instanceof VellumError ? { code: problem.code, message: problem.message, status: problem.status } : undefined;
  if (problem !== undefined && error === undefined) throw problem;
  kit.render(ctx, null, { title, body: html`<div class="sign-in"><div class="card">${body}</div></div>`, ...(status === undefined ? {} : { status }) }, error);
  if (error?.status === 429) ctx.set('Retry-After', '60');
}

/** "Cancel": signs the half-finished session out. */
function cancelForm(session: WebSessionView): Html {
  return html`<form method="post" action="/logout"><input type="hidden" name="_csrf" value="${session.csrfToken}"><button type="submit" class="link">Cancel and sign out</button></form>`;
}

/** The password form (also the page at / for people not signed in), with how to connect a network drive. */
export async function showSignIn(ctx: Context, kit: UiKit, values: { login?: string; next?: string; error?: unknown } = {}): Promise<void> {
  const query = new URLSearchParams(ctx.querystring);
  const next = values.next ?? nextOf(query.get('next'));
  const formToken = randomBytes(32).toString('base64url');
  ctx.append('Set-Cookie', `${SIGN_IN_COOKIE}=${formToken}; ${COOKIE_ATTRIBUTES}; Max-Age=3600`);
  const { options } = kit;
  const davUrl = `${options.externalUrl ?? `${ctx.protocol}://${ctx.host}`}${options.davMount}/`;
  const components = await options.health().catch((): Record<string, ComponentStatus> => ({}));
  const down = Object.entries(components).filter(([, status]) => !status.ok).map(([name]) => name);
  const ended = query.get('ended') === '1' && values.error === undefined;
  signInPage(ctx, kit, `Sign in to ${options.product.name}`, html`
${ended ? html`<p class="warning" role="status">Your session has ended (after ${options.idleMinutes} minutes without activity, at its time limit, or because it was signed out). Sign in again to continue.</p>` : ''}
<form method="post" action="/login" class="stacked">
  <input type="hidden" name="_sign_in" value="${formToken}">
  <input type="hidden" name="next" value="${next}">
  <div><label for="login">User name</label><input id="login" name="login" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required value="${values.login ?? ''}"${values.login ? '' : html` autofocus`}></div>
  <div><label for="password">Password <span class="hint">Your directory (network) password</span></label><input id="password" name="password" type="password" autocomplete="current-password" required${values.login ? html` autofocus` : ''}></div>
  <div><button type="submit">Sign in</button></div>
</form>
<h2>Network drive</h2>
<p>Connect a network drive to <code>${davUrl}</code> and sign in with your directory account (or an app password, made under Account).</p>
<p>${down.length === 0 ? html`All services are running.` : html`<span class="badge bad">Not all services are running</span> ${down.join(', ')}`} <a href="/healthz">Service status</a></p>`,
  values.error, values.error === undefined ? 200 : undefined);
}

function showCode(ctx: Context, kit: UiKit, session: WebSessionView, next: string, error?: unknown): void {
  signInPage(ctx, kit, 'Second sign-in step', html`
<p>Signed in as ${session.person.displayName}. Enter the six-digit code your authenticator app shows for ${kit.options.product.name}.</p>
<form method="post" action="/login/code" class="stacked">
  <input type="hidden" name="_csrf" value="${session.csrfToken}">
  <input type="hidden" name="next" value="${next}">
  <div><label for="code">Code</label><input id="code" name="code" class="code" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]{6,8}" maxlength="8" autofocus></div>
  <div><button type="submit">Continue</button></div>
  <details><summary>Lost your phone? Use a recovery code</summary>
    <div><label for="recoveryCode">Recovery code</label><input id="recoveryCode" name="recoveryCode" type="text" autocomplete="off" spellcheck="false"></div>
  </details>
</form>
${cancelForm(session)}`, error);
}

function showEnrolment(ctx: Context, kit: UiKit, session: WebSessionView, enrolment: { uri: string; qr: string; secret: string }, error?: unknown): void {
  signInPage(ctx, kit, 'Scan the QR code', html`
<ol>
  <li>Open your authenticator app and add an account by scanning this code.</li>
  <li>Enter the six-digit code the app then shows.</li>
</ol>
<div class="qr" role="img" aria-label="QR code for your authenticator app">${raw(enrolment.qr)}</div>
<p>Cannot scan? Enter this key in the app by hand (time-based, 6 digits, 30 seconds):</p>
<p class="secret" id="secret">${enrolment.secret.replace(/(.{4})/g, '$1 ').trim()}</p>
<form method="post" action="/login/enrol/confirm" class="stacked">
  <input type="hidden" name="_csrf" value="${session.csrfToken}">
  <div><label for="code">Code from the app</label><input id="code" name="code" class="code" type="text" inputmode="numeric" autocomplete="one-time-code" maxlength="8" required autofocus></div>
  <div><button type="submit">Confirm</button></div>
</form>
${session.state === 'enrolment' ? cancelForm(session) : html`<p><a href="/account">Cancel</a></p>`}`, error);
}

function showRecoveryCodes(ctx: Context, kit: UiKit, codes: readonly string[]): void {
  signInPage(ctx, kit, 'Your recovery codes', html`
<p class="notice" role="status">Your authenticator app is set up.</p>
<p>Keep these recovery codes somewhere safe (printed, or in a password manager). Each signs you in once if you lose your phone. <strong>They are shown only now.</strong></p>
<ol class="codes" id="recovery-codes">${codes.map((code) => html`<li>${code}</li>`)}</ol>
<p><a class="button" href="/">Continue</a></p>`);
}
