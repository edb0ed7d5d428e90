// Shared by the HTTP front ends (WebDAV, REST API): what to do with a request
// body that will not be read because the request was refused.

import type { IncomingMessage } from 'node:http';

/** How much of a refused body is read and thrown away so the error answer reaches the client. */
const LINGER_BYTES = 1024 * 1024;

/**
 * Closing a socket with unread request bytes makes the kernel send a reset,
 * and the client may lose the error answer already sent. Read and discard a
 * bounded amount first (a "lingering close"); past that, drop the connection.
 */
export function lingerThenDrop(req: IncomingMessage): void {
  let discarded = 0;
  req.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > LINGER_BYTES) req.destroy();
  });
  req.resume();
}
