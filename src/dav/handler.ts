// The WebDAV front end: one request handler for everything under the mount
// point. It authenticates (own Basic parser + the shared Authenticator),
// parses the path once, and then either answers the method itself (GET, HEAD,
// PUT, DELETE, MKCOL, MOVE, COPY, OPTIONS: streaming, versioned, range-aware)
// or hands it to webdav-server over the VaultFileSystem (PROPFIND). Methods
// not supported yet answer 501; nothing reaches the library unauthenticated.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { v2 as webdav } from 'webdav-server';
import { formatVaultPath, parseVaultPath, VellumError, type Principal, type RequestOrigin, type VaultPath } from '../kernel/index.ts';
import { lingerThenDrop, type Authenticator, type Session } from '../session/index.ts';

import { contentTypeFor } from './content-type.ts';
import { etagOf, VaultFileSystem, type DavUser } from './dav-filesystem.ts';
import { expectedSha256 } from './digest.ts';
import { sendError } from './http-errors.ts';
import { parseRange } from './range.ts';

export interface DavOptions {
  /** URL path the WebDAV tree is mounted at, e.g. "/dav". */
  readonly mount: string;
  readonly realm: string;
  readonly xmlBodyBytes: number;
  readonly uploadBytes: number;
  readonly authenticator: Authenticator;
  readonly sessionFor: (principal: Principal, origin: RequestOrigin, reason?: string) => Session;
  readonly log: (message: string, error?: unknown) => void;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

const SUPPORTED = ['OPTIONS', 'GET', 'HEAD', 'PUT', 'DELETE', 'MKCOL', 'MOVE', 'COPY', 'PROPFIND'];
const DAV_CLASS = '1';
const MAX_REASON = 1000;

export function createDavHandler(options: DavOptions): RequestHandler {
  const users = new WeakMap<IncomingMessage, DavUser>();
  const library = new webdav.WebDAVServer({
    requireAuthentification: true,
    rootFileSystem: new VaultFileSystem(),
    serverName: 'Vellum',
    // Paths, not absolute URLs: the library would write http:// even behind TLS.
    respondWithPaths: true,
    httpAuthentication: {
      askForAuthentication: () => ({ 'WWW-Authenticate': `Basic realm="${options.realm}", charset="UTF-8"` }),
      getUser: (ctx, callback) => {
        const user = users.get(ctx.request);
        if (user) callback(undefined as unknown as Error, user);
        else callback(webdav.Errors.MissingAuthorisationHeader);
      },
    },
  });
  const errorOptions = { realm: options.realm, log: options.log };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('MS-Author-Via', 'DAV');
    const method = (req.method ?? '').toUpperCase();
    const rawPath = stripMount(req.url ?? '/', options.mount);
    if (method === 'OPTIONS') return sendOptions(res);

    const origin: RequestOrigin = {
      ip: req.socket.remoteAddress ?? 'unknown',
      client: String(req.headers['user-agent'] ?? '').slice(0, 256),
      protocol: 'webdav',
    };
    const principal = await options.authenticator.authenticateBasic(req.headers.authorization, origin);
    const path = parseVaultPath(rawPath);
    const session = options.sessionFor(principal, origin, changeReason(req));

    switch (method) {
      case 'GET':
      case 'HEAD':
        return get(session, path, req, res, method === 'HEAD');
      case 'PUT':
        return put(session, path, req, res);
      case 'DELETE':
        await session.remove(path);
        res.writeHead(204).end();
        return;
      case 'MKCOL':
        if (hasBody(req)) throw new VellumError('UNSUPPORTED_MEDIA_TYPE', 'MKCOL takes no body.');
        await session.makeFolder(path);
        res.writeHead(201, { 'Content-Length': '0' }).end();
        return;
      case 'MOVE':
      case 'COPY':
        return transfer(session, method, path, req, res);
      case 'PROPFIND':
        return propfind(session, req, res);
      default:
        throw new VellumError('NOT_IMPLEMENTED', `${method} is not supported yet. Supported: ${SUPPORTED.join(', ')}.`);
    }
  }

