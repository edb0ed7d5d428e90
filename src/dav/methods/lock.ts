// LOCK (RFC 4918 §9.10): a new write lock from a DAV:lockinfo body, or,
// without a body, a refresh of the locks named in the If header. The answer
// is the lock discovery of what was granted, with the Lock-Token header for a
// new lock (201 when the LOCK made the resource, an empty file).

import type { ServerResponse } from 'node:http';
import { VellumError } from '../../kernel/index.ts';
import type { LockRecord, LockRequest } from '../../vault/index.ts';
import { readBody, single, type DavContext } from '../context.ts';
import { submittedLockTokens } from '../preconditions.ts';
import { activeLockXml } from '../live-properties.ts';
import { davChild, elementsOf, isDav, parseXml, serializeElement, type XmlElement } from '../xml.ts';

export async function lock(ctx: DavContext): Promise<void> {
  const { req, res, session, path, options } = ctx;
  const depth = lockDepth(single(req, 'Depth'));
  const timeout = parseTimeout(single(req, 'Timeout'));
  const body = await readBody(req, options.xmlBodyBytes);
  if (body.trim() === '') {
    if (submittedLockTokens(ctx).length === 0) throw new VellumError('BAD_REQUEST', 'A LOCK without a body refreshes a lock: send its token in an If header.');
    const refreshed = await session.refreshLock(path, timeout);
    sendDiscovery(res, options.hrefBase, 200, refreshed);
    return;
  }
  const info = lockInfo(parseXml(body));
  const { lock: granted, created } = await session.lock(path, { ...info, depth, ...(timeout === undefined ? {} : { timeout }) });
  res.setHeader('Lock-Token', `<${granted.token}>`);
  sendDiscovery(res, options.hrefBase, created ? 201 : 200, [granted]);
}

/** LOCK takes Depth 0 or infinity; without the header, infinity (RFC 4918 §9.10.3). */
function lockDepth(header: string | undefined): 0 | 'infinity' {
  const depth = header?.trim().toLowerCase();
  if (depth === undefined || depth === 'infinity') return 'infinity';
  if (depth === '0') return 0;
  throw new VellumError('DEPTH_INVALID', 'LOCK takes Depth: 0 or Depth: infinity.');
}

/**
 * The first timeout in the client's list we understand (RFC 4918 §10.7:
 * `Second-N` or `Infinite`, comma-separated); undefined without the header.
 */
export function parseTimeout(header: string | undefined): number | 'infinite' | undefined {
  if (header === undefined) return undefined;
  const entries = header.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  if (entries.length === 0) throw new VellumError('BAD_REQUEST', 'Timeout must be Second-N or Infinite.');
  for (const entry of entries) {
    if (/^infinite$/i.test(entry)) return 'infinite';
    const seconds = /^second-(\d{1,20})$/i.exec(entry);
    if (!seconds) throw new VellumError('BAD_REQUEST', `Timeout: "${entry.slice(0, 40)}" is neither Second-N nor Infinite.`);
    const value = Number(seconds[1]);
    // Beyond what any bound could grant: the same as asking for no limit.
    return Number.isSafeInteger(value) ? value : 'infinite';
  }
  return undefined;
}

/** Scope and owner from a DAV:lockinfo body. @throws XML_INVALID */
export function lockInfo(root: XmlElement): Pick<LockRequest, 'scope' | 'owner'> {
  if (!isDav(root, 'lockinfo')) throw new VellumError('XML_INVALID', 'The LOCK body must be a DAV:lockinfo element.');
  const scopeElement = davChild(root, 'lockscope');
  const scopes = scopeElement ? elementsOf(scopeElement) : [];
  const scope = scopes.length === 1 && (isDav(scopes[0]!, 'exclusive') || isDav(scopes[0]!, 'shared')) ? (scopes[0]!.local as 'exclusive' | 'shared') : null;
  if (scope === null) throw new VellumError('XML_INVALID', 'DAV:lockinfo needs a DAV:lockscope holding DAV:exclusive or DAV:shared.');
  const type = davChild(root, 'locktype');
  if (!type || !elementsOf(type).some((child) => isDav(child, 'write'))) throw new VellumError('XML_INVALID', 'DAV:lockinfo needs a DAV:locktype holding DAV:write (the only lock type).');
  const owner = davChild(root, 'owner');
  return { scope, owner: owner ? serializeElement(owner) : null };
}

/** The answer to a LOCK: the discovery of the locks granted or refreshed. */
export function sendDiscovery(res: ServerResponse, hrefBase: string, status: number, locks: readonly LockRecord[]): void {
  const body = '<?xml version="1.0" encoding="utf-8"?>\n<D:prop xmlns:D="DAV:"><D:lockdiscovery>'
    + locks.map((lock) => activeLockXml(lock, hrefBase)).join('')
    + '</D:lockdiscovery></D:prop>\n';
  res.writeHead(status, { 'Content-Type': 'application/xml; charset=utf-8', 'Content-Length': String(Buffer.byteLength(body)) }).end(body);
}
