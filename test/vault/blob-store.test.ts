// The encrypted blob store (DESIGN invariant 4, 21 CFR 11.10(a) and (c)): blobs
// are AES-256-GCM in 64 KiB segments, written through a temporary file, and a
// read releases only bytes that authenticated; verify() finds the same damage
// without releasing anything. Blobs are real files in a temporary directory;
// the KeyVault is the in-memory fake (the HSM is tested in test/keys/, and the
// blob store with SoftHSM in blob-rotation.test.ts).

import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { isVellumError, type ErrorCode } from '../../src/kernel/index.ts';
import { KEY_SLOT_SIZE, SEGMENT_SIZE, TAG_SIZE } from '../../src/vault/blob-format.ts';
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

/** Where the key slots start: after "VLMB", the version byte, the u32be header length and the header. */
async function slotsStart(path: string): Promise<number> {
  const bytes = await readFile(path);
  return 9 + bytes.readUInt32BE(5);
}

/** Where the encrypted segments start: after the header and the two key slots. */
async function dataStart(path: string): Promise<number> {
  return (await slotsStart(path)) + 2 * KEY_SLOT_SIZE;
}

/** verify() of a blob, as the error it threw (undefined when it passed). */
async function verifyError(store: BlobStore, blob: StoredBlob, study = STUDY): Promise<unknown> {
  try {
    await store.verify({ blobId: blob.blobId, study, size: blob.size, sha256: blob.sha256 });
    return undefined;
  } catch (error) {
    return error;
  }
}

/** Asserts verify() fails with `code` and a detail matching `detail`. */
async function assertVerifyFails(t: import('ava').ExecutionContext, store: BlobStore, blob: StoredBlob, detail: RegExp, code: ErrorCode = 'INTEGRITY_FAILURE'): Promise<void> {
  const error = await verifyError(store, blob);
  t.true(isVellumError(error, code), `verify: expected ${code}, got ${String(error)}`);
  if (isVellumError(error)) t.regex(error.detail ?? '', detail, 'verify names the problem');
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
  await assertVerifyFails(t, store, stored, /Segment 1 failed authentication/);
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
  await assertVerifyFails(t, store, stored, /Segment 2 failed authentication/);
});

test('11.10(a) a blob truncated at a segment boundary is detected', async (t) => {
  const { dir, store } = await fixture();
  const plain = plaintext(2 * SEGMENT_SIZE + 1000, 13);
  const stored = await put(store, plain);
  const path = blobPath(dir, stored.blobId);
  await truncate(path, (await dataStart(path)) + 2 * SEALED);
  assertFailedWithPrefix(t, await readAll(store, ref(stored)), plain, 2 * SEGMENT_SIZE);
  assertFailedWithPrefix(t, await readAll(store, ref(stored), { start: 0, end: 99 }), plain, 100);
  await assertVerifyFails(t, store, stored, /is \d+ bytes long; \d+ were expected/);
});

test('11.10(a) a blob truncated at a segment boundary is detected even when the recorded size is cut to match (last-segment flag)', async (t) => {
  const { dir, store } = await fixture();
  const plain = plaintext(2 * SEGMENT_SIZE + 1000, 14);
  const stored = await put(store, plain);
  const path = blobPath(dir, stored.blobId);
  await truncate(path, (await dataStart(path)) + 2 * SEALED);
  const result = await readAll(store, { ...ref(stored), size: 2 * SEGMENT_SIZE });
  assertFailedWithPrefix(t, result, plain, SEGMENT_SIZE);
  await assertVerifyFails(t, store, { ...stored, size: 2 * SEGMENT_SIZE }, /Segment 1 failed authentication/);
});

