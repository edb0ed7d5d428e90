// GET and HEAD: the current version, streamed, range-aware.

import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { formatVaultPath, VellumError } from '../../kernel/index.ts';
import { contentTypeFor } from '../content-type.ts';
import type { DavContext } from '../context.ts';
import { etagOf } from '../etag.ts';
import { parseRange } from '../range.ts';

export async function get(ctx: DavContext): Promise<void> {
  const { req, res, session, path } = ctx;
  const headOnly = ctx.method === 'HEAD';
  const file = await session.openFile(path);
  const size = file.version.size;
  const headers: Record<string, string> = {
    'Content-Type': contentTypeFor(file.node.name),
    'Accept-Ranges': 'bytes',
    ETag: etagOf(file.node),
    'Last-Modified': new Date(file.node.modifiedAt).toUTCString(),
  };
  // HEAD reads no content, only the records (as PROPFIND does): no file.read entry.
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
    if (e instanceof VellumError) ctx.options.log(`INTEGRITY ALERT: GET ${formatVaultPath(path)} stopped mid-body: ${e.message}`, e);
    res.destroy();
  }
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
