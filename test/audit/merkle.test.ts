// The Merkle tree of RFC 6962 §2.1 over entry hashes: the incremental
// frontier, subtree hashes and inclusion proofs agree with the RFC's
// recursive definition written out naively here, and a proof fails for any
// other leaf, index, size or sibling.

import test from 'ava';
import { createHash } from 'node:crypto';
import { emptyRoot, frontierOf, inclusionProof, leafHash, MerkleFrontier, nodeHash, rangeHash, rootFromInclusionProof } from '../../src/audit/merkle.ts';

const sha256 = (...parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest();
const entryHashes = (n: number) => Array.from({ length: n }, (_, i) => sha256(Buffer.from(`entry ${i + 1}`)).toString('hex'));

/** MTH(D[n]) exactly as RFC 6962 §2.1 writes it. */
function referenceRoot(hashes: readonly string[]): Buffer {
  if (hashes.length === 0) return sha256();
  if (hashes.length === 1) return sha256(Buffer.from([0]), Buffer.from(hashes[0]!, 'hex'));
  let k = 1;
  while (k * 2 < hashes.length) k *= 2;
  return sha256(Buffer.from([1]), referenceRoot(hashes.slice(0, k)), referenceRoot(hashes.slice(k)));
}

/** PATH(m, D[n]) exactly as RFC 6962 §2.1.1 writes it. */
function referencePath(m: number, hashes: readonly string[]): Buffer[] {
  if (hashes.length <= 1) return [];
  let k = 1;
  while (k * 2 < hashes.length) k *= 2;
  return m < k ? [...referencePath(m, hashes.slice(0, k)), referenceRoot(hashes.slice(k))] : [...referencePath(m - k, hashes.slice(k)), referenceRoot(hashes.slice(0, k))];
}

const subtreeOf = (hashes: readonly string[]) => async (level: number, index: number) => referenceRoot(hashes.slice(index * 2 ** level, (index + 1) * 2 ** level));

test('the leaf and node hashes carry the 0x00 and 0x01 prefixes; the empty root is SHA-256 of nothing', (t) => {
  const [h] = entryHashes(1);
  t.deepEqual(leafHash(h!), sha256(Buffer.from([0]), Buffer.from(h!, 'hex')));
  const a = sha256(Buffer.from('a'));
  const b = sha256(Buffer.from('b'));
  t.deepEqual(nodeHash(a, b), sha256(Buffer.from([1]), a, b));
  t.is(emptyRoot().toString('hex'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  t.throws(() => leafHash('ABC'), { message: /64 lowercase hex/ });
});

test('the frontier root after every append equals the RFC root, and it rebuilds from its hashes', (t) => {
  const hashes = entryHashes(70);
  const frontier = MerkleFrontier.empty();
  t.deepEqual(frontier.root(), referenceRoot([]));
  for (let n = 1; n <= hashes.length; n++) {
    frontier.append(leafHash(hashes[n - 1]!));
    t.deepEqual(frontier.root(), referenceRoot(hashes.slice(0, n)), `size ${n}`);
    t.deepEqual(frontierOf(n).length, frontier.hashes().length, `size ${n}`);
    t.deepEqual(MerkleFrontier.of(n, frontier.hashes()).root(), frontier.root(), `rebuilt at size ${n}`);
  }
});

test('an append reports exactly the perfect subtrees it completes, with their hashes', (t) => {
  const hashes = entryHashes(16);
  const frontier = MerkleFrontier.empty();
  const reported = hashes.flatMap((h) => frontier.append(leafHash(h)));
  // 8 of level 1, 4 of level 2, 2 of level 3, 1 of level 4.
  t.is(reported.length, 15);
  for (const node of reported) {
    const width = 2 ** node.level;
    t.deepEqual(node.hash, referenceRoot(hashes.slice(node.index * width, (node.index + 1) * width)), `level ${node.level} index ${node.index}`);
  }
  t.deepEqual(frontierOf(13), [{ level: 3, index: 0 }, { level: 2, index: 2 }, { level: 0, index: 12 }]);
});

test('inclusion proofs equal the RFC paths and lead to the root; any other leaf, index, size or sibling does not', async (t) => {
  for (const size of [1, 2, 3, 5, 7, 8, 13, 16, 33]) {
    const hashes = entryHashes(size);
    const root = referenceRoot(hashes);
    t.deepEqual(await rangeHash(0, size, subtreeOf(hashes)), root, `root of ${size}`);
    for (let index = 0; index < size; index++) {
      const proof = await inclusionProof(index, size, subtreeOf(hashes));
      t.deepEqual(proof, referencePath(index, hashes), `path of ${index} in ${size}`);
      const leaf = leafHash(hashes[index]!);
      t.deepEqual(rootFromInclusionProof(index, size, leaf, proof), root);
      const other = leafHash(entryHashes(size + 1)[size]!);
      t.notDeepEqual(rootFromInclusionProof(index, size, other, proof), root, 'another leaf');
      if (size > 1) {
        t.notDeepEqual(rootFromInclusionProof((index + 1) % size, size, leaf, proof), root, 'another index');
        const bent = proof.map((p, i) => (i === 0 ? nodeHash(p, p) : p));
        t.notDeepEqual(rootFromInclusionProof(index, size, leaf, bent), root, 'a changed sibling');
        t.is(rootFromInclusionProof(index, size, leaf, proof.slice(1)), null, 'a short proof');
      }
      t.not(rootFromInclusionProof(index, size + 64, leaf, proof)?.equals(root) ?? false, true, 'another size');
    }
  }
  t.is(rootFromInclusionProof(3, 3, leafHash(entryHashes(1)[0]!), []), null, 'index beyond the tree');
  await t.throwsAsync(inclusionProof(3, 3, subtreeOf(entryHashes(3))), { message: /not in a tree/ });
});

test('a memo of the right-edge subtrees gives the same proofs, and holds at most one subtree per level', async (t) => {
  const size = 45;
  const hashes = entryHashes(size);
  const memo = new Map<string, Buffer>();
  for (let index = 0; index < size; index++) t.deepEqual(await inclusionProof(index, size, subtreeOf(hashes), memo), referencePath(index, hashes), `leaf ${index}`);
  t.true(memo.size > 0 && memo.size <= Math.ceil(Math.log2(size)));
  for (const key of memo.keys()) t.true(key.endsWith(`:${size}`), `${key} is on the right edge`);
});
