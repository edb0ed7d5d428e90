// The encrypted blob store (DESIGN invariant 4, 21 CFR 11.10(a) and (c)): blobs
// are AES-256-GCM in 64 KiB segments, written through a temporary file, and a
// read releases only bytes that authenticated. Blobs are real files in a
// temporary directory; the KeyVault is the in-memory fake (the HSM is tested in
// test/keys/).

import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { isVellumError, type ErrorCode } from '../../src/kernel/index.ts';
import { SEGMENT_SIZE, TAG_SIZE } from '../../src/vault/blob-format.ts';
import { openBlobStore, type BlobStore, type ByteRange, type StoredBlob } from '../../src/vault/blob-store.ts';
import { FakeKeyVault } from '../support/fake-key-vault.ts';

const STUDY = 'STUDY-1';
const OTHER_STUDY = 'STUDY-2';
const SEALED = SEGMENT_SIZE + TAG_SIZE;
const MiB = 1024 * 1024;

const dirs: string[] = [];
test.after.always(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

interface Fixture {
  readonly dir: string;
  readonly keys: FakeKeyVault;
  readonly store: BlobStore;
}

async function fixture(): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'vellum-blobs-'));
  dirs.push(dir);
  const keys = new FakeKeyVault();
  await keys.ensureStudyKey(STUDY);
  await keys.ensureStudyKey(OTHER_STUDY);
  return { dir, keys, store: await openBlobStore(dir, keys) };
}

/** Deterministic but non-repeating bytes, so a misplaced segment shows up as wrong bytes. */
function plaintext(size: number, seed = 0): Buffer {
  const out = Buffer.alloc(size);
  let counter = 0;
  for (let at = 0; at < size; at += 32) {
    createHash('sha256').update(`${seed}:${counter++}`).digest().copy(out, at);
  }
  return out;
}

/** A source that hands the bytes over in chunks of `chunk` bytes (odd sizes cross segment edges). */
function source(bytes: Buffer, chunk = 7919): Readable {
  const parts: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += chunk) parts.push(bytes.subarray(at, at + chunk));
  return Readable.from(parts, { objectMode: false });
}

async function put(store: BlobStore, bytes: Buffer, study = STUDY, chunk?: number): Promise<StoredBlob> {
  return store.write(study, source(bytes, chunk), 64 * MiB);
}

interface ReadResult {
  /** Every byte the store released before the read ended. */
  readonly yielded: Buffer;
  readonly error: unknown;
}

/** Reads a blob to the end, keeping what was released and how it ended (read() rejecting or the stream failing). */
async function readAll(store: BlobStore, blob: { blobId: string; study: string; size: number }, range?: ByteRange): Promise<ReadResult> {
  const chunks: Buffer[] = [];
  try {
    const stream = await store.read(blob, range);
    for await (const chunk of stream) chunks.push(chunk as Buffer);
  } catch (error) {
    return { yielded: Buffer.concat(chunks), error };
  }
  return { yielded: Buffer.concat(chunks), error: undefined };
}

function ref(blob: StoredBlob, study = STUDY) {
  return { blobId: blob.blobId, study, size: blob.size };
}

function blobPath(dir: string, blobId: string): string {
  return join(dir, 'blobs', blobId.slice(0, 2), blobId);
}