  function sendOptions(res: ServerResponse): void {
    res.writeHead(200, { DAV: DAV_CLASS, Allow: SUPPORTED.join(', '), 'Content-Length': '0' }).end();
  }

  async function get(session: Session, path: VaultPath, req: IncomingMessage, res: ServerResponse, headOnly: boolean): Promise<void> {
    const file = await session.openFile(path);
    const size = file.version.size;
    const headers: Record<string, string> = {
      'Content-Type': contentTypeFor(file.node.name),
      'Accept-Ranges': 'bytes',
      ETag: etagOf(file.node),
      'Last-Modified': new Date(file.node.modifiedAt).toUTCString(),
    };
    if (headOnly) {
      res.writeHead(200, { ...headers, 'Content-Length': String(size) }).end();
      return;
    }
    const range = parseRange(req.headers.range, size);
    if (range.kind === 'unsatisfiable') {
      res.writeHead(416, { 'Content-Range': `bytes */${size}`, 'Content-Length': '0' }).end();
      return;
    }
    // Wait for the first authenticated bytes before the status line: damage in
    // the first segments is then a proper 500, not a cut connection.
    const body = await startedStream(await file.read(range.kind === 'range' ? range : undefined));
    if (range.kind === 'range') {
      res.writeHead(206, { ...headers, 'Content-Range': `bytes ${range.start}-${range.end}/${size}`, 'Content-Length': String(range.end - range.start + 1) });
    } else {
      res.writeHead(200, { ...headers, 'Content-Length': String(size) });
    }
    try {
      await pipeline(body, res);
    } catch (e) {
      // Headers are gone: cutting the connection is the only way to say the body is incomplete.
      if (e instanceof VellumError) options.log(`INTEGRITY ALERT: GET ${formatVaultPath(path)} stopped mid-body: ${e.message}`, e);
      res.destroy();
    }
  }

  async function put(session: Session, path: VaultPath, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > options.uploadBytes) {
      throw new VellumError('BODY_TOO_LARGE', `A file may be at most ${options.uploadBytes} bytes.`);
    }
    const digest = expectedSha256(req.headers);
    const result = await session.writeFile(path, req, { maxBytes: options.uploadBytes, ...(digest === undefined ? {} : { expectedSha256: digest }) });
    res.writeHead(result.created ? 201 : 204, { ETag: etagOf(result.node), ...(result.created ? { 'Content-Length': '0' } : {}) }).end();
  }

  async function transfer(session: Session, method: 'MOVE' | 'COPY', from: VaultPath, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (hasBody(req)) throw new VellumError('UNSUPPORTED_MEDIA_TYPE', `${method} takes no body.`);
    const to = destination(req, options.mount);
    const overwrite = overwriteHeader(single(req.headers.overwrite, 'Overwrite'));
    const depth = single(req.headers.depth, 'Depth')?.trim().toLowerCase();
    let result;
    if (method === 'COPY') {
      if (depth !== undefined && depth !== '0' && depth !== 'infinity') throw new VellumError('BAD_REQUEST', 'COPY takes Depth: 0 or Depth: infinity.');
      result = await session.copy(from, to, { overwrite, depth: depth === '0' ? 0 : 'infinity' });
    } else {
      // A folder always moves with everything in it (RFC 4918 §9.9.2).
      if (depth !== undefined && depth !== 'infinity' && (await session.stat(from)).kind === 'folder') {
        throw new VellumError('BAD_REQUEST', 'MOVE of a folder takes Depth: infinity (or no Depth header).');
      }
      result = await session.move(from, to, { overwrite });
    }
    res.writeHead(result.replaced ? 204 : 201, { 'Content-Length': '0', ...(result.node.kind === 'file' ? { ETag: etagOf(result.node) } : {}) }).end();
  }

  async function propfind(session: Session, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const depth = req.headers.depth;
    if (depth !== '0' && depth !== '1') {
      const body = '<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>\n';
      res.writeHead(403, { 'Content-Type': 'application/xml; charset=utf-8', 'Content-Length': String(Buffer.byteLength(body)) }).end(body);
      return;
    }
    const length = Number(req.headers['content-length'] ?? 0);
    if (!Number.isSafeInteger(length) || length > options.xmlBodyBytes) {
      throw new VellumError('BODY_TOO_LARGE', `XML request bodies may be at most ${options.xmlBodyBytes} bytes.`);
    }
    users.set(req, { uid: session.principal.id, username: session.principal.login, isAdministrator: false, isDefaultUser: false, session, memo: new Map() });
    tameLibraryHeaders(res);
    // The library resolves paths from the URL without the mount and adds the mount back to hrefs.
    req.url = stripMount(req.url ?? '/', options.mount);
    await new Promise<void>((resolve) => {
      res.once('close', resolve);
      res.once('finish', resolve);
      library.executeRequest(req, res, options.mount);
    });
  }

  return (req, res) => {
    handle(req, res).catch((e: unknown) => {
      // A request whose body we did not read: close the connection rather than read it all.
      const unread = hasBody(req) && !req.complete;
      if (unread) res.setHeader('Connection', 'close');
      sendError(res, e, errorOptions);
      if (unread) lingerThenDrop(req);
    });
  };
}

