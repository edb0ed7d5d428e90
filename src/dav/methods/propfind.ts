// PROPFIND, still answered by webdav-server over the VaultFileSystem.

import type { ServerResponse } from 'node:http';
import { v2 as webdav } from 'webdav-server';
import { VellumError } from '../../kernel/index.ts';
import { stripMount, type DavContext } from '../context.ts';
import { VaultFileSystem, type DavUser } from '../dav-filesystem.ts';
import type { DavOptions } from '../options.ts';

const users = new WeakMap<object, DavUser>();
const libraries = new WeakMap<DavOptions, webdav.WebDAVServer>();

function libraryFor(options: DavOptions): webdav.WebDAVServer {
  let library = libraries.get(options);
  if (!library) {
    library = new webdav.WebDAVServer({
      requireAuthentification: true,
      rootFileSystem: new VaultFileSystem(),
      serverName: 'Vellum',
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
    libraries.set(options, library);
  }
  return library;
}

export async function propfind(ctx: DavContext): Promise<void> {
  const { req, res, session, options } = ctx;
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
  req.url = stripMount(req.url ?? '/', options.mount);
  await new Promise<void>((resolve) => {
    res.once('close', resolve);
    res.once('finish', resolve);
    libraryFor(options).executeRequest(req, res, options.mount);
  });
}

/** webdav-server sets CORS headers that allow any origin with credentials, and advertises DAV class 2: drop them. */
function tameLibraryHeaders(res: ServerResponse): void {
  const setHeader = res.setHeader.bind(res);
  res.setHeader = (name: string, value: number | string | readonly string[]) => {
    const lower = name.toLowerCase();
    if (lower.startsWith('access-control-')) return res;
    if (lower === 'dav') return setHeader(name, '1');
    if (lower === 'server') return setHeader(name, 'Vellum');
    return setHeader(name, value);
  };
}
