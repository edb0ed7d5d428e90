// The web UI's core: server-rendered pages for people in a browser (docs/web-ui.md).
//
// - Every page but the sign-in steps needs a complete web session (the cookie
//   the API also accepts); every POST carries the session's CSRF token in the
//   form field `_csrf`, checked by identity/ before anything else happens.
// - Pages do their work through the same facades as WebDAV and the API
//   (Session, GroupAdmin, AuditReview, AppPasswords, WebSessions), so they get
//   the same access checks and the same audit entries.
// - Errors become pages here only (sendUiError): the catalog's status and
//   message; a form that fails is shown again with the problem above it.
// - Successful changes answer 303 to a page (Post/Redirect/Get) with a one-time
//   notice in a signed cookie; secrets shown once (app passwords, recovery
//   codes) are rendered in the POST's own answer and never stored.

import Router, { type RouterMiddleware } from '@koa/router';
import type { Context } from 'koa';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { asVellumError, VellumError, type ComponentStatus, type Principal, type RequestOrigin } from '../../kernel/index.ts';
import type { AppPasswords, Authenticator, Lockout, WebSessions, WebSessionView } from '../../identity/index.ts';
import type { Session } from '../../session/index.ts';
import { lingerThenDrop } from '../../session/index.ts';
import type { AuditReviewFor } from '../api-audit.ts';
import type { GroupAdminFor } from '../api-groups.ts';
import { sessionToken } from '../api-session.ts';
import { hasBody, readText } from '../request-body.ts';
import { serveAsset } from './assets.ts';
import { html, type Html } from './html.ts';
import { errorPage, layout, type Chrome } from './layout.ts';
import { addSignInPages, showSignIn } from './pages-sign-in.ts';
import { addDashboardPages } from './pages-dashboard.ts';
import { addStudyPages } from './pages-studies.ts';
import { addGroupPages } from './pages-groups.ts';
import { addFilePages } from './pages-files.ts';
import { addAuditPages } from './pages-audit.ts';
import { addAccountPages } from './pages-account.ts';

export interface UiOptions {
  readonly product: { readonly name: string; readonly version: string };
  /** Absolute URL path of the WebDAV mount, shown on the sign-in page. */
  readonly davMount: string;
  readonly externalUrl?: string;
  readonly health: () => Promise<Record<string, ComponentStatus>>;
  readonly authenticator: Authenticator;
  readonly webSessions: WebSessions;
  readonly sessionFor: (principal: Principal, origin: RequestOrigin, reason?: string) => Session;
  /** Whether the person is a system Administrator (a member of access.administratorGroups). */
  readonly isAdministrator: (principal: Principal) => boolean;
  /** Idle limit of a web session, for the idle-timeout notice. */
  readonly idleMinutes: number;
  readonly appPasswords?: AppPasswords;
  readonly lockout?: Lockout;
  readonly groupAdminFor?: GroupAdminFor;
  readonly auditReviewFor?: AuditReviewFor;
  readonly log: (message: string, error?: unknown) => void;
}

/** The signed-in person looking at a page. */
export interface Viewer {
  readonly principal: Principal;
  /** Where the request came from, naming the web session (for every audit entry of the request). */
  readonly origin: RequestOrigin;
  readonly session: WebSessionView;
  readonly administrator: boolean;
}

/** What a page handler gets. */
export interface PageCall {
  readonly viewer: Viewer;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** The submitted form when a POST failed and its page is shown again (to fill the fields back in); empty otherwise. */
  readonly form: URLSearchParams;
  /** The content facade for this person and request; reason: the reason for change recorded with the change. */
  content(reason?: string): Session;
  readonly ctx: Context;
}

/** What a form handler gets: the page call with the submitted form (CSRF already checked). */
export interface FormCall extends PageCall {
  /** The form field `reason` (trimmed), if given: the reason for change. */
  readonly reason: string | undefined;
}

/** A page to show: rendered in the common layout. */
export interface View {
  readonly title: string;
  readonly body: Html;
  /** Which navigation entry is current ('dashboard', 'studies', 'groups', 'audit', 'account'). */
  readonly section?: string;
  readonly status?: number;
}

