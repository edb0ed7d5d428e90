// The web UI's sign-in over the REST API (docs/mfa.md): the password step,
// the second step (TOTP or a recovery code), TOTP enrolment with a QR code,
// sign-out, and an Administrator ending all of a person's sessions. The
// session lives on the server (identity/ WebSessions); the browser holds only
// the token, in a cookie scripts cannot read, and sends the session's CSRF
// token in a header with every change.

import type { IncomingHttpHeaders } from 'node:http';
import { VellumError } from '../kernel/index.ts';
import type { RequestCheck, SecondFactorProof, WebSessions } from '../identity/index.ts';
import { json, type ApiRoutes, type OpenCall } from './api.ts';

/**
 * `__Host-`: browsers accept it only with Secure, Path=/ and no Domain, so no
 * other host or path can set or shadow it.
 */
export const SESSION_COOKIE = '__Host-vellum-session';
/** Node lower-cases header names. */
export const CSRF_HEADER = 'x-csrf-token';
const COOKIE_ATTRIBUTES = 'Path=/; Secure; HttpOnly; SameSite=Strict';

/** The session token from a Cookie header; null when there is none. */
export function sessionToken(cookieHeader: string | undefined): string | null {
  if (cookieHeader === undefined) return null;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim();
  }
  return null;
}

const setCookie = (token: string) => ({ 'Set-Cookie': `${SESSION_COOKIE}=${token}; ${COOKIE_ATTRIBUTES}` });
const clearCookie = { 'Set-Cookie': `${SESSION_COOKIE}=; ${COOKIE_ATTRIBUTES}; Max-Age=0` };

function cookieOf(headers: IncomingHttpHeaders): string {
  const token = sessionToken(headers.cookie);
  if (token === null) throw new VellumError('SESSION_EXPIRED', 'This request carries no session cookie; sign in first (POST /api/v1/session).');
  return token;
}

function checkOf(call: OpenCall): RequestCheck {
  const csrf = call.ctx.req.headers[CSRF_HEADER];
  return { csrfToken: typeof csrf === 'string' ? csrf : undefined, stateChanging: call.ctx.method !== 'GET' };
}

function text(body: Readonly<Record<string, unknown>>, field: string, maxLength = 256): string {
  const value = body[field];
  if (typeof value !== 'string' || value.length === 0 || value.length > maxLength) {
    throw new VellumError('BAD_REQUEST', `The field "${field}" must be a non-empty string of at most ${maxLength} characters.`);
  }
  return value;
}

export function addSessionRoutes(routes: ApiRoutes, sessions: WebSessions): void {
  routes.open('POST', '/session', ['login', 'password'], async ({ body, origin }) => {
    // A password may have surrounding spaces; it is passed on exactly as sent.
    const { token, session } = await sessions.signIn(text(body, 'login'), text(body, 'password', 1024), origin);
    return json(session, 201, setCookie(token));
  });

  routes.open('GET', '/session', null, async ({ ctx, origin }) => json(await sessions.view(cookieOf(ctx.req.headers), origin)));

  routes.open('DELETE', '/session', null, async (call) => {
    await sessions.signOut(cookieOf(call.ctx.req.headers), checkOf(call), call.origin);
    return json(null, 204, clearCookie);
  });

  routes.open('POST', '/session/second-factor', ['code', 'recoveryCode'], async (call) => {
    const { body } = call;
    if ((body.code === undefined) === (body.recoveryCode === undefined)) {
      throw new VellumError('BAD_REQUEST', 'Send either {"code": "123456"} (from the authenticator app) or {"recoveryCode": "ABCD-EFGH-IJKL-MNOP"}.');
    }
    const proof: SecondFactorProof = body.code !== undefined ? { code: text(body, 'code', 16) } : { recoveryCode: text(body, 'recoveryCode', 64) };
    return json(await sessions.secondFactor(cookieOf(call.ctx.req.headers), proof, checkOf(call), call.origin));
  });

  routes.open('POST', '/session/enrolment', [], async (call) =>
    json(await sessions.beginEnrolment(cookieOf(call.ctx.req.headers), checkOf(call), call.origin), 201));

  routes.open('POST', '/session/enrolment/confirm', ['code'], async (call) =>
    json(await sessions.confirmEnrolment(cookieOf(call.ctx.req.headers), text(call.body, 'code', 16), checkOf(call), call.origin)));

  routes.open('POST', '/session/recovery-codes', ['code'], async (call) =>
    json({ recoveryCodes: await sessions.regenerateRecoveryCodes(cookieOf(call.ctx.req.headers), text(call.body, 'code', 16), checkOf(call), call.origin) }, 201));

  routes.del('/people/:personId/sessions', async ({ params, principal, origin }) =>
    json({ sessionsEnded: await sessions.revokePerson(params.personId!, principal, origin) }));
}