/** Where the encrypted segments start: after "VLMB", the version byte, the u32be header length and the header. */
async function dataStart(path: string): Promise<number> {
  const bytes = await readFile(path);
  return 9 + bytes.readUInt32BE(5);
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** Asserts the read failed with `code` and that whatever it released is an exact prefix of `plain`, at most `maxPrefix` bytes. */
function assertFailedWithPrefix(t: import('ava').ExecutionContext, result: ReadResult, plain: Buffer, maxPrefix: number, code: ErrorCode = 'INTEGRITY_FAILURE'): void {
  t.true(isVellumError(result.error, code), `expected ${code}, got ${String(result.error)}`);
  t.true(result.yielded.length <= maxPrefix, `released ${result.yielded.length} bytes, at most ${maxPrefix} were authentic`);
  t.true(result.yielded.equals(plain.subarray(0, result.yielded.length)), 'every released byte is the right byte');
}

// --- round trips ------------------------------------------------------------

for (const size of [0, 1, 65535, 65536, 65537, 200000, MiB + 3]) {
  test(`11.10(a) a ${size}-byte file reads back byte for byte with the right size and SHA-256`, async (t) => {
    const { dir, store } = await fixture();
    const plain = plaintext(size, size);
    const stored = await put(store, plain);
    t.is(stored.size, size);
    t.is(stored.sha256, createHash('sha256').update(plain).digest('hex'));
    t.is(stored.kekVersion, 1);
    t.regex(stored.blobId, /^[0-9a-f]{32}$/);

    const segments = Math.max(1, Math.ceil(size / SEGMENT_SIZE));
    const path = blobPath(dir, stored.blobId);
    t.is((await stat(path)).size, (await dataStart(path)) + size + segments * TAG_SIZE, 'one tag per segment, no padding');

    const { yielded, error } = await readAll(store, ref(stored));
    t.is(error, undefined);
    t.is(yielded.length, size);
    t.true(yielded.equals(plain));
  });
}

test('the segmenting does not depend on how the upload is chunked (one byte, one segment, one big chunk)', async (t) => {
  const { store } = await fixture();
  const plain = plaintext(3 * SEGMENT_SIZE + 5, 42);
  for (const chunk of [1000, SEGMENT_SIZE, SEGMENT_SIZE + 1, plain.length]) {
    const stored = await put(store, plain, STUDY, chunk);
    const { yielded, error } = await readAll(store, ref(stored));
    t.is(error, undefined, `chunk ${chunk}`);
    t.true(yielded.equals(plain), `chunk ${chunk}`);
  }
  const single = await put(store, plaintext(1, 1), STUDY, 1);
  t.true((await readAll(store, ref(single))).yielded.equals(plaintext(1, 1)));
});

test('DESIGN 4 every blob gets its own data key: the HSM is asked once per write and once per read', async (t) => {
  const { store, keys } = await fixture();
  const a = await put(store, plaintext(200000, 1));
  const b = await put(store, plaintext(200000, 1));
  t.is(keys.newDataKeyCalls, 2);
  t.not(a.blobId, b.blobId);
  await readAll(store, ref(a));
  t.is(keys.unwrapCalls, 1, 'a four-segment read unwraps the DEK once, not per segment');
});

// --- Range reads ------------------------------------------------------------

test('Range reads at segment boundaries ±1, the first and last byte and the whole file return exactly those bytes', async (t) => {
  const { store } = await fixture();
  const size = 3 * SEGMENT_SIZE + 3392; // 200000 bytes: three full segments and a short last one
  const plain = plaintext(size, 7);
  const stored = await put(store, plain);
  const edges = [0, 1, SEGMENT_SIZE - 1, SEGMENT_SIZE, SEGMENT_SIZE + 1, 2 * SEGMENT_SIZE - 1, 2 * SEGMENT_SIZE,
    2 * SEGMENT_SIZE + 1, 3 * SEGMENT_SIZE - 1, 3 * SEGMENT_SIZE, 3 * SEGMENT_SIZE + 1, size - 2, size - 1];
  const ranges: ByteRange[] = [{ start: 0, end: size - 1 }];
  for (const start of edges) {
    for (const end of edges) if (end >= start) ranges.push({ start, end });
  }
  for (const range of ranges) {
    const { yielded, error } = await readAll(store, ref(stored), range);
    const label = `bytes ${range.start}-${range.end}`;
    t.is(error, undefined, label);
    t.is(yielded.length, range.end - range.start + 1, label);
    t.true(yielded.equals(plain.subarray(range.start, range.end + 1)), label);
  }
});

test('DESIGN 4 a Range read decrypts only the segments it touches', async (t) => {
  const { dir, store } = await fixture();
  const plain = plaintext(3 * SEGMENT_SIZE, 8);
  const stored = await put(store, plain);
  const path = blobPath(dir, stored.blobId);
  const start = await dataStart(path);
  // Spoil segment 0. A range inside segment 2 never reads it, so it still succeeds...
  const file = await readFile(path);
  file[start + 10]! ^= 0x01;
  await writeFile(path, file);
  const inside = await readAll(store, ref(stored), { start: 2 * SEGMENT_SIZE + 5, end: 2 * SEGMENT_SIZE + 99 });
  t.is(inside.error, undefined);
  t.true(inside.yielded.equals(plain.subarray(2 * SEGMENT_SIZE + 5, 2 * SEGMENT_SIZE + 100)));
  // ...and one that touches segment 0 fails before releasing anything.
  const touching = await readAll(store, ref(stored), { start: SEGMENT_SIZE - 1, end: SEGMENT_SIZE });
  assertFailedWithPrefix(t, touching, plain.subarray(SEGMENT_SIZE - 1), 0);
});

// --- tamper detection -------------------------------------------------------

test('11.10(a) a flipped byte in segment 1 of a 3-segment blob is detected and its bytes are never released', async (t) => {
  const { dir, store } = await fixture();
  const plain = plaintext(2 * SEGMENT_SIZE + 1000, 11);
  const stored = await put(store, plain);
  const path = blobPath(dir, stored.blobId);
  const file = await readFile(path);
  file[(await dataStart(path)) + SEALED + 12345]! ^= 0x80;
  await writeFile(path, file);

  const whole = await readAll(store, ref(stored));
  assertFailedWithPrefix(t, whole, plain, SEGMENT_SIZE);
  const fromSegment1 = await readAll(store, ref(stored), { start: SEGMENT_SIZE, end: plain.length - 1 });
  assertFailedWithPrefix(t, fromSegment1, plain.subarray(SEGMENT_SIZE), 0);
});

test('11.10(a) a flipped bit in a segment tag is detected', async (t) => {
  const { dir, store } = await fixture();
  const plain = plaintext(2 * SEGMENT_SIZE + 1000, 12);
  const stored = await put(store, plain);
  const path = blobPath(dir, stored.blobId);
  const file = await readFile(path);
  file[file.length - 1]! ^= 0x01; // last byte of the last segment's tag
  await writeFile(path, file);
  assertFailedWithPrefix(t, await readAll(store, ref(stored)), plain, 2 * SEGMENT_SIZE);
});

test('11.10(a) a blob truncated at a segment boundary is detected', async (t) => {
  const { dir, store } = await fixture();
  const plain = plaintext(2 * SEGMENT_SIZE + 1000, 13);
  const stored = await put(store, plain);
  const path = blobPath(dir, stored.blobId);
  await truncate(path, (await dataStart(path)) + 2 * SEALED);
  assertFailedWithPrefix(t, await readAll(store, ref(stored)), plain, 2 * SEGMENT_SIZE);
  assertFailedWithPrefix(t, await readAll(store, ref(stored), { start: 0, end: 99 }), plain, 100);
});

test('11.10(a) a blob truncated at a segment boundary is detected even when the recorded size is cut to match (last-segment flag)', async (t) => {
  const { dir, store } = await fixture();
  const plain = plaintext(2 * SEGMENT_SIZE + 1000, 14);
  const stored = await put(store, plain);
  const path = blobPath(dir, stored.blobId);
  await truncate(path, (await dataStart(path)) + 2 * SEALED);
  const result = await readAll(store, { ...ref(stored), size: 2 * SEGMENT_SIZE });
  assertFailedWithPrefix(t, result, plain, SEGMENT_SIZE);
});

test('11.10(a) a blob truncated in the middle of a segment is detected', async (t) => {
  const { dir, store } = await fixture();
  const plain = plaintext(2 * SEGMENT_SIZE + 1000, 15);
  const stored = await put(store, plain);
  const path = blobPath(dir, stored.blobId);
  await truncate(path, (await dataStart(path)) + SEALED + 4000);
  assertFailedWithPrefix(t, await readAll(store, ref(stored)), plain, SEGMENT_SIZE);
  // Also when the recorded size is cut to match the new length.
  const result = await readAll(store, { ...ref(stored), size: SEGMENT_SIZE + 4000 - TAG_SIZE });
  assertFailedWithPrefix(t, result, plain, SEGMENT_SIZE);
});

test('11.10(a) a segment spliced in from another blob of the same study (same length) is detected', async (t) => {
  const { dir, store } = await fixture();
  const plainA = plaintext(2 * SEGMENT_SIZE + 1000, 16);
  const plainB = plaintext(2 * SEGMENT_SIZE + 1000, 17);
  const a = await put(store, plainA);
  const b = await put(store, plainB);
  const pathA = blobPath(dir, a.blobId);
  const pathB = blobPath(dir, b.blobId);
  const startA = await dataStart(pathA);
  const startB = await dataStart(pathB);
  const fileA = await readFile(pathA);
  const fileB = await readFile(pathB);
  fileB.copy(fileA, startA + SEALED, startB + SEALED, startB + 2 * SEALED);
  await writeFile(pathA, fileA);
  assertFailedWithPrefix(t, await readAll(store, ref(a)), plainA, SEGMENT_SIZE);
  const untouched = await readAll(store, ref(b));
  t.is(untouched.error, undefined);
  t.true(untouched.yielded.equals(plainB));
});

test('11.10(a) two segments swapped within one blob are detected', async (t) => {
  const { dir, store } = await fixture();
  const plain = plaintext(2 * SEGMENT_SIZE + 1000, 18);
  const stored = await put(store, plain);
  const path = blobPath(dir, stored.blobId);
  const start = await dataStart(path);
  const file = await readFile(path);
  const seg0 = Buffer.from(file.subarray(start, start + SEALED));
  file.copy(file, start, start + SEALED, start + 2 * SEALED);
  seg0.copy(file, start + SEALED);
  await writeFile(path, file);
  assertFailedWithPrefix(t, await readAll(store, ref(stored)), plain, 0);
  assertFailedWithPrefix(t, await readAll(store, ref(stored), { start: SEGMENT_SIZE, end: SEGMENT_SIZE + 10 }), plain.subarray(SEGMENT_SIZE), 0);
});

test('11.10(a) a header copied from another blob is detected, also with its blob id rewritten to match', async (t) => {
  const { dir, store } = await fixture();
  const plainA = plaintext(SEGMENT_SIZE + 500, 19);
  const plainB = plaintext(SEGMENT_SIZE + 500, 20);
  const a = await put(store, plainA);
  const b = await put(store, plainB);
  const pathA = blobPath(dir, a.blobId);
  const pathB = blobPath(dir, b.blobId);
  const fileA = await readFile(pathA);
  const fileB = await readFile(pathB);
  const startA = await dataStart(pathA);
  const startB = await dataStart(pathB);
  const headerB = fileB.subarray(0, startB);
  // B's header in front of A's segments.
  await writeFile(pathA, Buffer.concat([headerB, fileA.subarray(startA)]));
  assertFailedWithPrefix(t, await readAll(store, ref(a)), plainA, 0);
  // The same, with the blob id inside B's header changed to A's (same length), so the id check passes.
  const forged = Buffer.from(headerB.toString('latin1').replace(b.blobId, a.blobId), 'latin1');
  t.is(forged.length, headerB.length);
  await writeFile(pathA, Buffer.concat([forged, fileA.subarray(startA)]));
  assertFailedWithPrefix(t, await readAll(store, ref(a)), plainA, 0);
});

test('11.10(a) a header corrupted into other well-formed JSON is reported as INTEGRITY_FAILURE, never as another error', async (t) => {
  const { dir, store } = await fixture();
  const plain = plaintext(SEGMENT_SIZE + 10, 26);
  const stored = await put(store, plain);
  const path = blobPath(dir, stored.blobId);
  const original = await readFile(path);
  const start = await dataStart(path);
  const json = original.subarray(9, start).toString('utf8');
  const corruptions: [string, string][] = [
    ['a renamed "kek" key', json.replace('"kek":', '"kel":')],
    ['a renamed "wrappedKey" key', json.replace('"wrappedKey":', '"wrappedKez":')],
    ['a renamed "noncePrefix" key', json.replace('"noncePrefix":', '"noncePrefiy":')],
    ['null instead of the header', 'null'.padEnd(json.length, ' ')],
    ['an array instead of the header', '[]'.padEnd(json.length, ' ')],
    ['a KEK version that does not exist', json.replace('"version":1', '"version":7')],
    ['a KEK version that is not a number', json.replace('"version":1', '"version":"')],
    ['the KEK of another study', json.replace(`"kek":{"study":"${STUDY}"`, `"kek":{"study":"${OTHER_STUDY}"`)],
  ];
  for (const [label, text] of corruptions) {
    t.not(text, json, `precondition: ${label} changes the header`);
    t.is(Buffer.byteLength(text), json.length, `precondition: ${label} keeps the header length`);
    await writeFile(path, Buffer.concat([original.subarray(0, 9), Buffer.from(text, 'utf8'), original.subarray(start)]));
    const result = await readAll(store, ref(stored));
    t.true(isVellumError(result.error, 'INTEGRITY_FAILURE'), `${label}: got ${String(result.error)}`);
    t.is(result.yielded.length, 0, label);
  }
  await writeFile(path, original);
  t.true((await readAll(store, ref(stored))).yielded.equals(plain), 'the untouched blob still reads');
});

test('11.10(a) a blob read under another study, or with a different recorded size, is refused', async (t) => {
  const { store } = await fixture();
  const plain = plaintext(1000, 21);
  const stored = await put(store, plain);
  assertFailedWithPrefix(t, await readAll(store, { ...ref(stored), study: OTHER_STUDY }), plain, 0);
  assertFailedWithPrefix(t, await readAll(store, { ...ref(stored), size: 999 }), plain, 0);
  assertFailedWithPrefix(t, await readAll(store, { ...ref(stored), size: 1001 }), plain, 0);
});

test('11.10(a) a missing blob file is reported as INTEGRITY_FAILURE', async (t) => {
  const { dir, store } = await fixture();
  const plain = plaintext(5000, 22);
  const stored = await put(store, plain);
  await rm(blobPath(dir, stored.blobId));
  assertFailedWithPrefix(t, await readAll(store, ref(stored)), plain, 0);
  assertFailedWithPrefix(t, await readAll(store, { blobId: '00'.repeat(16), study: STUDY, size: 0 }), Buffer.alloc(0), 0);
});

test('11.10(a) an empty blob whose only (empty) segment is tampered with is detected', async (t) => {
  const { dir, store } = await fixture();
  const stored = await put(store, Buffer.alloc(0));
  const path = blobPath(dir, stored.blobId);
  const fd = await open(path, 'r+');
  const last = Buffer.alloc(1);
  const { size } = await fd.stat();
  await fd.read(last, 0, 1, size - 1);
  last[0]! ^= 0xff;
  await fd.write(last, 0, 1, size - 1);
  await fd.close();
  assertFailedWithPrefix(t, await readAll(store, ref(stored)), Buffer.alloc(0), 0);
});

// --- failed uploads leave nothing behind --------------------------------------

function failingSource(goodBytes: Buffer, error: Error): Readable {
  let sent = false;
  return new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(goodBytes);
      } else {
        this.destroy(error);
      }
    },
  });
}