function stripMount(url: string, mount: string): string {
  const path = url.split('?', 1)[0]!;
  if (path === mount) return '/';
  return path.startsWith(mount + '/') ? path.slice(mount.length) : path;
}

/** Resolves once the stream has its first chunk (or ended); rejects if it fails first. */
function startedStream(stream: Readable): Promise<Readable> {
  return new Promise((resolve, reject) => {
    const ready = () => {
      stream.off('error', failed);
      resolve(stream);
    };
    const failed = (e: Error) => {
      stream.off('readable', ready);
      reject(e);
    };
    stream.once('readable', ready);
    stream.once('error', failed);
  });
}

/**
 * The Destination of a MOVE or COPY: an absolute URL on this host, or an
 * absolute path, under the WebDAV mount (RFC 4918 §10.3).
 */
function destination(req: IncomingMessage, mount: string): VaultPath {
  const header = req.headers.destination;
  if (typeof header !== 'string' || header.trim() === '') throw new VellumError('DESTINATION_INVALID', 'Send Destination: with the target URL.');
  let url: URL;
  try {
    url = new URL(header.trim(), 'http://destination.invalid');
  } catch {
    throw new VellumError('DESTINATION_INVALID', 'The Destination header is not a URL.');
  }
  if (url.host !== 'destination.invalid' && url.host.toLowerCase() !== String(req.headers.host ?? '').toLowerCase()) {
    throw new VellumError('DESTINATION_OTHER_SERVER', `${url.host} is not this server.`);
  }
  if (url.search !== '' || url.hash !== '') throw new VellumError('DESTINATION_INVALID', 'The Destination may not carry a query or fragment.');
  if (url.pathname !== mount && !url.pathname.startsWith(`${mount}/`)) throw new VellumError('FORBIDDEN', `The Destination must be under ${mount}/.`);
  return parseVaultPath(stripMount(url.pathname, mount));
}

function single(value: string | string[] | undefined, name: string): string | undefined {
  if (Array.isArray(value)) throw new VellumError('BAD_REQUEST', `Send ${name} once.`);
  return value;
}

function overwriteHeader(value: string | undefined): boolean {
  if (value === undefined) return true;
  const flag = value.trim().toUpperCase();
  if (flag !== 'T' && flag !== 'F') throw new VellumError('BAD_REQUEST', 'Overwrite must be T or F.');
  return flag === 'T';
}

function hasBody(req: IncomingMessage): boolean {
  return Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
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

/**
 * webdav-server sets CORS headers that allow any origin with credentials, and
 * advertises DAV class 2 that this server does not offer yet: drop them.
 */
function tameLibraryHeaders(res: ServerResponse): void {
  const setHeader = res.setHeader.bind(res);
  res.setHeader = (name: string, value: number | string | readonly string[]) => {
    const lower = name.toLowerCase();
    if (lower.startsWith('access-control-')) return res;
    if (lower === 'dav') return setHeader(name, DAV_CLASS);
    if (lower === 'server') return setHeader(name, 'Vellum');
    return setHeader(name, value);
  };
}
