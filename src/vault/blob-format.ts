// The encrypted blob format (docs/storage-format.md). One blob per file version:
//
//   "VLMB" | u8 format version (1) | u32be header length | header (JSON, UTF-8)
//   segment 0 | segment 1 | ... | segment n-1
//
// Each segment is AES-256-GCM ciphertext of up to SEGMENT_SIZE plaintext bytes
// followed by its 16-byte tag. Nonce = 8-byte random per-blob prefix || u32be
// segment index. AAD = SHA-256(header bytes) || u32be index || u8 last-flag, so
// truncation, reordering, splicing segments between blobs and moving a header
// to another blob all fail authentication. Every segment but the last is full,
// so a byte offset maps to a segment by arithmetic: Range reads decrypt only
// the segments they touch.

import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { VellumError } from '../kernel/index.ts';

export const MAGIC = Buffer.from('VLMB', 'ascii');
export const FORMAT_VERSION = 1;
export const SEGMENT_SIZE = 64 * 1024;
export const TAG_SIZE = 16;
const PREAMBLE_SIZE = MAGIC.length + 1 + 4;
const MAX_HEADER_SIZE = 16 * 1024;

export interface BlobHeader {
  readonly blobId: string;
  readonly study: string;
  readonly cipher: 'AES-256-GCM';
  readonly segmentSize: number;
  /** base64 of the 8-byte nonce prefix. */
  readonly noncePrefix: string;
  readonly kek: { readonly study: string; readonly version: number; readonly mechanism: string };
  /** base64 of the DEK wrapped by the KEK above. */
  readonly wrappedKey: string;
}

export interface EncodedHeader {
  readonly header: BlobHeader;
  /** Preamble + header bytes, as written at the start of the blob. */
  readonly bytes: Buffer;
  readonly digest: Buffer;
}

export function encodeHeader(header: BlobHeader): EncodedHeader {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const preamble = Buffer.alloc(PREAMBLE_SIZE);
  MAGIC.copy(preamble, 0);
  preamble.writeUInt8(FORMAT_VERSION, MAGIC.length);
  preamble.writeUInt32BE(json.length, MAGIC.length + 1);
  const bytes = Buffer.concat([preamble, json]);
  return { header, bytes, digest: createHash('sha256').update(bytes).digest() };
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
  let header: BlobHeader;
  try {
    header = JSON.parse(json.toString('utf8')) as BlobHeader;
  } catch {
    throw new VellumError('INTEGRITY_FAILURE', 'The blob header is not readable.');
  }
  if (!hasHeaderShape(header)) throw new VellumError('INTEGRITY_FAILURE', 'The blob header is incomplete or has fields of the wrong type.');
  if (header.cipher !== 'AES-256-GCM' || header.segmentSize !== SEGMENT_SIZE) {
    throw new VellumError('INTEGRITY_FAILURE', 'The blob header names an unsupported cipher or segment size.');
  }
  const bytes = Buffer.concat([preamble, json]);
  return { header, bytes, digest: createHash('sha256').update(bytes).digest() };
}

/** The header is unauthenticated until a segment decrypts: check its shape before using any field. */
function hasHeaderShape(value: unknown): value is BlobHeader {
  if (typeof value !== 'object' || value === null) return false;
  const h = value as Record<string, unknown>;
  const kek = h.kek as Record<string, unknown> | null | undefined;
  return typeof h.blobId === 'string' && typeof h.study === 'string' && typeof h.wrappedKey === 'string'
    && typeof h.noncePrefix === 'string' && Buffer.from(h.noncePrefix, 'base64').length === 8
    && typeof kek === 'object' && kek !== null
    && typeof kek.study === 'string' && Number.isSafeInteger(kek.version) && typeof kek.mechanism === 'string';
}

export const PREAMBLE_BYTES = PREAMBLE_SIZE;

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

/** Size of the encrypted body (after the header) for a plaintext of `size` bytes. */
export function bodySize(size: number): number {
  return size + segmentCount(size) * TAG_SIZE;
}

export function encryptSegment(key: Buffer, prefix: Buffer, digest: Buffer, index: number, last: boolean, plain: Buffer): Buffer {
  const cipher = createCipheriv('aes-256-gcm', key, nonceFor(prefix, index));
  cipher.setAAD(aadFor(digest, index, last));
  const out = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  return out;
}

/** Decrypts and authenticates one segment; never returns unauthenticated bytes. */
export function decryptSegment(key: Buffer, prefix: Buffer, digest: Buffer, index: number, last: boolean, sealed: Buffer): Buffer {
  if (sealed.length < TAG_SIZE) throw new VellumError('INTEGRITY_FAILURE', `Segment ${index} is truncated.`);
  const decipher = createDecipheriv('aes-256-gcm', key, nonceFor(prefix, index));
  decipher.setAAD(aadFor(digest, index, last));
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
  const plain = decipher.update(sealed.subarray(0, sealed.length - TAG_SIZE));
  try {
    decipher.final();
  } catch {
    throw new VellumError('INTEGRITY_FAILURE', `Segment ${index} failed authentication.`);
  }
  return plain;
}

/**
 * Turns plaintext into sealed segments. Holds back one full segment until it
 * knows whether more data follows, because the last-flag is part of the AAD.
 * Also counts bytes and computes the plaintext SHA-256 on the way through.
 */
export class SegmentEncryptor extends Transform {
  readonly #key: Buffer;
  readonly #prefix: Buffer;
  readonly #digest: Buffer;
  readonly #hash = createHash('sha256');
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #index = 0;
  #size = 0;
  #sha256: string | null = null;

  constructor(key: Buffer, header: EncodedHeader) {
    super();
    this.#key = key;
    this.#prefix = Buffer.from(header.header.noncePrefix, 'base64');
    this.#digest = header.digest;
    this.push(header.bytes);
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
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    if (this.#pendingBytes > SEGMENT_SIZE) {
      let buffered = Buffer.concat(this.#pending, this.#pendingBytes);
      // Strictly more than one segment buffered: the first one is not the last.
      while (buffered.length > SEGMENT_SIZE) {
        this.push(this.#seal(buffered.subarray(0, SEGMENT_SIZE), false));
        buffered = buffered.subarray(SEGMENT_SIZE);
      }
      this.#pending = [buffered];
      this.#pendingBytes = buffered.length;
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    this.push(this.#seal(Buffer.concat(this.#pending, this.#pendingBytes), true));
    this.#pending = [];
    this.#sha256 = this.#hash.digest('hex');
    done();
  }

  #seal(plain: Buffer, last: boolean): Buffer {
    return encryptSegment(this.#key, this.#prefix, this.#digest, this.#index++, last, plain);
  }
}