/** A 303 to another page, with a one-time notice shown there. */
export interface Redirect {
  readonly redirect: string;
  readonly notice?: string;
}

/** null: the handler wrote the response itself (a download). */
export type Outcome = View | Redirect | null;

export type PageHandler = (call: PageCall) => Promise<Outcome>;
export type FormHandler = (call: FormCall) => Promise<Outcome>;

/** What a problem looks like on a page shown again after a failed POST. */
export interface Problem {
  readonly code: string;
  readonly message: string;
  readonly status: number;
}

/** How a page module (pages-*.ts) adds its pages. */
export interface UiRoutes {
  /** A GET page for signed-in people. */
  page(path: string, handler: PageHandler): void;
  /**
   * A POST form for signed-in people. When it fails with a 4xx (other than
   * sign-in and CSRF problems), `showAgain` renders the form's page again with
   * the problem above it and the submitted values in call.form.
   */
  action(path: string, handler: FormHandler, showAgain?: PageHandler): void;
  /** A route that handles its own sign-in (the sign-in steps): no session required. */
  open(method: 'GET' | 'POST', path: string, handler: (ctx: Context, form: URLSearchParams) => Promise<void>): void;
}

/** Services every page module may use. */
export interface UiKit {
  readonly options: UiOptions;
  /** Writes a page in the layout (the sign-in pages, which have no Viewer, pass null). */
  render(ctx: Context, viewer: Viewer | null, view: View, problem?: Problem): void;
  /** A 303 with a one-time notice. */
  redirect(ctx: Context, to: string, notice?: string): void;
  /** The request's origin for the audit trail (protocol web). */
  originOf(req: IncomingMessage): RequestOrigin;
}

/** Largest form body (urlencoded). */
const MAX_FORM_BYTES = 64 * 1024;
const MAX_REASON = 1000;
const NOTICE_COOKIE = '__Host-vellum-notice';
const NOTICE_ATTRIBUTES = 'Path=/; Secure; HttpOnly; SameSite=Strict';
/** Paths the UI owns (besides `/`): the API and WebDAV are routed elsewhere. */
const ASSETS = '/assets/';

