// The encrypted blob format (docs/storage-format.md). One blob per file version:
//
//   "VLMB" | u8 format version (2) | u32be header length | header (JSON, UTF-8)
//   key slot A (256 bytes) | key slot B (256 bytes)
//   segment 0 | segment 1 | ... | segment n-1
//
// The header is immutable: blob id, study, cipher, segment size, nonce prefix.
// The key slots hold the data key (DEK) wrapped by a version of the study's KEK;
// they are outside the AAD, so a KEK rotation rewrites one slot in place and
// no segment changes. Two slots make that rewrite crash-safe: the slot being
// written is never the one holding the newest working key, and a checksum per
// slot makes a torn write show up as an invalid slot, never as a key to try.
//
// Each segment is AES-256-GCM ciphertext of up to SEGMENT_SIZE plaintext bytes
// followed by its 16-byte tag. Nonce = 8-byte random per-blob prefix || u32be
// segment index. AAD = SHA-256(preamble || header) || u32be index || u8
// last-flag, so truncation, reordering, splicing segments between blobs and
// moving a header to another blob all fail authentication; a key slot copied
// from another blob unwraps to another DEK, which fails it too. Every segment
// but the last is full, so a byte offset maps to a segment by arithmetic:
// Range reads decrypt only the segments they touch.

