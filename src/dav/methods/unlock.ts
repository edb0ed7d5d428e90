// UNLOCK (RFC 4918 §9.11): removes the lock named by the Lock-Token header;
// the request URL must be within the lock's scope.

import { VellumError } from '../../kernel/index.ts';
import { single, type DavContext } from '../context.ts';

export async function unlock(ctx: DavContext): Promise<void> {
  const header = single(ctx.req, 'Lock-Token');
  const token = header === undefined ? undefined : /^\s*<([^<>\s]+)>\s*$/.exec(header)?.[1];
  if (token === undefined) throw new VellumError('BAD_REQUEST', 'UNLOCK needs a Lock-Token: <token> header.');
  await ctx.session.unlock(ctx.path, token);
  ctx.res.writeHead(204).end();
}
