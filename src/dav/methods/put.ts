// PUT: a new immutable version of the file, streamed into the vault.

import { VellumError } from '../../kernel/index.ts';
import type { DavContext } from '../context.ts';
import { expectedSha256 } from '../digest.ts';
import { etagOf } from '../etag.ts';

export async function put(ctx: DavContext): Promise<void> {
  const { req, res, session, path, options } = ctx;
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > options.uploadBytes) {
    throw new VellumError('BODY_TOO_LARGE', `A file may be at most ${options.uploadBytes} bytes.`);
  }
  const digest = expectedSha256(req.headers);
  const result = await session.writeFile(path, req, { maxBytes: options.uploadBytes, ...(digest === undefined ? {} : { expectedSha256: digest }) });
  res.writeHead(result.created ? 201 : 204, { ETag: etagOf(result.node), ...(result.created ? { 'Content-Length': '0' } : {}) }).end();
}