test('DESIGN 2 an upload whose source errors midway fails with UPLOAD_INCOMPLETE and leaves no file in blobs/ or tmp/', async (t) => {
  const { dir, store } = await fixture();
  const error = await t.throwsAsync(store.write(STUDY, failingSource(plaintext(150000, 23), new Error('client went away')), 64 * MiB));
  t.true(isVellumError(error, 'UPLOAD_INCOMPLETE'), String(error));
  t.deepEqual(await filesUnder(join(dir, 'blobs')), []);
  t.deepEqual(await filesUnder(join(dir, 'tmp')), []);
});

test('DESIGN 2 an upload whose source errors before its first byte leaves no file behind', async (t) => {
  const { dir, store } = await fixture();
  const source = new Readable({ read() { this.destroy(new Error('reset')); } });
  const error = await t.throwsAsync(store.write(STUDY, source, 64 * MiB));
  t.true(isVellumError(error, 'UPLOAD_INCOMPLETE'), String(error));
  t.deepEqual(await filesUnder(join(dir, 'blobs')), []);
  t.deepEqual(await filesUnder(join(dir, 'tmp')), []);
});

test('DESIGN 8 an upload past maxBytes fails with BODY_TOO_LARGE and leaves nothing; exactly maxBytes is accepted', async (t) => {
  const { dir, store } = await fixture();
  const max = 100000;
  const error = await t.throwsAsync(store.write(STUDY, source(plaintext(max + 1, 24)), max));
  t.true(isVellumError(error, 'BODY_TOO_LARGE'), String(error));
  t.deepEqual(await filesUnder(join(dir, 'blobs')), []);
  t.deepEqual(await filesUnder(join(dir, 'tmp')), []);

  const plain = plaintext(max, 24);
  const stored = await store.write(STUDY, source(plain), max);
  t.is(stored.size, max);
  t.deepEqual(await filesUnder(join(dir, 'blobs')), [blobPath(dir, stored.blobId)]);
  t.deepEqual(await filesUnder(join(dir, 'tmp')), []);
});