export function createUi(options: UiOptions): RouterMiddleware {
  const router = new Router();
  // Notices travel in a cookie signed with a key of this process: nobody can make a page say something.
  const noticeKey = randomBytes(32);

  const originOf = (req: IncomingMessage): RequestOrigin => ({
    ip: req.socket.remoteAddress ?? 'unknown', client: String(req.headers['user-agent'] ?? '').slice(0, 256), protocol: 'web',
  });

  const signNotice = (text: string) => createHmac('sha256', noticeKey).update(text).digest('base64url');
  function takeNotice(ctx: Context): string | undefined {
    const rawCookie = cookie(ctx.req.headers.cookie, NOTICE_COOKIE);
    if (rawCookie === null) return undefined;
    ctx.append('Set-Cookie', `${NOTICE_COOKIE}=; ${NOTICE_ATTRIBUTES}; Max-Age=0`);
    const [payload = '', mac = ''] = rawCookie.split('.');
    const text = Buffer.from(payload, 'base64url').toString('utf8');
    const expected = Buffer.from(signNotice(text));
    const given = Buffer.from(mac);
    return given.length === expected.length && timingSafeEqual(given, expected) ? text : undefined;
  }

  const kit: UiKit = {
    options,
    originOf,
    render(ctx, viewer, view, problem) {
      const chrome: Chrome = {
        product: options.product,
        viewer: viewer === null ? null : { name: viewer.principal.displayName, login: viewer.principal.login, csrfToken: viewer.session.csrfToken, administrator: viewer.administrator, expiresAt: viewer.session.expiresAt },
        idleMinutes: options.idleMinutes,
        notice: takeNotice(ctx),
        problem,
      };
      ctx.status = view.status ?? problem?.status ?? 200;
      ctx.type = 'html';
      ctx.body = layout(chrome, view).markup;
    },
    redirect(ctx, to, notice) {
      if (notice !== undefined) {
        const text = notice.slice(0, 500);
        ctx.append('Set-Cookie', `${NOTICE_COOKIE}=${Buffer.from(text).toString('base64url')}.${signNotice(text)}; ${NOTICE_ATTRIBUTES}; Max-Age=120`);
      }
      ctx.status = 303;
      ctx.set('Location', localPath(to));
      ctx.type = 'text/plain';
      ctx.body = `See ${localPath(to)}\n`;
    },
  };

  /** The viewer behind the cookie; POST: the form's CSRF token must match the session's. */
  async function viewerOf(ctx: Context, csrfToken: string | undefined): Promise<Viewer> {
    const token = sessionToken(ctx.req.headers.cookie);
    if (token === null) throw new VellumError('SESSION_EXPIRED', 'Sign in to continue.');
    const anonymous = originFields(originOf(ctx.req));
    const stateChanging = ctx.method === 'POST';
    const signIn = await options.webSessions.resume(token, { csrfToken, stateChanging }, anonymous);
    const origin = { ...anonymous, session: signIn.session };
    const session = await options.webSessions.view(token, origin);
    const viewer: Viewer = { principal: signIn.principal, origin, session, administrator: options.isAdministrator(signIn.principal) };
    // An error page later in this request still shows the navigation.
    ctx.state.viewer = viewer;
    return viewer;
  }

  function finish(ctx: Context, viewer: Viewer, outcome: Outcome, problem?: Problem): void {
    if (outcome === null) return;
    if ('redirect' in outcome) kit.redirect(ctx, outcome.redirect, outcome.notice);
    else kit.render(ctx, viewer, outcome, problem);
  }

  const callOf = (ctx: Context, viewer: Viewer, form: URLSearchParams): PageCall => ({
    viewer, params: ctx.params as Record<string, string>, query: new URLSearchParams(ctx.querystring), form, ctx,
    content: (reason) => options.sessionFor(viewer.principal, viewer.origin, reason),
  });

  const routes: UiRoutes = {
    page(path, handler) {
      router.get(path, async (ctx) => {
        const viewer = await viewerOf(ctx, undefined);
        finish(ctx, viewer, await handler(callOf(ctx, viewer, new URLSearchParams())));
      });
    },
    action(path, handler, showAgain) {
      router.post(path, async (ctx) => {
        const form = await readForm(ctx.req);
        const viewer = await viewerOf(ctx, form.get('_csrf') ?? undefined);
        const call = callOf(ctx, viewer, form);
        const reason = form.get('reason')?.trim() || undefined;
        if (reason !== undefined && reason.length > MAX_REASON) throw new VellumError('BAD_REQUEST', `A reason for change may be at most ${MAX_REASON} characters.`);
        try {
          finish(ctx, viewer, await handler({ ...call, reason }));
        } catch (e) {
          const error = asVellumError(e);
          if (showAgain === undefined || error.status >= 500 || error.status === 401 || error.code === 'CSRF_INVALID') throw e;
          finish(ctx, viewer, await showAgain(call), { code: error.code, message: error.message, status: error.status });
        }
      });
    },
    open(method, path, handler) {
      const run: RouterMiddleware = async (ctx) => handler(ctx, method === 'POST' ? await readForm(ctx.req) : new URLSearchParams());
      if (method === 'GET') router.get(path, run);
      else router.post(path, run);
    },
  };

  addSignInPages(routes, kit);
  addDashboardPages(routes, kit);
  addStudyPages(routes, kit);
  addGroupPages(routes, kit);
  addFilePages(routes, kit);
  addAuditPages(routes, kit);
  addAccountPages(routes, kit);

  const dispatch = router.routes();
  return async (ctx, next) => {
    if (ctx.path.startsWith(ASSETS)) {
      if (serveAsset(ctx, ctx.path.slice(ASSETS.length))) return;
      return next();
    }
    const match = router.match(ctx.path, ctx.method);
    if (!match.route) {
      if (match.path.length > 0 && (ctx.method === 'GET' || ctx.method === 'POST' || ctx.method === 'HEAD')) {
        await sendUiError(ctx, new VellumError('METHOD_NOT_ALLOWED'), kit);
        return;
      }
      return next();
    }
    try {
      await dispatch(ctx, async () => undefined);
    } catch (e) {
      if (hasBody(ctx.req) && !ctx.req.complete) lingerThenDrop(ctx.req);
      await sendUiError(ctx, e, kit);
    }
  };
}

