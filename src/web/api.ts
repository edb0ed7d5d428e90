// The REST API, version 1 (docs/api.md): JSON over HTTPS under /api/v1, for
// scripts, the `vellum keys` and `vellum scrub` commands and the web UI. It
// signs people in with HTTP Basic exactly as WebDAV does (the shared parser and
// Authenticator), or with a web session cookie (api-session.ts), and does every
// action through a Session, so it gets the same access checks and the same
// audit entries. Errors become HTTP in api-errors.ts only.

import Router, { type RouterMiddleware } from '@koa/router';
import type { Context } from 'koa';
import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { checkName, isStudyId, parseVaultPath, VellumError, type Principal, type RequestOrigin, type VaultPath } from '../kernel/index.ts';
import type { AppPasswords, Authenticator, Lockout, WebSessions } from '../identity/index.ts';
import { lingerThenDrop, type Session } from '../session/index.ts';
import { hasBody, readText } from './request-body.ts';
import { addAccountRoutes } from './api-accounts.ts';
import { sendApiError } from './api-errors.ts';
import { addSessionRoutes, CSRF_HEADER, sessionToken } from './api-session.ts';
import { addStudyRoutes } from './api-studies.ts';
import { registerGroupRoutes, type GroupAdminFor } from './api-groups.ts';
import { addAuditRoutes, type AuditReviewFor } from './api-audit.ts';

export interface ApiOptions {
  readonly realm: string;
  readonly authenticator: Authenticator;
  /** Web UI sign-in; requests with its cookie are authenticated by it instead of HTTP Basic. */
  readonly webSessions: WebSessions;
  readonly sessionFor: (principal: Principal, origin: RequestOrigin, reason?: string) => Session;
  readonly log: (message: string, error?: unknown) => void;
  /** App passwords and lockouts (api-accounts.ts); without them those routes are absent. */
  readonly appPasswords?: AppPasswords;
  readonly lockout?: Lockout;
  /** Directory group administration (/groups routes); absent: no such routes. */
  readonly groupAdminFor?: GroupAdminFor;
  /** The audit trail's exports and verification (/audit routes); absent: no such routes. */
  readonly auditReviewFor?: AuditReviewFor;
}

/** Everything under this path is the API's: unknown routes get a JSON 404, not the web app's. */
const API_ROOT = '/api';
const API_V1 = `${API_ROOT}/v1`;
/** Largest JSON request body. */
const MAX_JSON_BYTES = 64 * 1024;
const MAX_REASON = 1000;
/** Methods that change nothing, so a cookie request needs no CSRF token. */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);
/**
 * How API requests with HTTP Basic are named in the audit trail (cookie requests are the web UI's: 'web').
 */
const PROTOCOL: RequestOrigin['protocol'] = 'api';

export interface Call {
  readonly session: Session;
  /** Who is calling, and from where (for facades other than the content Session). */
  readonly principal: Principal;
  readonly origin: RequestOrigin;
  readonly params: Readonly<Record<string, string>>;
  readonly query: URLSearchParams;
  /** The JSON body's fields (besides `reason`), checked against the route's list. */
  readonly body: Readonly<Record<string, unknown>>;
  readonly ctx: Context;
}

export interface Reply {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Record<string, string>;
}

/** A handler answers with a Reply, or null when it wrote the response itself (downloads). */
export type Handler = (call: Call) => Promise<Reply | null>;

/** A call to a route that authenticates on its own (the web session's sign-in steps). */
export type OpenCall = Omit<Call, 'session' | 'principal'>;
export type OpenHandler = (call: OpenCall) => Promise<Reply>;

/** How a route module (api-*.ts) adds its routes: paths are relative to /api/v1. */
export interface ApiRoutes {
  get(path: string, handler: Handler): void;
  /** fields: the JSON body fields the route takes (besides `reason`). */
  post(path: string, fields: readonly string[], handler: Handler): void;
  put(path: string, fields: readonly string[], handler: Handler): void;
  del(path: string, handler: Handler): void;
  /** A route without HTTP Basic or a Session: the handler authenticates (or is the sign-in). fields: as post; null for no body. */
  open(method: 'GET' | 'POST' | 'DELETE', path: string, fields: readonly string[] | null, handler: OpenHandler): void;
}

export const json = (body: unknown, status = 200, headers?: Record<string, string>): Reply => ({ status, body, ...(headers ? { headers } : {}) });

