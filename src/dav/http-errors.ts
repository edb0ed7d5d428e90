// The one place where the error catalog becomes HTTP for WebDAV clients.
// Errors that RFC 4918 names a precondition for carry it as a DAV:error body
// (clients such as Office read those); the rest are plain text.

import type { ServerResponse } from 'node:http';
import { retryAfterSeconds } from '../identity/index.ts';
import { asVellumError, type ErrorCode } from '../kernel/index.ts';
import { escapeText } from './xml.ts';

export interface ErrorResponseOptions {
  readonly realm: string;
  readonly log: (message: string, error: unknown) => void;
}

/** RFC 4918 §16 precondition elements, by catalog code. */
const DAV_CONDITIONS: Partial<Record<ErrorCode, string>> = {
  LOCKED: 'lock-token-submitted',
  LOCK_CONFLICT: 'no-conflicting-lock',
  LOCK_TOKEN_MISMATCH: 'lock-token-matches-request-uri',
  PROPFIND_INFINITE_DEPTH: 'propfind-finite-depth',
};

/** Namespace of Vellum's own elements in DAV:error bodies. */
export const VELLUM_NS = 'urn:vellum';

export function sendError(res: ServerResponse, error: unknown, options: ErrorResponseOptions): void {
  const e = asVellumError(error);
  if (e.status >= 500 && e.code !== 'DIRECTORY_UNAVAILABLE' && e.code !== 'HSM_UNAVAILABLE') options.log(`${e.code}: ${e.message}`, e.cause ?? e);
  if (res.headersSent) {
    // Part of a body was sent already: the only honest signal left is to cut the connection.
    res.destroy();
    return;
  }
  const condition = DAV_CONDITIONS[e.code];
  const body = condition === undefined
    ? `${e.message}\n`
    : `<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:${condition}/><V:message xmlns:V="${VELLUM_NS}">${escapeText(e.message)}</V:message></D:error>\n`;
  const headers: Record<string, string> = {
    'Content-Type': condition === undefined ? 'text/plain; charset=utf-8' : 'application/xml; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
    'X-Vellum-Error': e.code,
  };
  if (e.status === 401) headers['WWW-Authenticate'] = `Basic realm="${options.realm}", charset="UTF-8"`;
  if (e.status === 503) headers['Retry-After'] = '10';
  if (e.status === 429) headers['Retry-After'] = String(retryAfterSeconds(e) ?? 60);
  res.writeHead(e.status, headers);
  res.end(res.req?.method === 'HEAD' ? undefined : body);
}
