// web: the Koa application (the only importer of `koa` and `@koa/router`):
// health endpoint, start page, and later the admin/auditor UI and REST API.

export { createWebHandler, type WebOptions, type WebHandler } from './app.ts';