/** Writes a handler's Reply; null: it wrote the response itself. */
function respond(ctx: Context, reply: Reply | null): void {
  if (reply === null) return;
  ctx.status = reply.status;
  if (reply.headers) ctx.set(reply.headers);
  ctx.body = reply.body;
}

export function createApi(options: ApiOptions): RouterMiddleware {
  const router = new Router({ prefix: API_V1 });

  /** Authenticates, reads the JSON body (POST, PUT: with these fields allowed), opens the session, runs the handler. */
  function endpoint(fields: readonly string[] | null, handler: Handler): RouterMiddleware {
    return async (ctx) => {
      const { principal, origin } = await authenticate(ctx.req);
      const { reason, ...body } = fields === null ? {} : await readJsonObject(ctx.req, fields);
      const session = options.sessionFor(principal, origin, changeReason(ctx.req.headers['x-change-reason'], reason));
      respond(ctx, await handler({ session, principal, origin, params: ctx.params, query: new URLSearchParams(ctx.querystring), body, ctx }));
    };
  }
  const get = (path: string, handler: Handler) => router.get(path, endpoint(null, handler));
  const post = (path: string, fields: readonly string[], handler: Handler) => router.post(path, endpoint(fields, handler));
  const put = (path: string, fields: readonly string[], handler: Handler) => router.put(path, endpoint(fields, handler));
  const del = (path: string, handler: Handler) => router.delete(path, endpoint(null, handler));
  const open = (method: 'GET' | 'POST' | 'DELETE', path: string, fields: readonly string[] | null, handler: OpenHandler) => {
    const run: RouterMiddleware = async (ctx) => {
      const body = fields === null ? {} : await readJsonObject(ctx.req, fields);
      respond(ctx, await handler({ origin: originOf(ctx.req, 'web'), params: ctx.params, query: new URLSearchParams(ctx.querystring), body, ctx }));
    };
    if (method === 'GET') router.get(path, run);
    else if (method === 'POST') router.post(path, run);
    else router.delete(path, run);
  };
  const routes: ApiRoutes = { get, post, put, del, open };
  // Route modules (api-*.ts) register here.
  addSessionRoutes(routes, options.webSessions);
  if (options.appPasswords && options.lockout) addAccountRoutes(routes, { authenticator: options.authenticator, appPasswords: options.appPasswords, lockout: options.lockout });
  addStudyRoutes(routes);
  if (options.groupAdminFor) registerGroupRoutes(routes, options.groupAdminFor);
  if (options.auditReviewFor) addAuditRoutes(routes, options.auditReviewFor);

  function originOf(req: IncomingMessage, protocol: RequestOrigin['protocol']): RequestOrigin {
    return { ip: req.socket.remoteAddress ?? 'unknown', client: String(req.headers['user-agent'] ?? '').slice(0, 256), protocol };
  }

  /** The web session cookie if there is one (the web UI), otherwise HTTP Basic (scripts, the CLI). */
  async function authenticate(req: IncomingMessage): Promise<{ principal: Principal; origin: RequestOrigin }> {
    const token = sessionToken(req.headers.cookie);
    if (token !== null) {
      const origin = originOf(req, 'web');
      const csrf = req.headers[CSRF_HEADER];
      const check = { csrfToken: typeof csrf === 'string' ? csrf : undefined, stateChanging: !SAFE_METHODS.has(req.method ?? '') };
      const signIn = await options.webSessions.resume(token, check, origin);
      return { principal: signIn.principal, origin: { ...origin, session: signIn.session } };
    }
    const origin = originOf(req, PROTOCOL);
    const signIn = await options.authenticator.authenticateBasic(req.headers.authorization, origin);
    // Every entry of this request names the sign-in it was served from.
    return { principal: signIn.principal, origin: { ...origin, session: signIn.session } };
  }

  get('/studies', async ({ session }) => json(await session.studiesOverview()));

  get('/studies/:study/nodes', async ({ session, params, query }) => json(await session.nodeAt(pathInStudy(studyOf(params), query))));

  get('/studies/:study/nodes/:nodeId', async ({ session, params }) => json(await session.node(studyOf(params), params.nodeId!)));

  get('/studies/:study/nodes/:nodeId/versions', async ({ session, params }) => {
    const node = await session.node(studyOf(params), params.nodeId!);
    return json({ node, versions: await session.versions(node.study, node.id) });
  });

  get('/studies/:study/nodes/:nodeId/versions/:number/content', async ({ session, params, ctx }) => {
    const file = await session.openVersion(studyOf(params), params.nodeId!, versionNumber(params));
    const { node, version } = file;
    const headers = {
      'Content-Type': 'application/octet-stream',
      'Content-Disposition': attachment(node.name),
      'Content-Length': String(version.size),
      ETag: `"${version.id}"`,
      'Last-Modified': new Date(version.createdAt).toUTCString(),
      'X-Content-SHA256': version.sha256,
      Digest: `sha-256=${Buffer.from(version.sha256, 'hex').toString('base64')}`,
    };
    const body = ctx.method === 'HEAD' ? null : await file.read();
    // Wait for the first authenticated bytes before the status line: damage at the
    // start is then a 500 with a message, not a cut connection (as WebDAV GET does).
    if (body !== null) await once(body, 'readable');
    ctx.respond = false;
    ctx.res.writeHead(200, headers);
    if (body === null) {
      ctx.res.end();
      return null;
    }
    try {
      await pipeline(body, ctx.res);
    } catch {
      // An integrity failure further on (audited by the session, logged through Koa's error
      // event) or a client that went away: the connection is cut, so the client sees a short body.
      ctx.res.destroy();
    }
    return null;
  });

  post('/studies/:study/nodes/:nodeId/versions/:number/restore', [], async ({ session, params }) => {
    const study = studyOf(params);
    const { version } = await session.restoreVersion(study, params.nodeId!, versionNumber(params));
    // The node as every other route shows it (with its path), not the bare record.
    return json({ node: await session.node(study, version.nodeId), version }, 201);
  });

  get('/studies/:study/trash', async ({ session, params }) => json(await session.trash(studyOf(params))));

  post('/studies/:study/trash/:nodeId/restore', ['name'], async ({ session, params, body }) => {
    const name = body.name;
    if (name !== undefined && typeof name !== 'string') throw new VellumError('BAD_REQUEST', 'The field "name" must be a string.');
    // Names are checked and NFC-normalised at the edge, as WebDAV paths are.
    return json(await session.undelete(studyOf(params), params.nodeId!, name === undefined ? {} : { name: checkName(name) }));
  });

  get('/studies/:study/change-reason-folders', async ({ session, params }) => json({ folders: await session.changeReasonFolders(studyOf(params)) }));

  put('/studies/:study/change-reason-folders', ['folders'], async ({ session, params, body }) => {
    const folders = body.folders;
    if (!Array.isArray(folders) || !folders.every((folder) => typeof folder === 'string')) {
      throw new VellumError('BAD_REQUEST', 'Send {"folders": ["/Regulatory", ...]}: folder paths in the study ("/" is the whole study; [] turns the rule off).');
    }
    const study = await session.setChangeReasonFolders(studyOf(params), folders);
    return json({ folders: study.changeReasonFolders ?? [] });
  });

  get('/studies/:study/keys', async ({ session, params }) => json(await session.keyStatus(studyOf(params))));

  post('/studies/:study/keys/rotate', [], async ({ session, params }) => {
    const study = studyOf(params);
    return json(await session.rotateStudyKey(study), 202, { Location: `${API_V1}/studies/${encodeURIComponent(study)}/keys` });
  });

  get('/scrub', async ({ session }) => json({ scrub: await session.scrubStatus() }));

  post('/scrub', [], async ({ session }) => json(await session.startScrub(), 202, { Location: `${API_V1}/scrub` }));

  const dispatch = router.routes();
  return async (ctx, next) => {
    if (ctx.path !== API_ROOT && !ctx.path.startsWith(`${API_ROOT}/`)) return next();
    try {
      const match = router.match(ctx.path, ctx.method);
      if (!match.route) {
        const allowed = [...new Set(match.path.flatMap((layer) => layer.methods))];
        if (allowed.length === 0) throw new VellumError('NOT_FOUND', `There is no API route ${ctx.path}; see docs/api.md.`);
        ctx.set('Allow', allowed.join(', '));
        if (ctx.method === 'OPTIONS') {
          ctx.status = 204;
          return;
        }
        throw new VellumError('METHOD_NOT_ALLOWED', `${ctx.method} is not allowed on ${ctx.path}; allowed: ${allowed.join(', ')}.`);
      }
      await dispatch(ctx, async () => undefined);
    } catch (e) {
      // A request body that was not read (or not all of it): read and drop a bounded amount
      // (a lingering close), so the answer is not lost to a reset; more than that cuts the connection.
      if (hasBody(ctx.req) && !ctx.req.complete) lingerThenDrop(ctx.req);
      sendApiError(ctx, e, options);
    }
  };
}

