// MOVE and COPY, with the Destination, Overwrite and Depth headers checked
// before anything is touched.

import type { IncomingMessage } from 'node:http';
import { parseVaultPath, VellumError, type VaultPath } from '../../kernel/index.ts';
import { hasBody, single, stripMount, type DavContext } from '../context.ts';
import { etagOf } from '../etag.ts';
import type { ProxiedMount } from '../options.ts';

export async function transfer(ctx: DavContext): Promise<void> {
  const { req, res, session, path: from, method } = ctx;
  if (hasBody(req)) throw new VellumError('UNSUPPORTED_MEDIA_TYPE', `${method} takes no body.`);
  const to = destination(req, ctx.options.mount, ctx.options.proxied);
  const overwrite = overwriteHeader(single(req, 'Overwrite'));
  const depth = single(req, 'Depth')?.trim().toLowerCase();
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

/**
 * The Destination of a MOVE or COPY: an absolute URL on this host, or an
 * absolute path, under the WebDAV mount (RFC 4918 §10.3). Behind a reverse
 * proxy, a URL on the external host under its path prefix is this server too.
 */
export function destination(req: IncomingMessage, mount: string, proxied?: ProxiedMount): VaultPath {
  const header = single(req, 'Destination');
  if (header === undefined || header.trim() === '') throw new VellumError('DESTINATION_INVALID', 'Send Destination: with the target URL.');
  return destinationPath(header, String(req.headers.host ?? ''), mount, proxied);
}

/** A Destination URL (or absolute path) as a vault path, for a request that came to `requestHost`. */
export function destinationPath(header: string, requestHost: string, mount: string, proxied?: ProxiedMount): VaultPath {
  let url: URL;
  try {
    url = new URL(header.trim(), 'http://destination.invalid');
  } catch {
    throw new VellumError('DESTINATION_INVALID', 'The Destination header is not a URL.');
  }
  const host = url.host.toLowerCase();
  const relative = host === 'destination.invalid';
  // Which mount paths the Destination may use, by the host it names.
  const mounts: string[] = [];
  if (relative || host === requestHost.toLowerCase()) mounts.push(mount);
  if (proxied && (relative || host === proxied.host)) mounts.push(proxied.hrefBase);
  if (mounts.length === 0) throw new VellumError('DESTINATION_OTHER_SERVER', `${url.host} is not this server.`);
  if (url.search !== '' || url.hash !== '') throw new VellumError('DESTINATION_INVALID', 'The Destination may not carry a query or fragment.');
  // The longest prefix first: /vellum/dav must win over /dav when both could apply.
  const under = mounts.sort((a, b) => b.length - a.length).find((base) => url.pathname === base || url.pathname.startsWith(`${base}/`));
  if (under === undefined) throw new VellumError('FORBIDDEN', `The Destination must be under ${mounts.join('/ or ')}/.`);
  return parseVaultPath(stripMount(url.pathname, under));
}

function overwriteHeader(value: string | undefined): boolean {
  if (value === undefined) return true;
  const flag = value.trim().toUpperCase();
  if (flag !== 'T' && flag !== 'F') throw new VellumError('BAD_REQUEST', 'Overwrite must be T or F.');
  return flag === 'T';
}
