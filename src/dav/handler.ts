// The WebDAV front end: one request handler for everything under the mount
// point. It authenticates (own Basic parser + the shared Authenticator),
// parses the path once, checks the request's conditions, and hands the
// request to the handler for its method (one module each under methods/).
// Nothing is looked at before the person is authenticated, except OPTIONS.

import { AsyncLocalStorage } from 'node:async_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseVaultPath, VellumError, type RequestOrigin } from '../kernel/index.ts';
import { lingerThenDrop } from '../session/index.ts';
import { hasBody, stripMount, type DavContext, type MethodHandler } from './context.ts';
import { sendError } from './http-errors.ts';
import { answerMacMetadata } from './mac-metadata.ts';
import { remove } from './methods/delete.ts';
import { get } from './methods/get.ts';
import { lock } from './methods/lock.ts';
import { mkcol } from './methods/mkcol.ts';
import { propfind } from './methods/propfind.ts';
import { proppatch } from './methods/proppatch.ts';
import { put } from './methods/put.ts';
import { transfer } from './methods/transfer.ts';
import { unlock } from './methods/unlock.ts';
import type { DavOptions } from './options.ts';
import { checkPreconditions, submittedLockTokens } from './preconditions.ts';

export type { DavOptions };
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

const METHODS: Record<string, MethodHandler> = {
  GET: get,
  HEAD: get,
  PUT: put,
  DELETE: remove,
  MKCOL: mkcol,
  MOVE: transfer,
  COPY: transfer,
  PROPFIND: propfind,
  LOCK: lock,
  UNLOCK: unlock,
  PROPPATCH: proppatch,
};
const SUPPORTED = ['OPTIONS', ...Object.keys(METHODS)];
const DAV_CLASS = '1, 2';
const MAX_REASON = 1000;

/** The answer to OPTIONS, also given outside the mount (Windows probes `/` before it authenticates). */
export function sendDavOptions(res: ServerResponse): void {
  res.writeHead(200, { DAV: DAV_CLASS, 'MS-Author-Via': 'DAV', Allow: SUPPORTED.join(', '), 'Content-Length': '0' }).end();
}

export function createDavHandler(options: DavOptions): RequestHandler {
  const errorOptions = { realm: options.realm, log: options.log };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('MS-Author-Via', 'DAV');
    const method = (req.method ?? '').toUpperCase();
    if (method === 'OPTIONS') return sendDavOptions(res);

    const anonymous: RequestOrigin = {
      ip: req.socket.remoteAddress ?? 'unknown',
      client: String(req.headers['user-agent'] ?? '').slice(0, 256),
      protocol: 'webdav',
    };
    const signIn = await options.authenticator.authenticateBasic(req.headers.authorization, anonymous);
    // Every entry of this request names the sign-in it was served from.
    const origin: RequestOrigin = { ...anonymous, session: signIn.session };
    const session = options.sessionFor(signIn.principal, origin, { reason: changeReason(req), lockTokens: submittedLockTokens({ req }) });
    if (await answerMacMetadata({ req, res, method, options, session })) return;
    const path = parseVaultPath(stripMount(req.url ?? '/', options.mount));
    const handler = METHODS[method];
    if (!handler) throw new VellumError('NOT_IMPLEMENTED', `${method} is not supported yet. Supported: ${SUPPORTED.join(', ')}.`);
    const ctx: DavContext = { req, res, method, path, session, options };
    // false: the conditions answered the request themselves (304).
    if (await checkPreconditions(ctx)) await handler(ctx);
  }

  return guardRequests(handle, (req, res, e) => {
    // Answered already (the connection may be serving the next request): only the log is left.
    if (res.writableEnded) return options.log(`${req.method} failed after its answer was sent`, e);
    // A request whose body we did not read: close the connection rather than read it all.
    const unread = hasBody(req) && !req.complete;
    if (unread && !res.headersSent) res.setHeader('Connection', 'close');
    sendError(res, e, errorOptions);
    if (unread) lingerThenDrop(req);
  });
}

type Failure = (req: IncomingMessage, res: ServerResponse, error: unknown) => void;

/** The request each piece of asynchronous work was started for, so that a stray exception finds its request. */
const inFlight = new AsyncLocalStorage<{ readonly req: IncomingMessage; readonly res: ServerResponse; readonly fail: Failure }>();
let strayGuardInstalled = false;

/**
 * The outer guard: whatever a request's handling throws, synchronously, as a
 * rejection, or later from a callback or event listener it started (where no
 * promise can catch it), becomes an answer for that request (a 500 unless the
 * error is a catalog error; a cut connection if the answer had begun), and
 * the process stays up. The guard is a last line, not a fix: every known way
 * to get here is fixed where it happens.
 */
export function guardRequests(handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>, fail: Failure): RequestHandler {
  installStrayGuard();
  const failSafely: Failure = (req, res, error) => {
    try {
      fail(req, res, error);
    } catch {
      res.destroy();
    }
  };
  return (req, res) => {
    inFlight.run({ req, res, fail: failSafely }, () => {
      let running: Promise<void>;
      try {
        running = handle(req, res);
      } catch (e) {
        running = Promise.reject(e);
      }
      running.catch((e: unknown) => failSafely(req, res, e));
    });
  };
}

function installStrayGuard(): void {
  if (strayGuardInstalled) return;
  strayGuardInstalled = true;
  // Exceptions thrown from callbacks and unhandled rejections land here, still
  // in the asynchronous context of the request that started the work.
  process.on('uncaughtException', (error, origin) => {
    const request = inFlight.getStore();
    if (request !== undefined) {
      request.fail(request.req, request.res, error);
      return;
    }
    // Not a WebDAV request's: what Node does without a listener, unless someone else listens.
    if (process.listenerCount('uncaughtException') > 1) return;
    process.stderr.write(`Uncaught exception (${origin}): ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
}

/** X-Change-Reason (Annex 11 §9), percent-encoded by clients that need non-ASCII. */
function changeReason(req: IncomingMessage): string | undefined {
  const raw = req.headers['x-change-reason'];
  if (typeof raw !== 'string' || raw.trim() === '') return undefined;
  let reason = raw;
  try {
    reason = decodeURIComponent(raw);
  } catch {
    // Not percent-encoded: keep it as sent.
  }
  if (reason.length > MAX_REASON) throw new VellumError('BAD_REQUEST', `X-Change-Reason may be at most ${MAX_REASON} characters.`);
  return reason;
}