export function studyOf(params: Readonly<Record<string, string>>): string {
  const study = params.study!;
  if (!isStudyId(study)) throw new VellumError('NOT_FOUND', `"${study.slice(0, 64)}" is not a study.`);
  return study;
}

function versionNumber(params: Readonly<Record<string, string>>): number {
  const raw = params.number!;
  if (!/^[1-9][0-9]{0,9}$/.test(raw)) throw new VellumError('BAD_REQUEST', 'A version number is a whole number from 1 up.');
  return Number(raw);
}

/** ?path=/Folder/file.pdf, relative to the study; "/" is the study's own folder. */
export function pathInStudy(study: string, query: URLSearchParams): VaultPath {
  const paths = query.getAll('path');
  if (paths.length !== 1) throw new VellumError('BAD_REQUEST', 'Name the item with one query parameter path=/Folder/file (relative to the study; "/" is the study folder).');
  const path = paths[0]!;
  if (!path.startsWith('/')) throw new VellumError('PATH_INVALID', 'The path must start with "/".');
  // Through the one path parser, for the same rules as a WebDAV URL (names, depth, NFC).
  return parseVaultPath('/' + [study, ...path.split('/')].map(encodeURIComponent).join('/'));
}

/** RFC 6266: an ASCII fallback, and the exact name in RFC 8187 encoding. */
function attachment(name: string): string {
  const fallback = name.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  const exact = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${fallback}"; filename*=UTF-8''${exact}`;
}

