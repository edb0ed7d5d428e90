// DELETE: a tombstone; the item goes to the trash with its history. A folder
// always goes with everything in it (RFC 4918 §9.6.1): Depth other than
// infinity is refused rather than taken to mean something else.

import { VellumError } from '../../kernel/index.ts';
import { single, type DavContext } from '../context.ts';

export async function remove(ctx: DavContext): Promise<void> {
  const depth = single(ctx.req, 'Depth')?.trim().toLowerCase();
  if (depth !== undefined && depth !== 'infinity') {
    const node = await ctx.session.stat(ctx.path);
    if (node.kind === 'folder' || depth !== '0') throw new VellumError('DEPTH_INVALID', 'DELETE of a folder takes Depth: infinity (or no Depth header); a file takes Depth 0 or infinity.');
  }
  await ctx.session.remove(ctx.path);
  ctx.res.writeHead(204).end();
}
