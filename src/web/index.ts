// web: the Koa application (the only importer of `koa` and `@koa/router`):
// the health endpoint, the REST API v1 under /api/v1 (docs/api.md) and the
// web UI for people in a browser (ui/, docs/web-ui.md). Both call the same
// session-layer facades as WebDAV; each turns errors into HTTP in one place
// (api-errors.ts, ui/ui.ts).

export { createWebHandler, type WebOptions, type WebHandler } from './app.ts';
