// The Koa application for everything outside the WebDAV mount: /healthz, the
// REST API under /api (api.ts) and the web UI (ui/): pages for people in a
// browser, the sign-in page at / for those not signed in.

import Router from '@koa/router';
import Koa from 'koa';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createApi, type ApiOptions } from './api.ts';
import { createUi, type UiOptions } from './ui/ui.ts';

export type WebHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** The API's and the UI's options together: both run on the same parts. */
export interface WebOptions extends ApiOptions, UiOptions {}

const SECURITY_HEADERS: Record<string, string> = {
  // No inline script or style anywhere: the UI's one script and stylesheet are files under /assets/.
  'Content-Security-Policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Strict-Transport-Security': 'max-age=31536000',
  'Cache-Control': 'no-store',
};

export function createWebHandler(options: WebOptions): WebHandler {
  const app = new Koa();
  app.proxy = false;
  const router = new Router();
  // What Koa itself sees fail (a download cut off mid-body) goes to the log, not to stderr.
  app.on('error', (e: unknown, ctx?: { method: string; path: string }) => options.log(`web: ${ctx?.method ?? '?'} ${ctx?.path ?? '?'} stopped`, e));

  // Headers first, so that API replies and errors carry them too.
  app.use(async (ctx, next) => {
    ctx.set(SECURITY_HEADERS);
    try {
      await next();
    } catch (e) {
      options.log(`web: ${ctx.method} ${ctx.path} failed`, e);
      ctx.status = 500;
      ctx.type = 'text/plain';
      ctx.body = 'An unexpected error occurred; it has been logged.\n';
    }
  });

  app.use(createApi(options));
  app.use(createUi(options));

  // No authentication and no secrets: load balancers and monitors call it.
  router.get('/healthz', async (ctx) => {
    const components = await options.health();
    const ok = Object.values(components).every((component) => component.ok);
    ctx.status = ok ? 200 : 503;
    ctx.body = { status: ok ? 'ok' : 'degraded', version: options.product.version, time: new Date().toISOString(), components };
  });

  app.use(router.routes());
  app.use(router.allowedMethods());
  return app.callback();
}