test('DESIGN 4 plaintext never touches disk: no marker text and no data key appears in any file', async (t) => {
  const { dir, store, keys } = await fixture();
  const marker = Buffer.from('VELLUM-PLAINTEXT-MARKER-7f3a9c', 'ascii');
  // The marker repeated over several segments, also straddling segment edges.
  const plain = Buffer.alloc(3 * SEGMENT_SIZE + 77);
  for (let at = 0; at < plain.length; at += marker.length) marker.copy(plain, at);
  const small = Buffer.concat([marker, Buffer.from(' and a little more')]);
  const blobs = [await put(store, plain), await put(store, small), await put(store, plain, OTHER_STUDY)];
  // Failed uploads too.
  await t.throwsAsync(store.write(STUDY, failingSource(plain, new Error('cut')), 64 * MiB));
  await t.throwsAsync(store.write(STUDY, source(plain), SEGMENT_SIZE));

  const files = await filesUnder(dir);
  t.is(files.length, 3);
  const needles = [marker, marker.subarray(0, 12), marker.subarray(12), ...keys.issuedKeys()];
  for (const file of files) {
    const bytes = await readFile(file);
    for (const needle of needles) t.is(bytes.indexOf(needle), -1, `${file} holds plaintext or key bytes`);
  }
  // The blobs still read back.
  for (const [i, blob] of blobs.entries()) {
    const { yielded } = await readAll(store, ref(blob, i === 2 ? OTHER_STUDY : STUDY));
    t.true(yielded.equals(i === 1 ? small : plain));
  }
});

test('remove deletes the blob file, and reading it afterwards fails closed', async (t) => {
  const { dir, store } = await fixture();
  const plain = plaintext(10, 25);
  const stored = await put(store, plain);
  await store.remove(stored.blobId);
  await t.throwsAsync(stat(blobPath(dir, stored.blobId)), { code: 'ENOENT' });
  assertFailedWithPrefix(t, await readAll(store, ref(stored)), plain, 0);
  await t.notThrowsAsync(store.remove(stored.blobId), 'removing twice is harmless');
});
