// The bytes the benchmark uploads: one random 1 MiB block, made fresh per run
// and kept in memory, repeated with the block's number written every 4 KiB, so
// no two blocks are equal (not trivially compressible or deduplicable) and a
// 1 GiB body never exists as a file or in memory at once.

import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';

export const BLOCK_SIZE = 1024 * 1024;
const STAMP_EVERY = 4096;

export function newBlock(): Buffer {
  return randomBytes(BLOCK_SIZE);
}

/** The n-th chunk of the pattern: a fresh buffer (it may still sit in a socket queue after it is handed on). */
function chunk(block: Buffer, index: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  block.copy(out, 0, 0, length);
  for (let at = 0; at + 4 <= length; at += STAMP_EVERY) out.writeUInt32BE((index ^ out.readUInt32BE(at)) >>> 0, at);
  return out;
}

export function* patternChunks(block: Buffer, size: number): Generator<Buffer> {
  let index = 0;
  for (let offset = 0; offset < size; offset += BLOCK_SIZE, index++) {
    yield chunk(block, index, Math.min(BLOCK_SIZE, size - offset));
  }
}

export function patternStream(block: Buffer, size: number): Readable {
  return Readable.from(patternChunks(block, size), { objectMode: false });
}

/** SHA-256 (hex) of the whole pattern, and how long making and hashing it took. */
export function patternDigest(block: Buffer, size: number): { sha256: string; seconds: number } {
  const started = performance.now();
  const hash = createHash('sha256');
  for (const piece of patternChunks(block, size)) hash.update(piece);
  return { sha256: hash.digest('hex'), seconds: (performance.now() - started) / 1000 };
}

/** A small body of `size` bytes taken from the block (for the 4 KiB and 1 MiB files). */
export function smallBody(block: Buffer, size: number, salt: number): Buffer {
  if (size <= BLOCK_SIZE) return chunk(block, salt, size);
  return Buffer.concat([...patternChunks(block, size)]);
}