test('11.10(a) a blob truncated in the middle of a segment is detected', async (t) => {
  const { dir, store } = await fixture();
  const plain = plaintext(2 * SEGMENT_SIZE + 1000, 15);
  const stored = await put(store, plain);
  const path = blobPath(dir, stored.blobId);
  await truncate(path, (await dataStart(path)) + SEALED + 4000);
  assertFailedWithPrefix(t, await readAll(store, ref(stored)), plain, SEGMENT_SIZE);
  await assertVerifyFails(t, store, stored, /bytes long/);
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
  await assertVerifyFails(t, store, a, /Segment 1 failed authentication/);
  const untouched = await readAll(store, ref(b));
  t.is(untouched.error, undefined);
  t.true(untouched.yielded.equals(plainB));
  t.is(await verifyError(store, b), undefined);
});

test('11.10(a) segments swapped between two blobs (each holding the other\'s segment 0) are detected in both', async (t) => {
  const { dir, store } = await fixture();
  const plainA = plaintext(2 * SEGMENT_SIZE + 1000, 30);
  const plainB = plaintext(2 * SEGMENT_SIZE + 1000, 31);
  const a = await put(store, plainA);
  const b = await put(store, plainB);
  const pathA = blobPath(dir, a.blobId);
  const pathB = blobPath(dir, b.blobId);
  const startA = await dataStart(pathA);
  const startB = await dataStart(pathB);
  const fileA = await readFile(pathA);
  const fileB = await readFile(pathB);
  const seg0A = Buffer.from(fileA.subarray(startA, startA + SEALED));
  fileB.copy(fileA, startA, startB, startB + SEALED);
  seg0A.copy(fileB, startB);
  await writeFile(pathA, fileA);
  await writeFile(pathB, fileB);
  assertFailedWithPrefix(t, await readAll(store, ref(a)), plainA, 0);
  assertFailedWithPrefix(t, await readAll(store, ref(b)), plainB, 0);
  await assertVerifyFails(t, store, a, /Segment 0 failed authentication/);
  await assertVerifyFails(t, store, b, /Segment 0 failed authentication/);
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
  await assertVerifyFails(t, store, stored, /Segment 0 failed authentication/);
});

test('11.10(a) an immutable header moved onto another blob is detected, also with its blob id rewritten to match', async (t) => {
  const { dir, store } = await fixture();
  const plainA = plaintext(SEGMENT_SIZE + 500, 19);
  const plainB = plaintext(SEGMENT_SIZE + 500, 20);
  const a = await put(store, plainA);
  const b = await put(store, plainB);
  const pathA = blobPath(dir, a.blobId);
  const pathB = blobPath(dir, b.blobId);
  const fileA = await readFile(pathA);
  const fileB = await readFile(pathB);
  const slotsA = await slotsStart(pathA);
  const slotsB = await slotsStart(pathB);
  const headerB = fileB.subarray(0, slotsB);
  // B's header in front of A's key slots and segments: it names blob B.
  await writeFile(pathA, Buffer.concat([headerB, fileA.subarray(slotsA)]));
  assertFailedWithPrefix(t, await readAll(store, ref(a)), plainA, 0);
  await assertVerifyFails(t, store, a, /belongs to another blob \(it names blob [0-9a-f]{32} of study STUDY-1\)/);
  // B's whole prologue (header and key slots) in front of A's segments.
  await writeFile(pathA, Buffer.concat([fileB.subarray(0, slotsB + 2 * KEY_SLOT_SIZE), fileA.subarray(slotsA + 2 * KEY_SLOT_SIZE)]));
  assertFailedWithPrefix(t, await readAll(store, ref(a)), plainA, 0);
  await assertVerifyFails(t, store, a, /belongs to another blob/);
  // The same, with the blob id inside B's header changed to A's (same length), so the id check passes:
  // the header digest in every AAD differs.
  const forged = Buffer.from(headerB.toString('latin1').replace(b.blobId, a.blobId), 'latin1');
  t.is(forged.length, headerB.length);
  await writeFile(pathA, Buffer.concat([forged, fileA.subarray(slotsA)]));
  assertFailedWithPrefix(t, await readAll(store, ref(a)), plainA, 0);
  await assertVerifyFails(t, store, a, /Segment 0 failed authentication/);
});

