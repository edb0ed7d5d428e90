// web: the Koa application (the only importer of `koa` and `@koa/router`):
// health endpoint, start page and the REST API v1 under /api/v1 (docs/api.md);
// later the admin/auditor UI.

export { createWebHandler, type WebOptions, type WebHandler } from './app.ts';