import { createCipheriv, createDecipheriv, createHash, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { isStudyId, VellumError } from '../kernel/index.ts';

export const MAGIC = Buffer.from('VLMB', 'ascii');
export const FORMAT_VERSION = 2;
export const SEGMENT_SIZE = 64 * 1024;
export const TAG_SIZE = 16;
/** A sealed full segment: ciphertext and tag. */
export const SEALED_SEGMENT_SIZE = SEGMENT_SIZE + TAG_SIZE;
const PREAMBLE_SIZE = MAGIC.length + 1 + 4;
export const PREAMBLE_BYTES = PREAMBLE_SIZE;
const MAX_HEADER_SIZE = 16 * 1024;
const BLOB_ID = /^[0-9a-f]{32}$/;

export function isBlobId(value: unknown): value is string {
  return typeof value === 'string' && BLOB_ID.test(value);
}

// --- header -----------------------------------------------------------------

/** The immutable part of a blob's header; its digest is in every segment's AAD. */
export interface BlobHeader {
  readonly blobId: string;
  readonly study: string;
  readonly cipher: 'AES-256-GCM';
  readonly segmentSize: number;
  /** base64 of the 8-byte nonce prefix. */
  readonly noncePrefix: string;
}

export interface EncodedHeader {
  readonly header: BlobHeader;
  /** Preamble + header bytes, as written at the start of the blob. */
  readonly bytes: Buffer;
  /** SHA-256 of `bytes`: the first 32 bytes of every segment's AAD. */
  readonly digest: Buffer;
  /** The 8-byte nonce prefix. */
  readonly prefix: Buffer;
  /** Offset of key slot A; slot B follows it. */
  readonly slotsStart: number;
  /** Offset of segment 0. */
  readonly dataStart: number;
}

function encoded(header: BlobHeader, bytes: Buffer): EncodedHeader {
  return {
    header,
    bytes,
    digest: createHash('sha256').update(bytes).digest(),
    prefix: Buffer.from(header.noncePrefix, 'base64'),
    slotsStart: bytes.length,
    dataStart: bytes.length + 2 * KEY_SLOT_SIZE,
  };
}

export function encodeHeader(header: BlobHeader): EncodedHeader {
  // Only the five fields, in this order: the header is hashed as written.
  const json = Buffer.from(JSON.stringify({
    blobId: header.blobId, study: header.study, cipher: header.cipher, segmentSize: header.segmentSize, noncePrefix: header.noncePrefix,
  }), 'utf8');
  const preamble = Buffer.alloc(PREAMBLE_SIZE);
  MAGIC.copy(preamble, 0);
  preamble.writeUInt8(FORMAT_VERSION, MAGIC.length);
  preamble.writeUInt32BE(json.length, MAGIC.length + 1);
  return encoded(header, Buffer.concat([preamble, json]));
}

/** Reads the preamble: how many bytes the header takes after it. */
export function headerLength(preamble: Buffer): number {
  if (preamble.length < PREAMBLE_SIZE || !preamble.subarray(0, 4).equals(MAGIC)) {
    throw new VellumError('INTEGRITY_FAILURE', 'The blob does not start with the Vellum blob signature.');
  }
  const version = preamble.readUInt8(4);
  if (version !== FORMAT_VERSION) throw new VellumError('INTEGRITY_FAILURE', `Unknown blob format version ${version}.`);
  const length = preamble.readUInt32BE(5);
  if (length === 0 || length > MAX_HEADER_SIZE) throw new VellumError('INTEGRITY_FAILURE', 'The blob header length is out of range.');
  return length;
}

export function decodeHeader(preamble: Buffer, json: Buffer): EncodedHeader {
  let header: unknown;
  try {
    header = JSON.parse(json.toString('utf8'));
  } catch {
    throw new VellumError('INTEGRITY_FAILURE', 'The blob header is not readable.');
  }
  if (!hasHeaderShape(header)) throw new VellumError('INTEGRITY_FAILURE', 'The blob header is incomplete or has fields of the wrong type.');
  if (header.cipher !== 'AES-256-GCM' || header.segmentSize !== SEGMENT_SIZE) {
    throw new VellumError('INTEGRITY_FAILURE', 'The blob header names an unsupported cipher or segment size.');
  }
  return encoded(header, Buffer.concat([preamble.subarray(0, PREAMBLE_SIZE), json]));
}

/** The header is unauthenticated until a segment decrypts: check its shape before using any field. */
function hasHeaderShape(value: unknown): value is BlobHeader {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const h = value as Record<string, unknown>;
  return isBlobId(h.blobId) && typeof h.study === 'string' && isStudyId(h.study)
    && typeof h.cipher === 'string' && typeof h.segmentSize === 'number'
    && typeof h.noncePrefix === 'string' && Buffer.from(h.noncePrefix, 'base64').length === 8;
}

// --- key slots --------------------------------------------------------------
//
//   0        u8     slot format: 1 (an all-zero slot is empty)
//   1..4     u32be  KEK version (>= 1); the KEK's study is the blob's study
//   5        u8     length m of the mechanism name (1..32)
//   6..37    ASCII  mechanism name (m bytes, zero padded), e.g. AES_KEY_WRAP_PAD
//   38..39   u16be  length w of the wrapped key (1..200)
//   40..239         wrapped key (w bytes, zero padded)
//   240..255        checksum: the first 16 bytes of SHA-256(bytes 0..239)
//
// The checksum is not a security measure (the data key is authenticated by the
// segments it decrypts); it tells a slot torn by a crash, or overwritten with
// garbage, from one that is worth handing to the HSM.

export const KEY_SLOT_SIZE = 256;
const SLOT_FORMAT = 1;
const MECHANISM_AT = 6;
const MAX_MECHANISM = 32;
const WRAPPED_LENGTH_AT = MECHANISM_AT + MAX_MECHANISM;
const WRAPPED_AT = WRAPPED_LENGTH_AT + 2;
const CHECKSUM_AT = KEY_SLOT_SIZE - 16;
const MAX_WRAPPED = CHECKSUM_AT - WRAPPED_AT;
const MECHANISM_NAME = /^[A-Z0-9_]{1,32}$/;

/** What a valid slot holds. */
export interface KeySlotContent {
  readonly kekVersion: number;
  readonly mechanism: string;
  readonly wrapped: Buffer;
}

/** Slot 0 is A, slot 1 is B. */
export type SlotIndex = 0 | 1;

export type KeySlot =
  | { readonly index: SlotIndex; readonly state: 'empty' }
  | { readonly index: SlotIndex; readonly state: 'invalid'; readonly reason: string }
  | ({ readonly index: SlotIndex; readonly state: 'valid' } & KeySlotContent);

export function slotName(index: SlotIndex): 'A' | 'B' {
  return index === 0 ? 'A' : 'B';
}

function slotChecksum(slot: Buffer): Buffer {
  return createHash('sha256').update(slot.subarray(0, CHECKSUM_AT)).digest().subarray(0, 16);
}

export function encodeKeySlot(content: KeySlotContent): Buffer {
  const { kekVersion, mechanism, wrapped } = content;
  if (!Number.isInteger(kekVersion) || kekVersion < 1 || kekVersion > 0xffffffff) throw new RangeError(`KEK version ${kekVersion} does not fit a key slot.`);
  if (!MECHANISM_NAME.test(mechanism)) throw new RangeError(`Mechanism name ${JSON.stringify(mechanism)} does not fit a key slot.`);
  if (wrapped.length < 1 || wrapped.length > MAX_WRAPPED) throw new RangeError(`A ${wrapped.length}-byte wrapped key does not fit a key slot.`);
  const slot = Buffer.alloc(KEY_SLOT_SIZE);
  slot.writeUInt8(SLOT_FORMAT, 0);
  slot.writeUInt32BE(kekVersion, 1);
  slot.writeUInt8(mechanism.length, 5);
  slot.write(mechanism, MECHANISM_AT, 'ascii');
  slot.writeUInt16BE(wrapped.length, WRAPPED_LENGTH_AT);
  wrapped.copy(slot, WRAPPED_AT);
  slotChecksum(slot).copy(slot, CHECKSUM_AT);
  return slot;
}

export const EMPTY_SLOT: Readonly<Buffer> = Buffer.alloc(KEY_SLOT_SIZE);

export function decodeKeySlot(index: SlotIndex, slot: Buffer): KeySlot {
  if (slot.length !== KEY_SLOT_SIZE) return { index, state: 'invalid', reason: 'it is truncated' };
  if (slot.every((byte) => byte === 0)) return { index, state: 'empty' };
  if (!slotChecksum(slot).equals(slot.subarray(CHECKSUM_AT))) return { index, state: 'invalid', reason: 'its checksum does not match (torn or overwritten)' };
  if (slot.readUInt8(0) !== SLOT_FORMAT) return { index, state: 'invalid', reason: `it has unknown slot format ${slot.readUInt8(0)}` };
  const kekVersion = slot.readUInt32BE(1);
  const mechanismLength = slot.readUInt8(5);
  const wrappedLength = slot.readUInt16BE(WRAPPED_LENGTH_AT);
  const mechanism = slot.toString('ascii', MECHANISM_AT, MECHANISM_AT + Math.min(mechanismLength, MAX_MECHANISM));
  if (kekVersion < 1 || mechanismLength < 1 || mechanismLength > MAX_MECHANISM || !MECHANISM_NAME.test(mechanism)
    || wrappedLength < 1 || wrappedLength > MAX_WRAPPED) {
    return { index, state: 'invalid', reason: 'its fields are out of range' };
  }
  return { index, state: 'valid', kekVersion, mechanism, wrapped: Buffer.from(slot.subarray(WRAPPED_AT, WRAPPED_AT + wrappedLength)) };
}

/** Both slots, from the 2 * KEY_SLOT_SIZE bytes after the header. */
export function decodeKeySlots(bytes: Buffer): [KeySlot, KeySlot] {
  return [decodeKeySlot(0, bytes.subarray(0, KEY_SLOT_SIZE)), decodeKeySlot(1, bytes.subarray(KEY_SLOT_SIZE, 2 * KEY_SLOT_SIZE))];
}

/** Valid slots, the highest KEK version first (A before B on a tie). */
export function validSlots(slots: readonly KeySlot[]): (KeySlot & { state: 'valid' })[] {
  return slots
    .filter((slot): slot is KeySlot & { state: 'valid' } => slot.state === 'valid')
    .sort((a, b) => b.kekVersion - a.kekVersion || a.index - b.index);
}

/** Offset of a key slot in the file. */
export function slotOffset(header: EncodedHeader, index: SlotIndex): number {
  return header.slotsStart + index * KEY_SLOT_SIZE;
}

// --- segments ---------------------------------------------------------------

function nonceFor(prefix: Buffer, index: number): Buffer {
  const nonce = Buffer.alloc(12);
  prefix.copy(nonce, 0, 0, 8);
  nonce.writeUInt32BE(index, 8);
  return nonce;
}

function aadFor(digest: Buffer, index: number, last: boolean): Buffer {
  const aad = Buffer.alloc(digest.length + 5);
  digest.copy(aad, 0);
  aad.writeUInt32BE(index, digest.length);
  aad.writeUInt8(last ? 1 : 0, digest.length + 4);
  return aad;
}

export function newNoncePrefix(): Buffer {
  return randomBytes(8);
}

/** Number of segments a plaintext of `size` bytes takes (an empty file has one, empty, segment). */
export function segmentCount(size: number): number {
  return Math.max(1, Math.ceil(size / SEGMENT_SIZE));
}

/** Size of the encrypted body (the segments) for a plaintext of `size` bytes. */
export function bodySize(size: number): number {
  return size + segmentCount(size) * TAG_SIZE;
}

/** Plaintext length of segment `index` of a `size`-byte plaintext. */
export function segmentPlainLength(size: number, index: number): number {
  return Math.min(SEGMENT_SIZE, size - index * SEGMENT_SIZE);
}

/** Decrypts and authenticates one segment; never returns unauthenticated bytes. */
export function decryptSegment(key: KeyObject, prefix: Buffer, digest: Buffer, index: number, last: boolean, sealed: Buffer): Buffer {
  if (sealed.length < TAG_SIZE) throw new VellumError('INTEGRITY_FAILURE', `Segment ${index} is truncated.`);
  const decipher = createDecipheriv('aes-256-gcm', key, nonceFor(prefix, index));
  decipher.setAAD(aadFor(digest, index, last));
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
  const plain = decipher.update(sealed.subarray(0, sealed.length - TAG_SIZE));
  try {
    decipher.final();
  } catch {
    plain.fill(0);
    throw new VellumError('INTEGRITY_FAILURE', `Segment ${index} failed authentication.`);
  }
  return plain;
}

/**
 * Turns plaintext into sealed segments, after the given prologue (header and
 * key slots). Plaintext is gathered in one reused segment-sized buffer; a full
 * segment is sealed only when more data arrives, because the last-flag is part
 * of the AAD. Each sealed segment goes out as its ciphertext and its tag (two
 * chunks, no concatenation). Also counts bytes and computes the plaintext
 * SHA-256 on the way through.
 */
export class SegmentEncryptor extends Transform {
  /** A KeyObject made once per blob: importing raw key bytes for every segment costs more than the AES. */
  readonly #key: KeyObject;
  readonly #prefix: Buffer;
  readonly #digest: Buffer;
  readonly #hash = createHash('sha256');
  readonly #stage = Buffer.allocUnsafe(SEGMENT_SIZE);
  #staged = 0;
  #index = 0;
  #size = 0;
  #sha256: string | null = null;

  constructor(key: Buffer, header: EncodedHeader, slots: readonly [Buffer, Buffer]) {
    // Room for several sealed segments, so the file gets them in few large writes.
    super({ readableHighWaterMark: 16 * SEGMENT_SIZE });
    this.#key = createSecretKey(key);
    this.#prefix = header.prefix;
    this.#digest = header.digest;
    this.push(Buffer.concat([header.bytes, slots[0], slots[1]]));
  }

  get size(): number {
    return this.#size;
  }

  /** Hex SHA-256 of the plaintext; available after the stream has finished. */
  get sha256(): string {
    if (this.#sha256 === null) throw new Error('The plaintext digest is known only after the stream ends.');
    return this.#sha256;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#hash.update(chunk);
    this.#size += chunk.length;
    let at = 0;
    while (at < chunk.length) {
      // A full segment with more data after it: it is not the last.
      if (this.#staged === SEGMENT_SIZE) this.#seal(false);
      const n = Math.min(SEGMENT_SIZE - this.#staged, chunk.length - at);
      chunk.copy(this.#stage, this.#staged, at, at + n);
      this.#staged += n;
      at += n;
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    this.#seal(true);
    this.#stage.fill(0);
    this.#sha256 = this.#hash.digest('hex');
    done();
  }

  #seal(last: boolean): void {
    const index = this.#index++;
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonceFor(this.#prefix, index));
    cipher.setAAD(aadFor(this.#digest, index, last));
    const sealed = cipher.update(this.#stage.subarray(0, this.#staged));
    cipher.final();
    if (sealed.length > 0) this.push(sealed);
    this.push(cipher.getAuthTag());
    this.#staged = 0;
  }
}