/** The request's JSON object, with only `reason` and `fields` in it; {} without a body. */
async function readJsonObject(req: IncomingMessage, fields: readonly string[]): Promise<Record<string, unknown>> {
  if (!hasBody(req)) return {};
  const [type = '', ...parameters] = (req.headers['content-type'] ?? '').split(';').map((part) => part.trim().toLowerCase());
  const charset = parameters.find((parameter) => parameter.startsWith('charset='))?.slice('charset='.length).replace(/"/g, '');
  if (type !== 'application/json' || (charset !== undefined && charset !== 'utf-8')) {
    throw new VellumError('UNSUPPORTED_MEDIA_TYPE', 'Send the request body as application/json (UTF-8).');
  }
  const text = await readText(req, MAX_JSON_BYTES);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new VellumError('BAD_REQUEST', `The body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new VellumError('BAD_REQUEST', 'The body must be a JSON object.');
  const unknown = Object.keys(value).filter((key) => key !== 'reason' && !fields.includes(key));
  if (unknown.length > 0) {
    const known = ['reason', ...fields].map((key) => `"${key}"`).join(', ');
    throw new VellumError('BAD_REQUEST', `Unknown field ${unknown.map((key) => `"${key.slice(0, 64)}"`).join(', ')}; this request takes ${known}.`);
  }
  return value as Record<string, unknown>;
}

/** X-Change-Reason (percent-decoded when it is percent-encoded) or the body's "reason"; if both, they must agree. */
function changeReason(header: string | string[] | undefined, field: unknown): string | undefined {
  let fromHeader: string | undefined;
  if (typeof header === 'string' && header.trim() !== '') {
    try {
      fromHeader = decodeURIComponent(header);
    } catch {
      fromHeader = header;
    }
  }
  if (field !== undefined && typeof field !== 'string') throw new VellumError('BAD_REQUEST', 'The field "reason" must be a string.');
  const fromBody = field === undefined || field.trim() === '' ? undefined : field;
  if (fromHeader !== undefined && fromBody !== undefined && fromHeader !== fromBody) {
    throw new VellumError('BAD_REQUEST', 'X-Change-Reason and the body field "reason" differ; send the reason once.');
  }
  const reason = fromHeader ?? fromBody;
  if (reason !== undefined && reason.length > MAX_REASON) throw new VellumError('BAD_REQUEST', `A reason for change may be at most ${MAX_REASON} characters.`);
  return reason;
}
