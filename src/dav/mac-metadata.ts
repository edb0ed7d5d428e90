// The files macOS writes beside every file it copies to a network volume:
// AppleDouble companions (`._name`: resource fork and extended attributes),
// `.DS_Store` (Finder's window settings) and `Icon\r` (the placeholder of a
// custom folder icon, whose picture is in its `._` companion). They are not
// records, so the configured policy (dav.macMetadata) decides what WebDAV does
// with them; docs/webdav-clients.md explains the choice:
// - discard (default): every request for such a name, where the person could
//   keep a file, succeeds as far as the client can tell, and nothing is
//   stored, listed or audited;
// - refuse: writes get 403 with a message (audited); reads, DELETE and UNLOCK 404;
// - store: ordinary files (this module answers nothing).
// Finder aborts a whole copy (error -36) when writing a `._` file fails, which
// is why discard, not refuse, is the default.

import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseVaultPath, VellumError, type VaultPath } from '../kernel/index.ts';
import type { Session } from '../session/index.ts';
import { readBody, single, stripMount } from './context.ts';
import { lockInfo, parseTimeout, sendDiscovery } from './methods/lock.ts';
import { destinationPath } from './methods/transfer.ts';
import { submittedLockTokens } from './preconditions.ts';
import type { DavOptions } from './options.ts';
import { emptyProperty, responseXml } from './multistatus.ts';
import { clarkName, davChild, elementsOf, isDav, parseXml } from './xml.ts';

/** Largest body accepted (and dropped) for a discarded PUT: `._` files are a few KiB, `.DS_Store` rarely above 100 KiB. */
export const DISCARDED_BODY_BYTES = 1024 * 1024;
/** Longest lock granted on a discarded name; the client's shorter Timeout is honoured. */
const DISCARDED_LOCK_SECONDS = 3600;

const READS = new Set(['GET', 'HEAD', 'PROPFIND']);
/** Under 'refuse', what may be asked of a name that is never there: 404, not 403. */
const ABSENT = new Set([...READS, 'DELETE', 'UNLOCK']);

export function isMacMetadataName(name: string): boolean {
  return (name.startsWith('._') && name.length > 2) || name === '.DS_Store' || name === 'Icon\r';
}

export interface MacMetadataRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** Upper-case method name. */
  readonly method: string;
  readonly options: DavOptions;
  readonly session: Session;
}

/**
 * Answers a request whose URL (or MOVE/COPY Destination) names a macOS
 * metadata file, under the configured policy. Returns false when the request
 * is not one, or the policy is 'store': the method handlers answer it.
 * Runs after authentication, before the path is parsed (`Icon\r` would not
 * pass the name rules). @throws VellumError for bad requests and refusals.
 */
export async function answerMacMetadata(request: MacMetadataRequest): Promise<boolean> {
  const { req, method, options, session } = request;
  if (options.macMetadata === 'store') return false;
  const encoded = stripMount(req.url ?? '/', options.mount);
  const target = metadataTarget(encoded);
  const folder = target?.folder ?? null;
  const named = target !== null;
  const toMetadata = (method === 'MOVE' || method === 'COPY') && metadataDestination(req, options);
  if (!named && !toMetadata) return false;
  const where = folder ?? parseVaultPath(encoded);

  if (options.macMetadata === 'refuse') {
    if (ABSENT.has(method) && !toMetadata) throw new VellumError('NOT_FOUND', 'macOS metadata files are not kept on this server.');
    return session.refuse(where, 'file.write', 'This server refuses macOS metadata files (._*, .DS_Store, Icon\\r): dav.macMetadata is "refuse". Ask the administrator to set it to "discard" if Finder copies fail.');
  }

  // discard: answered as if kept, but only where the person could keep a file (the folder exists, they may write or read there).
  const { res } = request;
  if (target === null) throw new VellumError('FORBIDDEN', 'A file cannot be renamed or copied to a macOS metadata name here: such files are discarded.');
  await session.checkAccess(target.folder, READS.has(method) ? 'read' : 'write', READS.has(method) ? 'file.read' : 'file.write');
  switch (method) {
    case 'PUT':
      await dropBody(req);
      res.writeHead(201, { 'Content-Length': '0' }).end();
      return true;
    case 'DELETE':
    case 'UNLOCK':
      res.writeHead(204).end();
      return true;
    case 'MOVE':
    case 'COPY':
      if (!toMetadata) throw new VellumError('FORBIDDEN', 'A macOS metadata file cannot become an ordinary file here: such files are discarded.');
      res.writeHead(201, { 'Content-Length': '0' }).end();
      return true;
    case 'PROPPATCH':
      sendAcceptedProperties(res, await readBody(req, options.xmlBodyBytes), options.hrefBase + encoded);
      return true;
    case 'LOCK':
      await answerLock(request, target.folder, target.name);
      return true;
    case 'MKCOL':
      throw new VellumError('FORBIDDEN', 'A folder may not have a macOS metadata name (._*, .DS_Store) here: such names are discarded.');
    default:
      if (READS.has(method)) throw new VellumError('NOT_FOUND', 'macOS metadata files are not kept on this server.');
      return false;
  }
}

