// The one place where the error catalog becomes HTTP for WebDAV clients.

import type { ServerResponse } from 'node:http';
import { asVellumError } from '../kernel/index.ts';

export interface ErrorResponseOptions {
  readonly realm: string;
  readonly log: (message: string, error: unknown) => void;
}

export function sendError(res: ServerResponse, error: unknown, options: ErrorResponseOptions): void {
  const e = asVellumError(error);
  if (e.status >= 500 && e.code !== 'DIRECTORY_UNAVAILABLE' && e.code !== 'HSM_UNAVAILABLE') options.log(`${e.code}: ${e.message}`, e.cause ?? e);
  if (res.headersSent) {
    // Part of a body was sent already: the only honest signal left is to cut the connection.
    res.destroy();
    return;
  }
  const body = `${e.message}\n`;
  const headers: Record<string, string> = {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
    'X-Vellum-Error': e.code,
  };
  if (e.status === 401) headers['WWW-Authenticate'] = `Basic realm="${options.realm}", charset="UTF-8"`;
  if (e.status === 503) headers['Retry-After'] = '10';
  res.writeHead(e.status, headers);
  res.end(res.req?.method === 'HEAD' ? undefined : body);
}
