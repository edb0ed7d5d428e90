// DELETE: a tombstone; the item goes to the trash with its history.

import type { DavContext } from '../context.ts';

export async function remove(ctx: DavContext): Promise<void> {
  await ctx.session.remove(ctx.path);
  ctx.res.writeHead(204).end();
}
