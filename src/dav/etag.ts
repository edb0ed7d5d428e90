// Entity tags: a file's ETag is its current version's id, so it changes with
// every version and never repeats; a folder's is its node id.

import type { NodeRecord } from '../vault/index.ts';

export function etagOf(node: NodeRecord | 'root'): string {
  if (node === 'root') return '"root"';
  return `"${node.currentVersion?.id ?? node.id}"`;
}
