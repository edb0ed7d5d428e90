// Encrypted blobs on disk (docs/storage-format.md). A write goes to a temporary
// file on the same filesystem, is fsynced, renamed into place and its folder
// fsynced, so a blob that has a name is complete. Plaintext exists only in
// memory, a segment at a time.
//
// After a blob is written only its two key slots ever change, in place:
// - rewrap writes the DEK wrapped by another KEK version into the slot that
//   does not hold the newest working key, then fsyncs. A crash can tear only
//   that slot; its checksum then fails and readers use the other one.
// - shred zeroes both slots and fsyncs: the content can no longer be read.
// Both are serialised per blob in this process, so a rewrap can never write a
// slot back after a shred, and two rewraps never tear both slots at once.

import { createHash, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, opendir, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isVellumError, VellumError } from '../kernel/index.ts';
import type { KeyVault, WrappedDataKey } from '../keys/index.ts';
import {
  bodySize, decodeHeader, decodeKeySlots, decryptSegment, EMPTY_SLOT, encodeHeader, encodeKeySlot, headerLength, isBlobId,
  KEY_SLOT_SIZE, newNoncePrefix, PREAMBLE_BYTES, SEALED_SEGMENT_SIZE, SEGMENT_SIZE, SegmentEncryptor, segmentCount,
  segmentPlainLength, slotName, slotOffset, TAG_SIZE, validSlots, type EncodedHeader, type KeySlot,
} from './blob-format.ts';

export interface StoredBlob {
  readonly blobId: string;
  readonly size: number;
  /** Lowercase hex SHA-256 of the plaintext. */
  readonly sha256: string;
  readonly kekVersion: number;
}

/** Inclusive plaintext byte range. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** Which blob, and the study whose KEK wraps its data key. */
export interface BlobRef {
  readonly blobId: string;
  readonly study: string;
}

export interface WriteOptions {
  /**
   * Lowercase hex SHA-256 the plaintext must have. When the streamed bytes hash
   * to something else the write fails with DIGEST_MISMATCH and leaves nothing.
   */
  readonly expectedSha256?: string;
}

export interface BlobStore {
  /**
   * Encrypts `source` into a new blob under the study's current KEK.
   * @throws VellumError UPLOAD_INCOMPLETE when the source errors or ends early,
   *   BODY_TOO_LARGE past `maxBytes`, DIGEST_MISMATCH when options.expectedSha256
   *   is given and differs, BAD_REQUEST when it is not 64 lowercase hex digits,
   *   HSM_UNAVAILABLE. On any failure nothing is left on disk.
   */
  write(study: string, source: Readable, maxBytes: number, options?: WriteOptions): Promise<StoredBlob>;
  /**
   * Streams the plaintext (or a range of it). Bytes are released a segment at a
   * time and only after that segment authenticated; a failure destroys the
   * stream with INTEGRITY_FAILURE.
   * @throws VellumError INTEGRITY_FAILURE when the file is missing, its header
   *   belongs to another blob, its size is wrong or no key slot unwraps;
   *   CONTENT_SHREDDED when both key slots are empty; HSM_UNAVAILABLE.
   */
  read(blob: BlobRef & { readonly size: number }, range?: ByteRange): Promise<Readable>;
  /**
   * The KEK version of the newest key slot that unwraps.
   * @throws VellumError INTEGRITY_FAILURE, CONTENT_SHREDDED, HSM_UNAVAILABLE.
   */
  keyVersion(blob: BlobRef): Promise<number>;
  /**
   * Re-wraps the blob's data key under KEK version `toVersion` of its study,
   * inside the HSM, into the key slot that does not hold the newest working
   * key, then fsyncs. No segment is touched. Idempotent: when a valid slot
   * already holds `toVersion` nothing is written (changed: false).
   * @throws VellumError NOT_FOUND when the KEK version does not exist;
   *   BAD_REQUEST when the blob already has a newer version (no going back);
   *   INTEGRITY_FAILURE when the file is missing or damaged or no slot unwraps;
   *   CONTENT_SHREDDED; HSM_UNAVAILABLE.
   */
  rewrap(blob: BlobRef, toVersion: number): Promise<{ kekVersion: number; changed: boolean }>;
  /**
   * Crypto-shreds the blob: zeroes both key slots, fsyncs, and drops the data
   * key from the key vault's cache. Idempotent. The segments stay until
   * remove(); without a wrapped key they cannot be decrypted.
   * @throws VellumError INTEGRITY_FAILURE when the file is missing or its
   *   header is not this blob's.
   */
  shred(blob: BlobRef): Promise<void>;
  /**
   * Decrypts every segment (streaming, flat memory), recomputes the plaintext
   * SHA-256 and compares size and digest with the record. `onProgress` gets the
   * plaintext bytes of this blob verified so far, after each batch.
   * @throws VellumError INTEGRITY_FAILURE naming the problem; CONTENT_SHREDDED;
   *   HSM_UNAVAILABLE.
   */
  verify(blob: BlobRef & { readonly size: number; readonly sha256: string }, onProgress?: (bytes: number) => void): Promise<void>;
  /** Ids of the blobs under blobs/ (anything not named like a blob is skipped). */
  list(): AsyncIterable<string>;
  /**
   * Removes what crashed uploads left in tmp/ and returns the names removed.
   * Uploads in progress in this store are left alone.
   */
  sweepTemporary(): Promise<string[]>;
  remove(blobId: string): Promise<void>;
}

