// Request bodies for the Koa side (API JSON, UI forms): whether there is one,
// and reading it whole, bounded, as UTF-8. A body too large stops being read
// without resetting the socket, so the client still gets the 413.

import type { IncomingMessage } from 'node:http';
import { VellumError } from '../kernel/index.ts';
import { lingerThenDrop } from '../session/index.ts';

export function hasBody(req: IncomingMessage): boolean {
  return Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
}

/** The whole body as UTF-8, at most maxBytes; stops reading (without destroying the socket) when it is larger. */
export function readText(req: IncomingMessage, maxBytes: number): Promise<string> {
  const tooLarge = () => new VellumError('BODY_TOO_LARGE', `A request body here may be at most ${maxBytes} bytes.`);
  if (Number(req.headers['content-length'] ?? 0) > maxBytes) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (error: VellumError | null) => {
      req.off('data', onData).off('end', onEnd).off('close', onClose);
      if (error) {
        lingerThenDrop(req);
        reject(error);
        return;
      }
      try {
        resolve(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks)));
      } catch {
        reject(new VellumError('BAD_REQUEST', 'The body is not valid UTF-8.'));
      }
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) finish(tooLarge());
      else chunks.push(chunk);
    };
    const onEnd = () => finish(null);
    const onClose = () => finish(new VellumError('BAD_REQUEST', 'The request body ended early.'));
    req.on('data', onData).on('end', onEnd).on('close', onClose);
  });
}
