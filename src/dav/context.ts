// What every WebDAV method handler gets: the request, the response, the
// person's session and the path parsed once, plus the small header helpers
// the methods share.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { VellumError, type VaultPath } from '../kernel/index.ts';
import type { Session } from '../session/index.ts';
import type { DavOptions } from './options.ts';

export interface DavContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** Upper-case method name. */
  readonly method: string;
  /** The request path below the mount, parsed and normalised once. */
  readonly path: VaultPath;
  readonly session: Session;
  readonly options: DavOptions;
}

export type MethodHandler = (ctx: DavContext) => Promise<void>;

/** A header that must not be repeated; undefined when absent. */
export function single(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name.toLowerCase()];
  if (Array.isArray(value)) throw new VellumError('BAD_REQUEST', `Send ${name} once.`);
  return value;
}

export function hasBody(req: IncomingMessage): boolean {
  return Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
}

/** The request path without the mount and the query. */
export function stripMount(url: string, mount: string): string {
  const path = url.split('?', 1)[0]!;
  if (path === mount) return '/';
  return path.startsWith(mount + '/') ? path.slice(mount.length) : path;
}

/**
 * Reads a whole (XML) request body of at most maxBytes, with or without
 * Content-Length. @throws BODY_TOO_LARGE before reading when the declared
 * length is over the cap, or as soon as the bytes are; XML_INVALID when the
 * body is not UTF-8. An empty body is ''.
 */
export async function readBody(req: IncomingMessage, maxBytes: number): Promise<string> {
  const declared = req.headers['content-length'];
  if (declared !== undefined) {
    const length = Number(declared);
    if (!/^\d+$/.test(declared) || !Number.isSafeInteger(length)) throw new VellumError('BAD_REQUEST', 'Content-Length must be a whole number.');
    if (length > maxBytes) throw new VellumError('BODY_TOO_LARGE', `XML request bodies may be at most ${maxBytes} bytes.`);
    if (length === 0) return '';
  } else if (req.headers['transfer-encoding'] === undefined) {
    return '';
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) throw new VellumError('BODY_TOO_LARGE', `XML request bodies may be at most ${maxBytes} bytes.`);
    chunks.push(chunk);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(Buffer.concat(chunks));
  } catch {
    throw new VellumError('XML_INVALID', 'The body is not UTF-8.');
  }
}