/** The folder and the name, when the last name of an encoded path below the mount is a metadata name inside a study; else null. */
function metadataTarget(encoded: string): { folder: VaultPath; name: string } | null {
  const segments = encoded.split('/').filter((segment) => segment !== '');
  if (segments.length < 2) return null;
  let name: string;
  try {
    name = decodeURIComponent(segments[segments.length - 1]!);
  } catch {
    return null;
  }
  if (!isMacMetadataName(name)) return null;
  // The folder part must be a valid path: a hostile path gets its 400 here, not a 201.
  return { folder: parseVaultPath('/' + segments.slice(0, -1).join('/')), name };
}

/** True when a MOVE or COPY Destination on this server, under the mount, ends in a metadata name. */
function metadataDestination(req: IncomingMessage, options: DavOptions): boolean {
  let url: URL;
  try {
    url = new URL(String(req.headers.destination ?? '').trim(), 'http://destination.invalid');
  } catch {
    return false;
  }
  const match = /^(.*)\/([^/]+)\/?$/.exec(url.pathname);
  if (!match) return false;
  try {
    if (!isMacMetadataName(decodeURIComponent(match[2]!))) return false;
    // The folder part through the method's own Destination rules (the name itself might not pass them: Icon\r).
    url.pathname = match[1]!;
    const folder = url.host === 'destination.invalid' ? url.pathname : url.href;
    destinationPath(folder, String(req.headers.host ?? ''), options.mount, options.proxied);
    return true;
  } catch {
    return false;
  }
}

/** Reads and drops a body of at most DISCARDED_BODY_BYTES. */
async function dropBody(req: IncomingMessage): Promise<void> {
  const tooLarge = () => new VellumError('BODY_TOO_LARGE', `A discarded macOS metadata file may be at most ${DISCARDED_BODY_BYTES} bytes.`);
  if (Number(req.headers['content-length'] ?? 0) > DISCARDED_BODY_BYTES) throw tooLarge();
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > DISCARDED_BODY_BYTES) throw tooLarge();
  }
}

/** A multistatus that reports every property of a PROPPATCH as set (or removed): 200 each, nothing kept. */
function sendAcceptedProperties(res: ServerResponse, body: string, href: string): void {
  const update = parseXml(body);
  if (!isDav(update, 'propertyupdate')) throw new VellumError('XML_INVALID', 'A PROPPATCH body is a DAV:propertyupdate.');
  const names = elementsOf(update)
    .filter((change) => isDav(change, 'set') || isDav(change, 'remove'))
    .map((change) => davChild(change, 'prop'))
    .flatMap((prop) => (prop === undefined ? [] : elementsOf(prop)))
    .map((property) => emptyProperty(clarkName(property)));
  const xml = `<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">${responseXml(href, [{ status: 200, properties: names }])}</D:multistatus>\n`;
  res.writeHead(207, { 'Content-Type': 'application/xml; charset=utf-8', 'Content-Length': String(Buffer.byteLength(xml)) }).end(xml);
}

/**
 * A well-formed lock on a name that is never stored: Finder locks before it
 * writes and gives up when the lock fails. The token is random and kept
 * nowhere; a refresh gets back the token it names.
 */
async function answerLock(request: MacMetadataRequest, folder: VaultPath, name: string): Promise<void> {
  const { req, res, options, session } = request;
  const body = await readBody(req, options.xmlBodyBytes);
  const refresh = body.trim() === '';
  const token = refresh ? submittedLockTokens({ req }).find((submitted) => submitted.startsWith('opaquelocktoken:')) : `opaquelocktoken:${randomUUID()}`;
  if (token === undefined) throw new VellumError('BAD_REQUEST', 'A LOCK without a body refreshes a lock: name its token in the If header.');
  const { scope, owner } = refresh ? { scope: 'exclusive' as const, owner: null } : lockInfo(parseXml(body));
  const asked = parseTimeout(single(req, 'Timeout'));
  const seconds = typeof asked === 'number' ? Math.max(1, Math.min(DISCARDED_LOCK_SECONDS, asked)) : DISCARDED_LOCK_SECONDS;
  const now = Date.now();
  const { id, login, displayName } = session.principal;
  res.setHeader('Lock-Token', `<${token}>`);
  sendDiscovery(res, options.hrefBase, refresh ? 200 : 201, [{
    token, study: folder.study!, root: [...folder.names, name], scope, depth: 0, owner, timeoutSeconds: seconds,
    expiresAt: new Date(now + seconds * 1000).toISOString(), createdAt: new Date(now).toISOString(), createdBy: { id, login, displayName },
  }]);
}
