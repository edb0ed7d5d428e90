// The UI's static files (assets/): one stylesheet and one script, read once
// at start-up and served from /assets/. Only these names are served; nothing
// from the request reaches the file system.

import type { Context } from 'koa';
import { readFileSync } from 'node:fs';

const TYPES: Record<string, string> = { css: 'text/css; charset=utf-8', js: 'text/javascript; charset=utf-8' };
const FILES = ['style.css', 'app.js'];

const assets = new Map(FILES.map((name) => [name, readFileSync(new URL(`./assets/${name}`, import.meta.url))]));

/** Answers GET/HEAD of a known asset; false for any other name (a 404 follows). */
export function serveAsset(ctx: Context, name: string): boolean {
  const content = assets.get(name);
  if (content === undefined || (ctx.method !== 'GET' && ctx.method !== 'HEAD')) return false;
  ctx.type = TYPES[name.slice(name.lastIndexOf('.') + 1)]!;
  // Assets hold no secrets; an hour's caching spares every page load a round trip.
  ctx.set('Cache-Control', 'public, max-age=3600');
  ctx.body = content;
  return true;
}
