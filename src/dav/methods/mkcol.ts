// MKCOL: a new folder. A body (extended MKCOL) is not supported: 415.

import { VellumError } from '../../kernel/index.ts';
import { hasBody, type DavContext } from '../context.ts';

export async function mkcol(ctx: DavContext): Promise<void> {
  if (hasBody(ctx.req)) throw new VellumError('UNSUPPORTED_MEDIA_TYPE', 'MKCOL takes no body.');
  await ctx.session.makeFolder(ctx.path);
  ctx.res.writeHead(201, { 'Content-Length': '0' }).end();
}
