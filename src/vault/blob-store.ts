// Encrypted blobs on disk. A write goes to a temporary file on the same
// filesystem, is fsynced, renamed into place and its folder fsynced, so a blob
// that has a name is complete. Plaintext exists only in memory, a segment at a
// time.

import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isVellumError, VellumError } from '../kernel/index.ts';
import type { KeyVault } from '../keys/index.ts';
import {
  bodySize, decodeHeader, decryptSegment, encodeHeader, headerLength, newNoncePrefix, PREAMBLE_BYTES,
  SEGMENT_SIZE, SegmentEncryptor, segmentCount, TAG_SIZE,
} from './blob-format.ts';

export interface StoredBlob {
  readonly blobId: string;
  readonly size: number;
  readonly sha256: string;
  readonly kekVersion: number;
}

/** Inclusive plaintext byte range. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

export interface BlobStore {
  /**
   * Encrypts `source` into a new blob under the study's current KEK.
   * @throws VellumError UPLOAD_INCOMPLETE when the source errors or ends early,
   *   BODY_TOO_LARGE past `maxBytes`, HSM_UNAVAILABLE. Nothing is left on disk.
   */
  write(study: string, source: Readable, maxBytes: number): Promise<StoredBlob>;
  /**
   * Streams the plaintext (or a range of it). Bytes are released a segment at a
   * time and only after that segment authenticated; a failure destroys the
   * stream with INTEGRITY_FAILURE.
   * @throws VellumError INTEGRITY_FAILURE when the header or size is wrong.
   */
  read(blob: { blobId: string; study: string; size: number }, range?: ByteRange): Promise<Readable>;
  remove(blobId: string): Promise<void>;
}

export function newBlobId(): string {
  return randomBytes(16).toString('hex');
}

export async function openBlobStore(dataDir: string, keys: KeyVault): Promise<BlobStore> {
  const blobsDir = join(dataDir, 'blobs');
  const tmpDir = join(dataDir, 'tmp');
  await mkdir(blobsDir, { recursive: true, mode: 0o700 });
  await mkdir(tmpDir, { recursive: true, mode: 0o700 });
  const pathOf = (blobId: string) => join(blobsDir, blobId.slice(0, 2), blobId);

  return {
    async write(study, source, maxBytes) {
      const blobId = newBlobId();
      const dataKey = await keys.newDataKey(study);
      const header = encodeHeader({
        blobId,
        study,
        cipher: 'AES-256-GCM',
        segmentSize: SEGMENT_SIZE,
        noncePrefix: newNoncePrefix().toString('base64'),
        kek: { study: dataKey.wrapped.study, version: dataKey.wrapped.kekVersion, mechanism: dataKey.wrapped.mechanism },
        wrappedKey: dataKey.wrapped.wrapped.toString('base64'),
      });
      const encryptor = new SegmentEncryptor(dataKey.key, header);
      const temp = join(tmpDir, `${blobId}.part`);
      try {
        // flush: true fsyncs the file before the stream reports it is closed.
        await pipeline(source, limit(maxBytes), encryptor, createWriteStream(temp, { flags: 'wx', mode: 0o600, flush: true }));
        const folder = join(blobsDir, blobId.slice(0, 2));
        await mkdir(folder, { recursive: true, mode: 0o700 });
        await rename(temp, pathOf(blobId));
        await fsyncDir(folder);
        return { blobId, size: encryptor.size, sha256: encryptor.sha256, kekVersion: dataKey.wrapped.kekVersion };
      } catch (e) {
        await rm(temp, { force: true });
        if (e instanceof VellumError) throw e;
        throw new VellumError('UPLOAD_INCOMPLETE', undefined, { cause: e });
      } finally {
        dataKey.key.fill(0);
      }
    },

    async read(blob, range) {
      const path = pathOf(blob.blobId);
      const handle = await open(path, 'r').catch((e: NodeJS.ErrnoException) => {
        throw new VellumError('INTEGRITY_FAILURE', `The blob of this version is missing (${e.code}).`);
      });
      try {
        const preamble = Buffer.alloc(PREAMBLE_BYTES);
        await readExactly(handle, preamble, 0);
        const json = Buffer.alloc(headerLength(preamble));
        await readExactly(handle, json, PREAMBLE_BYTES);
        const header = decodeHeader(preamble, json);
        if (header.header.blobId !== blob.blobId || header.header.study !== blob.study || header.header.kek.study !== blob.study) {
          throw new VellumError('INTEGRITY_FAILURE', 'The blob header belongs to another blob.');
        }
        const dataStart = header.bytes.length;
        const { size } = await handle.stat();
        if (size !== dataStart + bodySize(blob.size)) {
          throw new VellumError('INTEGRITY_FAILURE', `The blob is ${size} bytes long; ${dataStart + bodySize(blob.size)} were expected.`);
        }
        const key = await keys.unwrapDataKey({
          study: header.header.kek.study,
          kekVersion: header.header.kek.version,
          mechanism: header.header.kek.mechanism,
          wrapped: Buffer.from(header.header.wrappedKey, 'base64'),
        }).catch((e: unknown) => {
          // The header is not authenticated yet: a key it names that does not
          // exist is a damaged blob, not a missing file (404, unaudited).
          if (isVellumError(e, 'NOT_FOUND')) throw new VellumError('INTEGRITY_FAILURE', 'The blob header names a key that does not exist.', { cause: e });
          throw e;
        });
        const prefix = Buffer.from(header.header.noncePrefix, 'base64');
        const count = segmentCount(blob.size);
        const start = range?.start ?? 0;
        const end = range?.end ?? blob.size - 1;
        const segments = async function* (): AsyncGenerator<Buffer> {
          if (blob.size === 0 || end < start) {
            decryptSegment(key, prefix, header.digest, 0, true, await readAt(handle, dataStart, TAG_SIZE));
            return;
          }
          for (let index = Math.floor(start / SEGMENT_SIZE); index <= Math.floor(end / SEGMENT_SIZE); index++) {
            const last = index === count - 1;
            const plainLength = last ? blob.size - index * SEGMENT_SIZE : SEGMENT_SIZE;
            const sealed = await readAt(handle, dataStart + index * (SEGMENT_SIZE + TAG_SIZE), plainLength + TAG_SIZE);
            const plain = decryptSegment(key, prefix, header.digest, index, last, sealed);
            const from = index * SEGMENT_SIZE;
            yield plain.subarray(Math.max(0, start - from), Math.min(plain.length, end - from + 1));
          }
        };
        const stream = Readable.from(segments(), { objectMode: false });
        // 'close' comes however the stream ends: read to the end, failed, or abandoned.
        stream.once('close', () => void handle.close().catch(() => undefined));
        return stream;
      } catch (e) {
        await handle.close();
        throw e;
      }
    },

    async remove(blobId) {
      await rm(pathOf(blobId), { force: true });
    },
  };
}

async function readExactly(handle: Awaited<ReturnType<typeof open>>, buffer: Buffer, position: number): Promise<void> {
  const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
  if (bytesRead !== buffer.length) throw new VellumError('INTEGRITY_FAILURE', 'The blob is truncated.');
}

async function readAt(handle: Awaited<ReturnType<typeof open>>, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  await readExactly(handle, buffer, position);
  return buffer;
}

async function fsyncDir(path: string): Promise<void> {
  const dir = await open(path, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

function limit(maxBytes: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      seen += chunk.length;
      if (seen > maxBytes) done(new VellumError('BODY_TOO_LARGE', `A file may be at most ${maxBytes} bytes.`));
      else done(null, chunk);
    },
  });
}