/** Bytes the temporary file's stream gathers before it writes (writev): fewer, larger writes. */
const WRITE_BUFFER = 1024 * 1024;

export function newBlobId(): string {
  return randomBytes(16).toString('hex');
}

/** Segments read per positioned read (512 KiB of ciphertext; a read holds two such buffers). */
const BATCH_SEGMENTS = 8;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** Bytes read at once from the start of a blob: more than preamble, header and key slots take. */
const PROLOGUE_GUESS = 4096;

/** A blob file opened and its header and key slots read and checked against the reference. */
interface OpenedBlob {
  readonly handle: FileHandle;
  readonly header: EncodedHeader;
  readonly slots: [KeySlot, KeySlot];
  readonly fileSize: number;
}

export async function openBlobStore(dataDir: string, keys: KeyVault): Promise<BlobStore> {
  const blobsDir = join(dataDir, 'blobs');
  const tmpDir = join(dataDir, 'tmp');
  await mkdir(blobsDir, { recursive: true, mode: 0o700 });
  await mkdir(tmpDir, { recursive: true, mode: 0o700 });
  /** Names in tmp/ of uploads in progress. */
  const uploading = new Set<string>();
  /** Per-blob tail of slot changes (rewrap, shred). */
  const slotLocks = new Map<string, Promise<unknown>>();

  const pathOf = (blobId: string): string => {
    if (!isBlobId(blobId)) throw new VellumError('INTEGRITY_FAILURE', `${JSON.stringify(blobId)} is not a blob id.`);
    return join(blobsDir, blobId.slice(0, 2), blobId);
  };

  function serialise<T>(blobId: string, task: () => Promise<T>): Promise<T> {
    const previous = slotLocks.get(blobId) ?? Promise.resolve();
    const result = previous.then(task, task);
    const tail = result.catch(() => undefined);
    slotLocks.set(blobId, tail);
    void tail.then(() => {
      if (slotLocks.get(blobId) === tail) slotLocks.delete(blobId);
    });
    return result;
  }

  /** Opens the blob and reads its header and slots; the caller closes the handle. */
  async function openBlob(blob: BlobRef, flags: 'r' | 'r+'): Promise<OpenedBlob> {
    const path = pathOf(blob.blobId);
    const handle = await open(path, flags).catch((e: NodeJS.ErrnoException) => {
      throw new VellumError('INTEGRITY_FAILURE', `The file of blob ${blob.blobId} is missing (${e.code ?? e.message}).`);
    });
    try {
      const { size: fileSize } = await handle.stat();
      // One read fetches the preamble, the header and both key slots of any usual blob.
      const head = Buffer.alloc(Math.min(fileSize, PROLOGUE_GUESS));
      const { bytesRead } = await handle.read(head, 0, head.length, 0);
      const at = async (position: number, length: number, short: string): Promise<Buffer> =>
        position + length <= bytesRead ? head.subarray(position, position + length) : readAt(handle, position, length, short);
      const preamble = await at(0, PREAMBLE_BYTES, 'The blob is shorter than its preamble.');
      const json = await at(PREAMBLE_BYTES, headerLength(preamble), 'The blob is shorter than its header.');
      const header = decodeHeader(preamble, json);
      if (header.header.blobId !== blob.blobId || header.header.study !== blob.study) {
        throw new VellumError('INTEGRITY_FAILURE',
          `The header of blob ${blob.blobId} belongs to another blob (it names blob ${header.header.blobId} of study ${header.header.study}).`);
      }
      const slotBytes = await at(header.slotsStart, 2 * KEY_SLOT_SIZE, 'The blob is shorter than its key slots.');
      return { handle, header, slots: decodeKeySlots(slotBytes), fileSize };
    } catch (e) {
      await handle.close().catch(() => undefined);
      throw e;
    }
  }

  /** CONTENT_SHREDDED when both slots are empty; INTEGRITY_FAILURE when none is valid. */
  function checkSlots(blob: BlobRef, slots: readonly KeySlot[]): void {
    if (slots.every((slot) => slot.state === 'empty')) {
      throw new VellumError('CONTENT_SHREDDED', `Blob ${blob.blobId} was shredded: both key slots are empty.`);
    }
    if (validSlots(slots).length === 0) {
      throw new VellumError('INTEGRITY_FAILURE', `Blob ${blob.blobId} has no usable key slot (${describeSlots(slots)}).`);
    }
  }

  function wrappedOf(blob: BlobRef, slot: KeySlot & { state: 'valid' }): WrappedDataKey {
    return { study: blob.study, kekVersion: slot.kekVersion, mechanism: slot.mechanism, wrapped: slot.wrapped };
  }

  /**
   * The data key, from the newest slot that unwraps; falls back to the other
   * when the first does not unwrap or names a KEK version that does not exist.
   * An unreachable HSM is not a reason to fall back: it fails the read.
   */
  async function unwrapKey(blob: BlobRef, slots: readonly KeySlot[]): Promise<{ key: Buffer; slot: KeySlot & { state: 'valid' } }> {
    checkSlots(blob, slots);
    const failures: string[] = [];
    let cause: unknown;
    for (const slot of validSlots(slots)) {
      try {
        return { key: await keys.unwrapDataKey(wrappedOf(blob, slot)), slot };
      } catch (e) {
        if (!isVellumError(e, 'INTEGRITY_FAILURE') && !isVellumError(e, 'NOT_FOUND')) throw e;
        failures.push(`slot ${slotName(slot.index)} (KEK v${slot.kekVersion}): ${e.code === 'NOT_FOUND' ? 'its KEK version does not exist' : 'it does not unwrap'}`);
        cause = e;
      }
    }
    throw new VellumError('INTEGRITY_FAILURE', `No key slot of blob ${blob.blobId} unwraps: ${failures.join('; ')}.`, { cause });
  }

  function checkLength(blob: BlobRef & { size: number }, opened: OpenedBlob): void {
    const expected = opened.header.dataStart + bodySize(blob.size);
    if (opened.fileSize !== expected) {
      throw new VellumError('INTEGRITY_FAILURE',
        `Blob ${blob.blobId} is ${opened.fileSize} bytes long; ${expected} were expected for ${blob.size} bytes of content.`);
    }
  }

  return {
    async write(study, source, maxBytes, options = {}) {
      const expected = options.expectedSha256;
      if (expected !== undefined && !SHA256_HEX.test(expected)) {
        throw new VellumError('BAD_REQUEST', 'The expected SHA-256 must be 64 lowercase hexadecimal digits.');
      }
      const blobId = newBlobId();
      const dataKey = await keys.newDataKey(study);
      const header = encodeHeader({ blobId, study, cipher: 'AES-256-GCM', segmentSize: SEGMENT_SIZE, noncePrefix: newNoncePrefix().toString('base64') });
      let slotA: Buffer;
      try {
        slotA = encodeKeySlot({ kekVersion: dataKey.wrapped.kekVersion, mechanism: dataKey.wrapped.mechanism, wrapped: dataKey.wrapped.wrapped });
      } catch (e) {
        dataKey.key.fill(0);
        throw new VellumError('INTERNAL', 'The wrapped data key does not fit a key slot.', { cause: e });
      }
      const encryptor = new SegmentEncryptor(dataKey.key, header, [slotA, EMPTY_SLOT]);
      const name = `${blobId}.part`;
      const temp = join(tmpDir, name);
      uploading.add(name);
      try {
        // flush: true fsyncs the file before the stream reports it is closed.
        await pipeline(source, limit(maxBytes), encryptor, createWriteStream(temp, { flags: 'wx', mode: 0o600, flush: true, highWaterMark: WRITE_BUFFER }));
        if (expected !== undefined && encryptor.sha256 !== expected) {
          throw new VellumError('DIGEST_MISMATCH', `Expected SHA-256 ${expected}, the bytes received hash to ${encryptor.sha256}.`);
        }
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
        uploading.delete(name);
        dataKey.key.fill(0);
      }
    },

    async read(blob, range) {
      const opened = await openBlob(blob, 'r');
      const { handle, header } = opened;
      try {
        checkLength(blob, opened);
        const { key } = await unwrapKey(blob, opened.slots);
        const start = range?.start ?? 0;
        const end = Math.min(range?.end ?? blob.size - 1, blob.size - 1);
        let first = Math.floor(start / SEGMENT_SIZE);
        let last = Math.floor(end / SEGMENT_SIZE);
        // An empty file, or an empty range: authenticate one segment, release nothing.
        const nothing = blob.size === 0 || end < start;
        if (nothing) first = last = 0;
        const segments = new SegmentReader(handle, key, header, blob.size, first, last);
        return new Readable({
          read() {
            segments.next().then((batch) => {
              if (batch === null || nothing) {
                this.push(null);
                return;
              }
              for (const { index, plain } of batch) {
                const from = index * SEGMENT_SIZE;
                this.push(plain.subarray(Math.max(0, start - from), Math.min(plain.length, end - from + 1)));
              }
            }, (e: unknown) => this.destroy(e as Error));
          },
          destroy(error, done) {
            key.fill(0);
            segments.close().then(() => done(error), () => done(error));
          },
        });
      } catch (e) {
        await handle.close();
        throw e;
      }
    },

    async keyVersion(blob) {
      const opened = await openBlob(blob, 'r');
      try {
        const { key, slot } = await unwrapKey(blob, opened.slots);
        key.fill(0);
        return slot.kekVersion;
      } finally {
        await opened.handle.close();
      }
    },

    rewrap(blob, toVersion) {
      return serialise(blob.blobId, async () => {
        const opened = await openBlob(blob, 'r+');
        try {
          checkSlots(blob, opened.slots);
          const valid = validSlots(opened.slots);
          const newest = valid[0]!;
          if (newest.kekVersion > toVersion) {
            throw new VellumError('BAD_REQUEST', `Blob ${blob.blobId} already has a key slot under KEK v${newest.kekVersion}; it is not re-wrapped back to v${toVersion}.`);
          }
          if (newest.kekVersion === toVersion) return { kekVersion: toVersion, changed: false };
          const failures: string[] = [];
          let cause: unknown;
          for (const source of valid) {
            let rewrapped: WrappedDataKey;
            try {
              rewrapped = await keys.rewrapDataKey(wrappedOf(blob, source), toVersion);
            } catch (e) {
              // NOT_FOUND here is the target version; a source that does not unwrap is INTEGRITY_FAILURE.
              if (!isVellumError(e, 'INTEGRITY_FAILURE')) throw e;
              failures.push(`slot ${slotName(source.index)} (KEK v${source.kekVersion}) does not unwrap`);
              cause = e;
              continue;
            }
            // The other slot: older, empty or damaged, never the one that just worked.
            const target = source.index === 0 ? 1 : 0;
            const slot = encodeKeySlot({ kekVersion: rewrapped.kekVersion, mechanism: rewrapped.mechanism, wrapped: rewrapped.wrapped });
            await writeExactly(opened.handle, slot, slotOffset(opened.header, target));
            await opened.handle.datasync();
            return { kekVersion: toVersion, changed: true };
          }
          throw new VellumError('INTEGRITY_FAILURE', `No key slot of blob ${blob.blobId} unwraps: ${failures.join('; ')}.`, { cause });
        } finally {
          await opened.handle.close();
        }
      });
    },

    shred(blob) {
      return serialise(blob.blobId, async () => {
        const opened = await openBlob(blob, 'r+');
        try {
          if (opened.slots.some((slot) => slot.state !== 'empty')) {
            await writeExactly(opened.handle, Buffer.alloc(2 * KEY_SLOT_SIZE), opened.header.slotsStart);
            await opened.handle.datasync();
          }
        } finally {
          await opened.handle.close();
          for (const slot of validSlots(opened.slots)) keys.forgetDataKey(wrappedOf(blob, slot));
        }
      });
    },

    async verify(blob, onProgress) {
      const opened = await openBlob(blob, 'r');
      const { handle, header } = opened;
      let segments: SegmentReader | undefined;
      let key: Buffer | undefined;
      try {
        checkLength(blob, opened);
        ({ key } = await unwrapKey(blob, opened.slots));
        segments = new SegmentReader(handle, key, header, blob.size, 0, segmentCount(blob.size) - 1);
        const hash = createHash('sha256');
        let done = 0;
        for (let batch = await segments.next(); batch !== null; batch = await segments.next()) {
          for (const { plain } of batch) {
            hash.update(plain);
            done += plain.length;
            plain.fill(0);
          }
          onProgress?.(done);
        }
        const actual = hash.digest('hex');
        if (actual !== blob.sha256) {
          throw new VellumError('INTEGRITY_FAILURE', `The content of blob ${blob.blobId} hashes to SHA-256 ${actual}; the record says ${blob.sha256}.`);
        }
      } catch (e) {
        if (isVellumError(e, 'INTEGRITY_FAILURE') && /^Segment \d+ /.test(e.detail ?? '')) {
          throw new VellumError('INTEGRITY_FAILURE', `Blob ${blob.blobId}: ${e.detail}`, { cause: e });
        }
        throw e;
      } finally {
        key?.fill(0);
        if (segments) await segments.close();
        else await handle.close();
      }
    },

    async *list() {
      let top;
      try {
        top = await opendir(blobsDir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw e;
      }
      for await (const folder of top) {
        if (!folder.isDirectory() || !/^[0-9a-f]{2}$/.test(folder.name)) continue;
        let inner;
        try {
          inner = await opendir(join(blobsDir, folder.name));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw e;
        }
        for await (const entry of inner) {
          if (entry.isFile() && isBlobId(entry.name) && entry.name.startsWith(folder.name)) yield entry.name;
        }
      }
    },

    async sweepTemporary() {
      const removed: string[] = [];
      for (const name of await readdir(tmpDir)) {
        if (uploading.has(name)) continue;
        await rm(join(tmpDir, name), { recursive: true, force: true });
        removed.push(name);
      }
      if (removed.length > 0) await fsyncDir(tmpDir);
      return removed.sort();
    },

    async remove(blobId) {
      await rm(pathOf(blobId), { force: true });
    },
  };
}

function describeSlots(slots: readonly KeySlot[]): string {
  return slots.map((slot) => {
    const name = `slot ${slotName(slot.index)}`;
    if (slot.state === 'empty') return `${name} empty`;
    if (slot.state === 'invalid') return `${name} invalid: ${slot.reason}`;
    return `${name} KEK v${slot.kekVersion}`;
  }).join(', ');
}

/**
 * Authenticated plaintext segments first..last of a blob, a batch at a time.
 * Reads BATCH_SEGMENTS sealed segments per positioned read into one of two
 * reused buffers, and starts reading the next batch while the caller works on
 * this one, so memory stays at two batches whatever the size. A segment is
 * handed out only after its tag verified; a batch stops at the first failure.
 */
class SegmentReader {
  readonly #handle: FileHandle;
  /** A KeyObject made once per read: importing raw key bytes for every segment costs more than the AES. */
  readonly #key: KeyObject;
  readonly #header: EncodedHeader;
  readonly #size: number;
  readonly #last: number;
  readonly #count: number;
  readonly #buffers: [Buffer | null, Buffer | null] = [null, null];
  #turn: 0 | 1 = 0;
  #next: number;
  #ahead: Promise<{ first: number; bytes: Buffer }> | null = null;
  #closed: Promise<void> | null = null;

  constructor(handle: FileHandle, key: Buffer, header: EncodedHeader, size: number, first: number, last: number) {
    this.#handle = handle;
    this.#key = createSecretKey(key);
    this.#header = header;
    this.#size = size;
    this.#next = first;
    this.#last = last;
    this.#count = segmentCount(size);
  }

  /** The next batch, or null after the last segment. */
  async next(): Promise<{ index: number; plain: Buffer }[] | null> {
    if (this.#closed !== null) throw new VellumError('INTEGRITY_FAILURE', 'The blob was closed while it was being read.');
    const pending = this.#ahead ?? this.#read();
    this.#ahead = null;
    if (pending === null) return null;
    const { first, bytes } = await pending;
    if (this.#closed !== null) return null;
    // Read ahead into the other buffer while this batch is decrypted.
    this.#ahead = this.#read();
    const out: { index: number; plain: Buffer }[] = [];
    let at = 0;
    for (let index = first; at < bytes.length; index++) {
      const sealedLength = segmentPlainLength(this.#size, index) + TAG_SIZE;
      const sealed = bytes.subarray(at, at + sealedLength);
      at += sealedLength;
      out.push({ index, plain: decryptSegment(this.#key, this.#header.prefix, this.#header.digest, index, index === this.#count - 1, sealed) });
    }
    return out;
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      // Let a read in flight finish before closing its file.
      await this.#ahead?.catch(() => undefined);
      this.#ahead = null;
      await this.#handle.close().catch(() => undefined);
    })();
    return this.#closed;
  }

  #read(): Promise<{ first: number; bytes: Buffer }> | null {
    if (this.#next > this.#last) return null;
    const first = this.#next;
    const last = Math.min(this.#last, first + BATCH_SEGMENTS - 1);
    this.#next = last + 1;
    const position = this.#header.dataStart + first * SEALED_SEGMENT_SIZE;
    const length = (last - first) * SEALED_SEGMENT_SIZE + segmentPlainLength(this.#size, last) + TAG_SIZE;
    const turn = this.#turn;
    this.#turn = turn === 0 ? 1 : 0;
    let buffer = this.#buffers[turn];
    if (buffer === null || buffer.length < length) {
      buffer = Buffer.allocUnsafe(Math.min(BATCH_SEGMENTS * SEALED_SEGMENT_SIZE, Math.max(length, (this.#last - first + 1) * SEALED_SEGMENT_SIZE)));
      this.#buffers[turn] = buffer;
    }
    const target = buffer.subarray(0, length);
    const reading = (async () => {
      const { bytesRead } = await this.#handle.read(target, 0, length, position);
      if (bytesRead !== length) throw new VellumError('INTEGRITY_FAILURE', `Segment ${first} is truncated.`);
      return { first, bytes: target };
    })();
    // Read ahead: nobody may be waiting when it fails (the stream was abandoned).
    reading.catch(() => undefined);
    return reading;
  }
}

async function readAt(handle: FileHandle, position: number, length: number, short: string): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buffer, 0, length, position);
  if (bytesRead !== length) throw new VellumError('INTEGRITY_FAILURE', short);
  return buffer;
}

async function writeExactly(handle: FileHandle, bytes: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
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
