// The Koa application for everything outside the WebDAV mount: /healthz, the
// start page and the REST API under /api (api.ts); the admin and auditor UI
// as they arrive.

import Router from '@koa/router';
import Koa from 'koa';
import type { ComponentStatus } from '../kernel/index.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createApi, type ApiOptions } from './api.ts';

export type WebHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface WebOptions extends ApiOptions {
  /** Health of each dependency, checked on every /healthz call. */
  readonly health: () => Promise<Record<string, ComponentStatus>>;
  readonly product: { readonly name: string; readonly version: string };
  /** Absolute URL path of the WebDAV mount, shown on the start page. */
  readonly davMount: string;
  /** The public URL behind a reverse proxy (no trailing slash); the start page shows it instead of the request's host. */
  readonly externalUrl?: string;
  readonly log: (message: string, error?: unknown) => void;
}

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
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

  // No authentication and no secrets: load balancers and monitors call it.
  router.get('/healthz', async (ctx) => {
    const components = await options.health();
    const ok = Object.values(components).every((component) => component.ok);
    ctx.status = ok ? 200 : 503;
    ctx.body = { status: ok ? 'ok' : 'degraded', version: options.product.version, time: new Date().toISOString(), components };
  });

  router.get('/', async (ctx) => {
    const components = await options.health();
    const davUrl = `${options.externalUrl ?? `${ctx.protocol}://${ctx.host}`}${options.davMount}/`;
    ctx.type = 'html';
    ctx.body = startPage(options.product, davUrl, components);
  });

  app.use(router.routes());
  app.use(router.allowedMethods());
  return app.callback();
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function startPage(product: { name: string; version: string }, davUrl: string, components: Record<string, ComponentStatus>): string {
  const rows = Object.entries(components)
    .map(([name, status]) => `<tr><th scope="row">${escapeHtml(name)}</th><td>${status.ok ? 'OK' : 'NOT OK'}</td><td>${escapeHtml(status.detail)}</td></tr>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(product.name)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<main>
<h1>${escapeHtml(product.name)} ${escapeHtml(product.version)}</h1>
<p>Connect a network drive to <code>${escapeHtml(davUrl)}</code> and sign in with your directory account.</p>
<h2>Health</h2>
<table><thead><tr><th scope="col">Component</th><th scope="col">Status</th><th scope="col">Detail</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<p>Machine-readable: <a href="healthz">healthz</a></p>
</main>
</body></html>
`;
}