/**
 * The one place where the error catalog becomes a page: a session that ended
 * (or needs its second step) goes to the sign-in page, anything else is the
 * catalog's status with its message. Never a stack.
 */
async function sendUiError(ctx: Context, error: unknown, kit: UiKit): Promise<void> {
  const e = asVellumError(error);
  if (e.status >= 500 && e.code !== 'DIRECTORY_UNAVAILABLE' && e.code !== 'HSM_UNAVAILABLE') {
    kit.options.log(`ui: ${ctx.method} ${ctx.path}: ${e.code}: ${e.message}`, e.cause ?? e);
  }
  if (ctx.res.headersSent) {
    ctx.res.destroy();
    return;
  }
  ctx.respond = true;
  if (e.code === 'SESSION_EXPIRED' && ctx.method === 'GET' && ctx.path === '/' && sessionToken(ctx.req.headers.cookie) === null) {
    // The front page of someone not signed in is the sign-in page (with how to connect a drive).
    await showSignIn(ctx, kit);
    return;
  }
  if (e.code === 'SESSION_EXPIRED' || e.code === 'MFA_REQUIRED' || e.code === 'AUTH_REQUIRED') {
    // Back to the sign-in page, and afterwards to the page asked for (GET only: a form's values are gone).
    const next = ctx.method === 'GET' ? ctx.originalUrl : undefined;
    const ended = sessionToken(ctx.req.headers.cookie) !== null && e.code === 'SESSION_EXPIRED';
    kit.redirect(ctx, `/login?${new URLSearchParams({ ...(next && next !== '/' ? { next } : {}), ...(ended ? { ended: '1' } : {}) }).toString()}`.replace(/\?$/, ''));
    return;
  }
  ctx.set('X-Vellum-Error', e.code);
  if (e.status === 503) ctx.set('Retry-After', '10');
  kit.render(ctx, (ctx.state.viewer as Viewer | undefined) ?? null, errorPage(e.status, e.code, e.message));
}

const originFields = (origin: RequestOrigin): RequestOrigin => ({ ip: origin.ip, client: origin.client, protocol: origin.protocol });

/** A cookie's value from a Cookie header; null when absent. */
export function cookie(header: string | undefined, name: string): string | null {
  if (header === undefined) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** Only a path on this server: never an absolute or protocol-relative URL (no open redirect). */
export function localPath(to: string): string {
  return to.startsWith('/') && !to.startsWith('//') && !to.startsWith('/\\') ? to : '/';
}

/** An application/x-www-form-urlencoded body (UTF-8), at most MAX_FORM_BYTES; empty without a body. */
async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  if (!hasBody(req)) return new URLSearchParams();
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') throw new VellumError('UNSUPPORTED_MEDIA_TYPE', 'Forms are sent as application/x-www-form-urlencoded.');
  return new URLSearchParams(await readText(req, MAX_FORM_BYTES));
}

/** A required text field of a form, trimmed. @throws BAD_REQUEST naming the field's label */
export function field(form: URLSearchParams, name: string, label: string, maxLength = 256): string {
  const value = form.get(name)?.trim() ?? '';
  if (value === '') throw new VellumError('BAD_REQUEST', `Fill in "${label}".`);
  if (value.length > maxLength) throw new VellumError('BAD_REQUEST', `"${label}" may be at most ${maxLength} characters.`);
  return value;
}

/** The hidden CSRF field every POST form carries. */
export const csrfField = (viewer: Viewer) => html`<input type="hidden" name="_csrf" value="${viewer.session.csrfToken}">`;