test('11.10(a) a key slot copied from another blob of the same study unwraps to the other data key and fails authentication', async (t) => {
  const { dir, store } = await fixture();
  const plainA = plaintext(SEGMENT_SIZE + 500, 32);
  const plainB = plaintext(SEGMENT_SIZE + 500, 33);
  const a = await put(store, plainA);
  const b = await put(store, plainB);
  const pathA = blobPath(dir, a.blobId);
  const pathB = blobPath(dir, b.blobId);
  const fileA = await readFile(pathA);
  const fileB = await readFile(pathB);
  const slotsA = await slotsStart(pathA);
  const slotsB = await slotsStart(pathB);
  fileB.copy(fileA, slotsA, slotsB, slotsB + KEY_SLOT_SIZE);
  await writeFile(pathA, fileA);
  assertFailedWithPrefix(t, await readAll(store, ref(a)), plainA, 0);
  await assertVerifyFails(t, store, a, /Segment 0 failed authentication/);
  t.is(await verifyError(store, b), undefined, 'the blob it came from is untouched');
});

test('11.10(a) a header corrupted into other well-formed JSON is reported as INTEGRITY_FAILURE, never as another error', async (t) => {
  const { dir, store } = await fixture();
  const plain = plaintext(SEGMENT_SIZE + 10, 26);
  const stored = await put(store, plain);
  const path = blobPath(dir, stored.blobId);
  const original = await readFile(path);
  const start = await dataStart(path);
  const json = original.subarray(9, start - 2 * KEY_SLOT_SIZE).toString('utf8');
  const prefix = (JSON.parse(json) as { noncePrefix: string }).noncePrefix;
  const otherPrefix = Buffer.from(Buffer.from(prefix, 'base64').map((byte) => byte ^ 1)).toString('base64');
  const corruptions: [string, string][] = [
    ['a renamed "blobId" key', json.replace('"blobId":', '"blobIe":')],
    ['a renamed "noncePrefix" key', json.replace('"noncePrefix":', '"noncePrefiy":')],
    ['null instead of the header', 'null'.padEnd(json.length, ' ')],
    ['an array instead of the header', '[]'.padEnd(json.length, ' ')],
    ['another study', json.replace(`"study":"${STUDY}"`, `"study":"${OTHER_STUDY}"`)],
    ['another blob id', json.replace(stored.blobId, 'f'.repeat(32))],
    ['a study id that is not one', json.replace(`"study":"${STUDY}"`, '"study":"../../x"')],
    ['another cipher', json.replace('"AES-256-GCM"', '"AES-256-CBC"')],
    ['another segment size', json.replace('"segmentSize":65536', '"segmentSize":65537')],
    ['a segment size that is not a number', json.replace('"segmentSize":65536', '"segmentSize":"655"')],
    ['another nonce prefix (8 bytes, well formed)', json.replace(prefix, otherPrefix)],
    ['a nonce prefix of the wrong length', json.replace(prefix, 'AAAAAAAAAA==')],
  ];
  for (const [label, text] of corruptions) {
    t.not(text, json, `precondition: ${label} changes the header`);
    t.is(Buffer.byteLength(text), json.length, `precondition: ${label} keeps the header length`);
    await writeFile(path, Buffer.concat([original.subarray(0, 9), Buffer.from(text, 'utf8'), original.subarray(start)]));
    const result = await readAll(store, ref(stored));
    t.true(isVellumError(result.error, 'INTEGRITY_FAILURE'), `${label}: got ${String(result.error)}`);
    t.is(result.yielded.length, 0, label);
    t.true(isVellumError(await verifyError(store, stored), 'INTEGRITY_FAILURE'), `${label}: verify`);
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
  await assertVerifyFails(t, store, stored, /missing/);
  for (const blobId of ['../../etc/passwd', '', 'AB'.repeat(16)]) {
    assertFailedWithPrefix(t, await readAll(store, { blobId, study: STUDY, size: 0 }), Buffer.alloc(0), 0);
  }
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
  await assertVerifyFails(t, store, stored, /Segment 0 failed authentication/);
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

// --- verify -------------------------------------------------------------------

test('verify passes an intact blob of any size and reports the bytes verified so far, growing to the whole size', async (t) => {
  const { store } = await fixture();
  for (const size of [0, 1, SEGMENT_SIZE, 40 * SEGMENT_SIZE + 3]) {
    const stored = await put(store, plaintext(size, size + 100));
    const progress: number[] = [];
    await store.verify({ blobId: stored.blobId, study: STUDY, size: stored.size, sha256: stored.sha256 }, (bytes) => progress.push(bytes));
    t.true(progress.length >= 1, `size ${size}: progress was reported`);
    t.is(progress[progress.length - 1], size, `size ${size}: the last report is the whole blob`);
    t.deepEqual(progress, [...progress].sort((a, b) => a - b), `size ${size}: progress only grows`);
  }
});

test('11.10(a) verify compares with the record: another SHA-256, another size or another study is an INTEGRITY_FAILURE naming it', async (t) => {
  const { store } = await fixture();
  const stored = await put(store, plaintext(3 * SEGMENT_SIZE + 9, 40));
  await assertVerifyFails(t, store, { ...stored, sha256: '0'.repeat(64) }, new RegExp(`hashes to SHA-256 ${stored.sha256}; the record says 0{64}`));
  await assertVerifyFails(t, store, { ...stored, size: stored.size + 1 }, /bytes long/);
  const error = await verifyError(store, stored, OTHER_STUDY);
  t.true(isVellumError(error, 'INTEGRITY_FAILURE'));
  t.regex((error as Error).message, /belongs to another blob/);
});

// --- digests sent with the upload --------------------------------------------------

test('DESIGN 2 an upload whose bytes do not match the expected SHA-256 fails with DIGEST_MISMATCH and leaves nothing in blobs/ or tmp/', async (t) => {
  const { dir, store } = await fixture();
  const plain = plaintext(3 * SEGMENT_SIZE + 17, 41);
  const digest = createHash('sha256').update(plain).digest('hex');
  const wrong = createHash('sha256').update('something else').digest('hex');
  const error = await t.throwsAsync(store.write(STUDY, source(plain), 64 * MiB, { expectedSha256: wrong }));
  t.true(isVellumError(error, 'DIGEST_MISMATCH'), String(error));
  t.regex((error as Error).message, new RegExp(digest));
  t.deepEqual(await filesUnder(join(dir, 'blobs')), []);
  t.deepEqual(await filesUnder(join(dir, 'tmp')), []);

  const stored = await store.write(STUDY, source(plain), 64 * MiB, { expectedSha256: digest });
  t.is(stored.sha256, digest);
  t.true((await readAll(store, ref(stored))).yielded.equals(plain));
});

test('an expected SHA-256 that is not 64 lowercase hex digits is refused before anything is read or stored', async (t) => {
  const { dir, store, keys } = await fixture();
  const plain = plaintext(100, 42);
  const digest = createHash('sha256').update(plain).digest('hex');
  for (const bad of [digest.toUpperCase(), digest.slice(1), `${digest}0`, '', 'z'.repeat(64)]) {
    const error = await t.throwsAsync(store.write(STUDY, source(plain), 64 * MiB, { expectedSha256: bad }));
    t.true(isVellumError(error, 'BAD_REQUEST'), `${JSON.stringify(bad)}: ${String(error)}`);
  }
  t.is(keys.newDataKeyCalls, 0, 'no data key was made');
  t.deepEqual(await filesUnder(dir), []);
});

// --- listing and leftovers -------------------------------------------------------

test('list() yields every blob written and nothing else found under blobs/', async (t) => {
  const { dir, store } = await fixture();
  const written = [];
  for (let i = 0; i < 12; i++) written.push((await put(store, plaintext(i * 1000, i))).blobId);
  const removed = written.pop()!;
  await store.remove(removed);
  // Things that are not blobs: ignored, not removed.
  await writeFile(join(dir, 'blobs', 'README'), 'not a blob');
  const folder = join(dir, 'blobs', written[0]!.slice(0, 2));
  await writeFile(join(folder, `${written[0]}.part`), 'x');
  await writeFile(join(folder, 'notes.txt'), 'x');
  const misplaced = `${written[0]!.slice(0, 2) === 'ff' ? 'ee' : 'ff'}${'0'.repeat(30)}`;
  await writeFile(join(folder, misplaced), 'in the wrong folder');
  const listed: string[] = [];
  for await (const blobId of store.list()) listed.push(blobId);
  t.deepEqual(listed.sort(), [...written].sort());
});

test('DESIGN 2 sweepTemporary removes what a crashed upload left in tmp/ and leaves uploads in progress alone', async (t) => {
  const { dir, store } = await fixture();
  const tmp = join(dir, 'tmp');
  await writeFile(join(tmp, `${'a'.repeat(32)}.part`), 'half an upload');
  await writeFile(join(tmp, 'stray'), 'x');
  // An upload in progress: its source waits until released.
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const plain = plaintext(2 * SEGMENT_SIZE + 5, 43);
  async function* slow() {
    yield plain.subarray(0, SEGMENT_SIZE + 1);
    await gate;
    yield plain.subarray(SEGMENT_SIZE + 1);
  }
  const upload = store.write(STUDY, Readable.from(slow(), { objectMode: false }), 64 * MiB);
  let inProgress: string[] = [];
  for (let i = 0; i < 200 && inProgress.length < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    inProgress = await readdir(tmp);
  }
  t.is(inProgress.length, 3, 'the upload has its temporary file');

  const removed = await store.sweepTemporary();
  t.deepEqual(removed, [`${'a'.repeat(32)}.part`, 'stray']);
  const left = await readdir(tmp);
  t.is(left.length, 1);
  t.regex(left[0]!, /^[0-9a-f]{32}\.part$/);

  release();
  const stored = await upload;
  t.true((await readAll(store, ref(stored))).yielded.equals(plain), 'the upload in progress completed intact');
  t.deepEqual(await readdir(tmp), []);
  t.deepEqual(await store.sweepTemporary(), []);
});

// --- key slots (with the fake key vault; SoftHSM in blob-rotation.test.ts) -------------

test('rewrap writes the other slot each time (A, B, A...), keeping the newest working key, and shred zeroes both', async (t) => {
  const { dir, store, keys } = await fixture();
  const plain = plaintext(SEGMENT_SIZE + 3, 44);
  const stored = await put(store, plain);
  const path = blobPath(dir, stored.blobId);
  const slots = async () => {
    const file = await readFile(path);
    const at = await slotsStart(path);
    return [file.subarray(at, at + KEY_SLOT_SIZE), file.subarray(at + KEY_SLOT_SIZE, at + 2 * KEY_SLOT_SIZE)].map((slot) =>
      slot.every((b) => b === 0) ? 0 : slot.readUInt32BE(1));
  };
  t.deepEqual(await slots(), [1, 0], 'a new blob: slot A under v1, slot B empty');
  for (const [version, expected] of [[2, [1, 2]], [3, [3, 2]], [4, [3, 4]]] as const) {
    keys.rotate(STUDY);
    t.deepEqual(await store.rewrap(ref(stored), version), { kekVersion: version, changed: true });
    t.deepEqual(await slots(), expected, `after the re-wrap to v${version}`);
    t.is(await store.keyVersion(ref(stored)), version);
    t.true((await readAll(store, ref(stored))).yielded.equals(plain));
  }
  await t.throwsAsync(store.rewrap(ref(stored), 3), { code: 'BAD_REQUEST' }, 'no going back to an older version');
  await t.throwsAsync(store.rewrap(ref(stored), 9), { code: 'NOT_FOUND' }, 'a version that does not exist');
  t.deepEqual(await slots(), [3, 4], 'refused re-wraps changed nothing');

  await store.shred(ref(stored));
  t.deepEqual(await slots(), [0, 0]);
  t.is(keys.forgotten.length, 2, 'both wrapped keys were dropped from the key cache');
  await t.notThrowsAsync(store.shred(ref(stored)), 'shredding twice is harmless');
  assertFailedWithPrefix(t, await readAll(store, ref(stored)), plain, 0, 'CONTENT_SHREDDED');
  await assertVerifyFails(t, store, stored, /shredded/, 'CONTENT_SHREDDED');
  await t.throwsAsync(store.keyVersion(ref(stored)), { code: 'CONTENT_SHREDDED' });
  await t.throwsAsync(store.rewrap(ref(stored), 4), { code: 'CONTENT_SHREDDED' });
});

test('a re-wrap racing a shred never brings the data key back', async (t) => {
  const { store, keys } = await fixture();
  keys.rotate(STUDY);
  const blobs = await Promise.all(Array.from({ length: 20 }, (_, i) => put(store, plaintext(1000, 200 + i))));
  await Promise.allSettled(blobs.flatMap((blob, i) => (i % 2 === 0
    ? [store.rewrap(ref(blob), 2), store.shred(ref(blob))]
    : [store.shred(ref(blob)), store.rewrap(ref(blob), 2)])));
  for (const blob of blobs) {
    await t.throwsAsync(store.keyVersion(ref(blob)), { code: 'CONTENT_SHREDDED' });
  }
});

test('a blob with one damaged key slot and no other is INTEGRITY_FAILURE, not CONTENT_SHREDDED; a missing file cannot be shredded or re-wrapped', async (t) => {
  const { dir, store } = await fixture();
  const plain = plaintext(500, 45);
  const stored = await put(store, plain);
  const path = blobPath(dir, stored.blobId);
  const fd = await open(path, 'r+');
  await fd.write(Buffer.from([0xff]), 0, 1, (await slotsStart(path)) + 100);
  await fd.close();
  const result = await readAll(store, ref(stored));
  assertFailedWithPrefix(t, result, plain, 0);
  t.regex((result.error as Error).message, /slot A invalid: its checksum does not match.*slot B empty/);
  await assertVerifyFails(t, store, stored, /no usable key slot/);
  await store.shred(ref(stored));
  assertFailedWithPrefix(t, await readAll(store, ref(stored)), plain, 0, 'CONTENT_SHREDDED');

  await store.remove(stored.blobId);
  await t.throwsAsync(store.shred(ref(stored)), { code: 'INTEGRITY_FAILURE' });
  await t.throwsAsync(store.rewrap(ref(stored), 1), { code: 'INTEGRITY_FAILURE' });
  await t.throwsAsync(store.keyVersion(ref(stored)), { code: 'INTEGRITY_FAILURE' });
});

test.serial('a read abandoned midway closes its file, and a finished one too (no descriptor is leaked)', async (t) => {
  const { store } = await fixture();
  const stored = await put(store, plaintext(40 * SEGMENT_SIZE, 46));
  const openFiles = async () => (await readdir('/proc/self/fd')).length;
  const settle = () => new Promise((resolve) => setTimeout(resolve, 50));
  await settle();
  const before = await openFiles();
  for (let i = 0; i < 20; i++) {
    const stream = await store.read(ref(stored));
    for await (const chunk of stream) {
      t.true((chunk as Buffer).length > 0);
      break; // leaves the loop: the stream is destroyed with reads ahead in flight
    }
  }
  for (let i = 0; i < 5; i++) await readAll(store, ref(stored));
  await settle();
  t.is(await openFiles(), before);
});

test('a range that runs past the end is cut at the last byte', async (t) => {
  const { store } = await fixture();
  const plain = plaintext(SEGMENT_SIZE + 10, 47);
  const stored = await put(store, plain);
  const { yielded, error } = await readAll(store, ref(stored), { start: SEGMENT_SIZE, end: SEGMENT_SIZE + 1000 });
  t.is(error, undefined);
  t.true(yielded.equals(plain.subarray(SEGMENT_SIZE)));
});
