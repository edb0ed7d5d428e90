// The trail's Merkle tree on disk: every completed perfect subtree of level
// >= 1 is stored (section `audit-tree`) in the same batch as the entry that
// completed it, so that proofs and subtree hashes need no rescan, and the
// in-memory frontier can be rebuilt at open from O(log n) stored nodes.

import type { Database, Section, WriteOp } from '../db/index.ts';
import { seqKey, type AuditEntry } from './entry.ts';
import { frontierOf, leafHash, MerkleFrontier, type CompletedNode } from './merkle.ts';

export const TREE_SECTION = 'audit-tree';

/** Nodes written per synced batch when a whole tree is rebuilt. */
const REBUILD_BATCH = 10_000;

/** `<level, 2 digits>:<index, 16 digits>`: key order is level, then index. */
export function treeKey(level: number, index: number): string {
  return `${level.toString().padStart(2, '0')}:${index.toString().padStart(16, '0')}`;
}

export function nodePuts(tree: Section<string>, nodes: readonly CompletedNode[]): WriteOp[] {
  return nodes.map((node) => tree.put(treeKey(node.level, node.index), node.hash.toString('hex')));
}

/**
 * The leaf for a stored entry hash. A hash that is not 64 hex characters (a
 * tampered store) still gets a leaf, so that opening the trail never fails on
 * it: verify() reports that entry.
 */
export function storedLeaf(hash: string): Buffer {
  try {
    return leafHash(hash);
  } catch {
    return leafHash('0'.repeat(64));
  }
}

/**
 * The frontier of a tree of `size` leaves from the stored nodes (and the last
 * entry's leaf when size is odd), or null when a node is missing.
 */
export async function loadFrontier(tree: Section<string>, size: number, lastHash: string): Promise<MerkleFrontier | null> {
  const shape = frontierOf(size);
  const stored = await tree.getMany(shape.filter((s) => s.level > 0).map((s) => treeKey(s.level, s.index)));
  if (stored.some((hex) => typeof hex !== 'string' || !/^[0-9a-f]{64}$/.test(hex))) return null;
  const hashes: Buffer[] = stored.map((hex) => Buffer.from(hex!, 'hex'));
  if (shape.length > 0 && shape[shape.length - 1]!.level === 0) hashes.push(storedLeaf(lastHash));
  return MerkleFrontier.of(size, hashes);
}

/**
 * Recomputes the whole tree from the entries in one scan and writes every
 * node (batched, synced): for a trail written before nodes were stored.
 */
export async function rebuildTree(db: Database, entries: Section<AuditEntry>, tree: Section<string>, size: number): Promise<MerkleFrontier> {
  const frontier = MerkleFrontier.empty();
  let ops: WriteOp[] = [];
  for await (const [, entry] of entries.entries({ lte: seqKey(size) })) {
    ops.push(...nodePuts(tree, frontier.append(storedLeaf(entry.hash))));
    if (ops.length >= REBUILD_BATCH) {
      await db.write(ops);
      ops = [];
    }
  }
  await db.write(ops);
  return frontier;
}
