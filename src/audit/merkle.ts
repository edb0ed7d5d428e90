// The Merkle tree over the trail's entry hashes, as RFC 6962 §2.1 (and RFC
// 9162 §2.1) define it, so that a signed root proves that any one entry, or
// any subset of them, belongs to the log without handing over the rest.
//
// Leaf i (0-based) is entry seq i+1. leaf = SHA-256(0x00 || the 32 bytes of
// the entry's hash); node = SHA-256(0x01 || left || right); a tree of n > 1
// leaves splits at k, the largest power of two below n: the left part is a
// perfect subtree, the right part a tree of n - k leaves. The empty tree's
// root is SHA-256 of nothing.
//
// Sizes and indices are plain numbers used with arithmetic, not 32-bit bit
// operations, so a log may outgrow 2^31 entries.

import { createHash } from 'node:crypto';

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);
const HEX_HASH = /^[0-9a-f]{64}$/;

export function leafHash(entryHashHex: string): Buffer {
  if (!HEX_HASH.test(entryHashHex)) throw new Error('an entry hash is 64 lowercase hex characters');
  return createHash('sha256').update(LEAF_PREFIX).update(Buffer.from(entryHashHex, 'hex')).digest();
}

export function nodeHash(left: Buffer, right: Buffer): Buffer {
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

export function emptyRoot(): Buffer {
  return createHash('sha256').digest();
}

/** The largest power of two strictly below n (n >= 2). */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** A perfect subtree: 2^level leaves starting at leaf index × 2^level. */
export interface PerfectSubtree {
  readonly level: number;
  readonly index: number;
}

/** The perfect subtrees, left to right, whose leaves are exactly [0, size): one per set bit of size. */
export function frontierOf(size: number): PerfectSubtree[] {
  const out: PerfectSubtree[] = [];
  let start = 0;
  for (let level = Math.floor(Math.log2(Math.max(size, 1))) + 1; level >= 0; level--) {
    const width = 2 ** level;
    if (size - start >= width) {
      out.push({ level, index: start / width });
      start += width;
    }
  }
  return out;
}

/** A completed perfect subtree of level >= 1, as an append reports it (worth storing). */
export interface CompletedNode extends PerfectSubtree {
  readonly hash: Buffer;
}

/**
 * The roots of the perfect subtrees covering every leaf so far (a "compact
 * range"): O(log n) hashes from which the next appends and the root follow.
 */
export class MerkleFrontier {
  #size: number;
  /** Left to right; levels strictly decreasing. */
  readonly #stack: { level: number; hash: Buffer }[];

  private constructor(size: number, stack: { level: number; hash: Buffer }[]) {
    this.#size = size;
    this.#stack = stack;
  }

  static empty(): MerkleFrontier {
    return new MerkleFrontier(0, []);
  }

  /** Rebuilds the frontier of `size` from the hashes of frontierOf(size), in that order. */
  static of(size: number, hashes: readonly Buffer[]): MerkleFrontier {
    const shape = frontierOf(size);
    if (shape.length !== hashes.length) throw new Error(`a tree of ${size} leaves has ${shape.length} frontier hashes, not ${hashes.length}`);
    return new MerkleFrontier(size, shape.map((s, i) => ({ level: s.level, hash: hashes[i]! })));
  }

  get size(): number {
    return this.#size;
  }

  /** The frontier's hashes, left to right (as MerkleFrontier.of takes them). */
  hashes(): Buffer[] {
    return this.#stack.map((s) => s.hash);
  }

  /** Adds the next leaf; returns the subtrees of level >= 1 it completed, lowest first. */
  append(leaf: Buffer): CompletedNode[] {
    this.#size++;
    const completed: CompletedNode[] = [];
    let top = { level: 0, hash: leaf };
    while (this.#stack.length > 0 && this.#stack[this.#stack.length - 1]!.level === top.level) {
      const left = this.#stack.pop()!;
      top = { level: top.level + 1, hash: nodeHash(left.hash, top.hash) };
      completed.push({ level: top.level, index: this.#size / 2 ** top.level - 1, hash: top.hash });
    }
    this.#stack.push(top);
    return completed;
  }

  /** The root of the tree of every leaf appended so far. */
  root(): Buffer {
    if (this.#stack.length === 0) return emptyRoot();
    let hash = this.#stack[this.#stack.length - 1]!.hash;
    for (let i = this.#stack.length - 2; i >= 0; i--) hash = nodeHash(this.#stack[i]!.hash, hash);
    return hash;
  }
}

/** Where a proof's hashes come from: level 0 is the leaf hash of entry index+1. */
export type SubtreeHashes = (level: number, index: number) => Promise<Buffer>;

/**
 * The audit path of leaf `index` in the tree of `size` leaves (RFC 6962
 * §2.1.1 PATH), bottom-up. Every hash it needs is a perfect subtree asked of
 * `subtree`, or a right-edge subtree computed from perfect ones.
 */
export async function inclusionProof(index: number, size: number, subtree: SubtreeHashes, memo?: Map<string, Buffer>): Promise<Buffer[]> {
  if (!(Number.isSafeInteger(index) && Number.isSafeInteger(size) && index >= 0 && index < size)) throw new Error(`leaf ${index} is not in a tree of ${size}`);
  const path: Buffer[] = [];
  let lo = 0;
  let hi = size;
  const siblings: { lo: number; hi: number }[] = [];
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo);
    if (index < lo + k) {
      siblings.push({ lo: lo + k, hi });
      hi = lo + k;
    } else {
      siblings.push({ lo, hi: lo + k });
      lo += k;
    }
  }
  for (let i = siblings.length - 1; i >= 0; i--) path.push(await rangeHash(siblings[i]!.lo, siblings[i]!.hi, subtree, memo));
  return path;
}

/**
 * MTH of leaves [lo, hi): perfect aligned ranges are asked for, others split as
 * RFC 6962 does. `memo` keeps the split ones (only the right edge of a tree is
 * split: at most one per level), for callers that prove many leaves of one size.
 */
export async function rangeHash(lo: number, hi: number, subtree: SubtreeHashes, memo?: Map<string, Buffer>): Promise<Buffer> {
  const width = hi - lo;
  if (width <= 0) throw new Error('an empty range has no subtree hash');
  const level = Math.log2(width);
  if (Number.isInteger(level) && lo % width === 0) return subtree(level, lo / width);
  const key = `${lo}:${hi}`;
  const known = memo?.get(key);
  if (known !== undefined) return known;
  const k = splitPoint(width);
  const hash = nodeHash(await rangeHash(lo, lo + k, subtree, memo), await rangeHash(lo + k, hi, subtree, memo));
  memo?.set(key, hash);
  return hash;
}

/**
 * The root that `proof` leads to from `leaf` at `index` in a tree of `size`
 * (RFC 9162 §2.1.3.2), or null when the proof has the wrong shape for that
 * index and size. The caller compares the result with the signed root.
 */
export function rootFromInclusionProof(index: number, size: number, leaf: Buffer, proof: readonly Buffer[]): Buffer | null {
  if (!(Number.isSafeInteger(index) && Number.isSafeInteger(size) && index >= 0 && index < size)) return null;
  let fn = index;
  let sn = size - 1;
  let hash = leaf;
  for (const sibling of proof) {
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      hash = nodeHash(sibling, hash);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      hash = nodeHash(hash, sibling);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 ? hash : null;
}
