// The one place where the error catalog becomes HTTP for REST API clients:
// the catalog's status, a JSON body {"error": {"code", "message"}} and the
// header X-Vellum-Error: CODE (as WebDAV sends it). A 401 carries the Basic
// challenge, a 503 a Retry-After (as does a 429: how long the block lasts). Never a stack: anything that is not a
// VellumError is INTERNAL, and its cause goes to the log only.

import type { Context } from 'koa';
import { retryAfterSeconds } from '../identity/index.ts';
import { asVellumError } from '../kernel/index.ts';

export interface ApiErrorOptions {
  readonly realm: string;
  readonly log: (message: string, error: unknown) => void;
}

/** Seconds a client should wait before retrying when a dependency is down. */
const RETRY_AFTER_SECONDS = '10';

export function sendApiError(ctx: Context, error: unknown, options: ApiErrorOptions): void {
  const e = asVellumError(error);
  // LDAP and HSM outages show in /healthz; logging each refused request would flood the log.
  if (e.status >= 500 && e.code !== 'DIRECTORY_UNAVAILABLE' && e.code !== 'HSM_UNAVAILABLE') {
    options.log(`api: ${ctx.method} ${ctx.path}: ${e.code}: ${e.message}`, e.cause ?? e);
  }
  if (ctx.res.headersSent) {
    // Part of a body was sent already: the only honest signal left is to cut the connection.
    ctx.res.destroy();
    return;
  }
  ctx.respond = true;
  ctx.status = e.status;
  ctx.set('X-Vellum-Error', e.code);
  if (e.status === 401) ctx.set('WWW-Authenticate', `Basic realm="${options.realm}", charset="UTF-8"`);
  if (e.status === 503) ctx.set('Retry-After', RETRY_AFTER_SECONDS);
  if (e.status === 429) ctx.set('Retry-After', String(retryAfterSeconds(e) ?? 60));
  ctx.body = { error: { code: e.code, message: e.message } };
}
