// KEK rotation of stored blobs, end to end with a real SoftHSM2 token and real
// files (DESIGN invariants 2, 4 and 5): a re-wrap changes one key slot in place
// and no segment, survives a crash in the middle (simulated by tearing the
// slot it was writing), is idempotent, and never loses a byte while reads and
// writes go on. Shredding empties both slots. The DEK cache is off, so every
// read here asks the HSM.

import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { initSoftHsm } from '../env/softhsm.ts';
import { isVellumError, type ErrorCode } from '../../src/kernel/index.ts';
import { openKeyVault, type KeyVault } from '../../src/keys/index.ts';
import { encodeKeySlot, KEY_SLOT_SIZE, SEGMENT_SIZE } from '../../src/vault/blob-format.ts';
import { openBlobStore, type BlobStore, type ByteRange, type StoredBlob } from '../../src/vault/blob-store.ts';

const MiB = 1024 * 1024;
let root: string;
let keys: KeyVault;
let studies = 0;

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'vellum-rotation-'));
  const token = await initSoftHsm({ dir: join(root, 'hsm') });
  keys = await openKeyVault({ library: token.library, tokenLabel: token.tokenLabel, pin: token.pin, sessions: 4 }, { dekCacheTtlMs: 0 });
});

test.after.always(async () => {
  await keys?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

interface Fixture {
  readonly dir: string;
  readonly study: string;
  readonly store: BlobStore;
}

/** A store of its own and a study of its own (with KEK v1), so tests can rotate independently. */
async function fixture(): Promise<Fixture> {
  const dir = await mkdtemp(join(root, 'data-'));
  const study = `STUDY-${++studies}`;
  await keys.ensureStudyKey(study);
  return { dir, study, store: await openBlobStore(dir, keys) };
}

function plaintext(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let counter = 0;
  for (let at = 0; at < size; at += 32) createHash('sha256').update(`${seed}:${counter++}`).digest().copy(out, at);
  return out;
}

function put(f: Fixture, bytes: Buffer): Promise<StoredBlob> {
  const parts: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += 7919) parts.push(bytes.subarray(at, at + 7919));
  return f.store.write(f.study, Readable.from(parts, { objectMode: false }), 64 * MiB);
}

async function readAll(f: Fixture, blob: StoredBlob, range?: ByteRange): Promise<{ bytes: Buffer; error: unknown }> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of await f.store.read({ blobId: blob.blobId, study: f.study, size: blob.size }, range)) chunks.push(chunk as Buffer);
  } catch (error) {
    return { bytes: Buffer.concat(chunks), error };
  }
  return { bytes: Buffer.concat(chunks), error: undefined };
}

const ref = (f: Fixture, blob: StoredBlob) => ({ blobId: blob.blobId, study: f.study });
const record = (f: Fixture, blob: StoredBlob) => ({ ...ref(f, blob), size: blob.size, sha256: blob.sha256 });
const blobPath = (f: Fixture, blobId: string) => join(f.dir, 'blobs', blobId.slice(0, 2), blobId);

/** The file's offsets: key slot A, key slot B, segment 0. */
async function layout(f: Fixture, blob: StoredBlob): Promise<{ a: number; b: number; data: number }> {
  const head = await readFile(blobPath(f, blob.blobId));
  const a = 9 + head.readUInt32BE(5);
  return { a, b: a + KEY_SLOT_SIZE, data: a + 2 * KEY_SLOT_SIZE };
}

/** KEK version in each slot as found on disk (0 = all zero). */
async function slotVersions(f: Fixture, blob: StoredBlob): Promise<[number, number]> {
  const file = await readFile(blobPath(f, blob.blobId));
  const { a, b } = await layout(f, blob);
  const version = (at: number) => (file.subarray(at, at + KEY_SLOT_SIZE).every((x) => x === 0) ? 0 : file.readUInt32BE(at + 1));
  return [version(a), version(b)];
}

async function overwrite(f: Fixture, blob: StoredBlob, position: number, bytes: Buffer): Promise<void> {
  const fd = await open(blobPath(f, blob.blobId), 'r+');
  try {
    await fd.write(bytes, 0, bytes.length, position);
  } finally {
    await fd.close();
  }
}

async function assertReads(t: import('ava').ExecutionContext, f: Fixture, blob: StoredBlob, plain: Buffer, label: string): Promise<void> {
  const { bytes, error } = await readAll(f, blob);
  t.is(error, undefined, `${label}: read`);
  t.true(bytes.equals(plain), `${label}: every byte`);
  await t.notThrowsAsync(f.store.verify(record(f, blob)), `${label}: verify`);
}

async function assertFails(t: import('ava').ExecutionContext, f: Fixture, blob: StoredBlob, code: ErrorCode, label: string): Promise<void> {
  const { bytes, error } = await readAll(f, blob);
  t.true(isVellumError(error, code), `${label}: read gave ${String(error)}`);
  t.is(bytes.length, 0, `${label}: nothing released`);
  const verified = await f.store.verify(record(f, blob)).then(() => undefined, (e: unknown) => e);
  t.true(isVellumError(verified, code), `${label}: verify gave ${String(verified)}`);
}

test('DESIGN 5 a re-wrap to v2 changes one key slot and no segment; the blob reads, verifies and reports v2', async (t) => {
  const f = await fixture();
  const plains = [Buffer.alloc(0), plaintext(1000, 1), plaintext(3 * SEGMENT_SIZE + 5, 2)];
  const blobs = await Promise.all(plains.map((plain) => put(f, plain)));
  t.deepEqual(await keys.rotateStudyKey(f.study), { version: 2, previous: 1 });
  for (const [i, blob] of blobs.entries()) {
    const before = await readFile(blobPath(f, blob.blobId));
    const { b, data } = await layout(f, blob);
    t.is(await f.store.keyVersion(ref(f, blob)), 1);
    t.deepEqual(await f.store.rewrap(ref(f, blob), 2), { kekVersion: 2, changed: true });
    const after = await readFile(blobPath(f, blob.blobId));
    t.is(after.length, before.length);
    t.true(after.subarray(0, b).equals(before.subarray(0, b)), 'header and slot A unchanged');
    t.true(after.subarray(data).equals(before.subarray(data)), 'no segment re-encrypted');
    t.false(after.subarray(b, data).equals(before.subarray(b, data)), 'slot B written');
    t.deepEqual(await slotVersions(f, blob), [1, 2]);
    t.is(await f.store.keyVersion(ref(f, blob)), 2);
    await assertReads(t, f, blob, plains[i]!, `blob ${i}`);
  }
  // The next rotation writes over the older slot, A, and keeps v2 in B until v3 is in place.
  await keys.rotateStudyKey(f.study);
  t.deepEqual(await f.store.rewrap(ref(f, blobs[2]!), 3), { kekVersion: 3, changed: true });
  t.deepEqual(await slotVersions(f, blobs[2]!), [3, 2]);
  await assertReads(t, f, blobs[2]!, plains[2]!, 'after v3');
  // A Range read after re-wraps.
  const range = await readAll(f, blobs[2]!, { start: SEGMENT_SIZE - 3, end: 2 * SEGMENT_SIZE + 3 });
  t.true(range.bytes.equals(plains[2]!.subarray(SEGMENT_SIZE - 3, 2 * SEGMENT_SIZE + 4)));
});

test('a re-wrap is idempotent: a second call writes nothing and says so', async (t) => {
  const f = await fixture();
  const plain = plaintext(70000, 3);
  const blob = await put(f, plain);
  await keys.rotateStudyKey(f.study);
  t.deepEqual(await f.store.rewrap(ref(f, blob), 2), { kekVersion: 2, changed: true });
  const once = await readFile(blobPath(f, blob.blobId));
  t.deepEqual(await f.store.rewrap(ref(f, blob), 2), { kekVersion: 2, changed: false });
  t.deepEqual(await Promise.all([f.store.rewrap(ref(f, blob), 2), f.store.rewrap(ref(f, blob), 2)]), [
    { kekVersion: 2, changed: false },
    { kekVersion: 2, changed: false },
  ]);
  t.true((await readFile(blobPath(f, blob.blobId))).equals(once), 'the file is byte for byte the same');
  await assertReads(t, f, blob, plain, 'after repeated re-wraps');
});

test('DESIGN 2 a re-wrap torn by a crash (garbage or half a slot in the slot being written) still reads through the other slot, and the next re-wrap repairs it', async (t) => {
  const f = await fixture();
  const plain = plaintext(2 * SEGMENT_SIZE + 77, 4);
  const [blob, donor] = await Promise.all([put(f, plain), put(f, plaintext(10, 5))]);
  await keys.rotateStudyKey(f.study);
  await f.store.rewrap(ref(f, donor), 2);
  const { a, b } = await layout(f, blob);
  const donorLayout = await layout(f, donor);
  const donorSlotB = (await readFile(blobPath(f, donor.blobId))).subarray(donorLayout.b, donorLayout.b + KEY_SLOT_SIZE);

  // A crash while the first re-wrap (to v2) was writing slot B.
  const tears: [string, Buffer][] = [
    ['random garbage', randomBytes(KEY_SLOT_SIZE)],
    ['the first 100 bytes of a v2 slot', Buffer.concat([donorSlotB.subarray(0, 100), Buffer.alloc(KEY_SLOT_SIZE - 100)])],
    ['a v2 slot missing its last byte', Buffer.concat([donorSlotB.subarray(0, KEY_SLOT_SIZE - 1), Buffer.alloc(1)])],
  ];
  for (const [label, torn] of tears) {
    await overwrite(f, blob, b, torn);
    await assertReads(t, f, blob, plain, label);
    t.is(await f.store.keyVersion(ref(f, blob)), 1, `${label}: slot A (v1) is the working key`);
  }
  t.deepEqual(await f.store.rewrap(ref(f, blob), 2), { kekVersion: 2, changed: true }, 'a torn slot is not mistaken for a done re-wrap');
  t.deepEqual(await slotVersions(f, blob), [1, 2]);
  await assertReads(t, f, blob, plain, 'repaired');

  // A crash while the next re-wrap (to v3) was writing slot A, the older one: slot B (v2) carries on.
  await keys.rotateStudyKey(f.study);
  await overwrite(f, blob, a, randomBytes(KEY_SLOT_SIZE));
  await assertReads(t, f, blob, plain, 'slot A torn');
  t.is(await f.store.keyVersion(ref(f, blob)), 2);
  t.deepEqual(await f.store.rewrap(ref(f, blob), 3), { kekVersion: 3, changed: true });
  t.deepEqual(await slotVersions(f, blob), [3, 2]);
  t.is(await f.store.keyVersion(ref(f, blob)), 3);
  await assertReads(t, f, blob, plain, 'after v3');
});

test('a valid slot whose KEK version does not exist, or whose bytes do not unwrap, is skipped for the other slot', async (t) => {
  const f = await fixture();
  const plain = plaintext(5000, 6);
  const blob = await put(f, plain);
  await keys.rotateStudyKey(f.study);
  const { b } = await layout(f, blob);
  await overwrite(f, blob, b, encodeKeySlot({ kekVersion: 2, mechanism: 'AES_KEY_WRAP_PAD', wrapped: randomBytes(40) }));
  await assertReads(t, f, blob, plain, 'v2 slot that does not unwrap');
  t.is(await f.store.keyVersion(ref(f, blob)), 1);
  await overwrite(f, blob, b, encodeKeySlot({ kekVersion: 99, mechanism: 'AES_KEY_WRAP_PAD', wrapped: randomBytes(40) }));
  await assertReads(t, f, blob, plain, 'slot naming KEK v99');
  t.is(await f.store.keyVersion(ref(f, blob)), 1);
  // With no working slot at all, the read fails closed and names both.
  const { a } = await layout(f, blob);
  await overwrite(f, blob, a, encodeKeySlot({ kekVersion: 1, mechanism: 'AES_KEY_WRAP_PAD', wrapped: randomBytes(40) }));
  await assertFails(t, f, blob, 'INTEGRITY_FAILURE', 'no slot unwraps');
  const { error } = await readAll(f, blob);
  t.regex((error as Error).message, /slot B \(KEK v99\): its KEK version does not exist; slot A \(KEK v1\): it does not unwrap/);
});

test('11.10(a) a key slot copied from another blob unwraps in the HSM to the other data key, and the segments refuse it', async (t) => {
  const f = await fixture();
  const plain = plaintext(SEGMENT_SIZE + 100, 7);
  const [blob, other] = await Promise.all([put(f, plain), put(f, plaintext(SEGMENT_SIZE + 100, 8))]);
  const mine = await layout(f, blob);
  const theirs = await layout(f, other);
  const original = await readFile(blobPath(f, blob.blobId));
  const otherFile = await readFile(blobPath(f, other.blobId));
  // The other blob's v1 slot over this blob's v1 slot.
  await overwrite(f, blob, mine.a, otherFile.subarray(theirs.a, theirs.a + KEY_SLOT_SIZE));
  await assertFails(t, f, blob, 'INTEGRITY_FAILURE', 'slot A from another blob');
  // The other blob's newer (v2) slot into this blob's empty slot B: it is tried first and refused.
  await overwrite(f, blob, mine.a, original.subarray(mine.a, mine.a + KEY_SLOT_SIZE));
  await keys.rotateStudyKey(f.study);
  await f.store.rewrap(ref(f, other), 2);
  const otherB = (await readFile(blobPath(f, other.blobId))).subarray(theirs.b, theirs.b + KEY_SLOT_SIZE);
  await overwrite(f, blob, mine.b, otherB);
  await assertFails(t, f, blob, 'INTEGRITY_FAILURE', 'a v2 slot from another blob');
  const verified = await f.store.verify(record(f, blob)).catch((e: unknown) => e);
  t.regex((verified as Error).message, /Segment 0 failed authentication/);
  await assertReads(t, f, other, plaintext(SEGMENT_SIZE + 100, 8), 'the other blob');
});

test('DESIGN 3 shred zeroes both key slots on disk: read, verify, keyVersion and rewrap give CONTENT_SHREDDED', async (t) => {
  const f = await fixture();
  const plain = plaintext(3 * SEGMENT_SIZE, 9);
  const blob = await put(f, plain);
  await keys.rotateStudyKey(f.study);
  await f.store.rewrap(ref(f, blob), 2);
  const before = await readFile(blobPath(f, blob.blobId));
  const { a, data } = await layout(f, blob);
  await f.store.shred(ref(f, blob));
  const after = await readFile(blobPath(f, blob.blobId));
  t.true(after.subarray(a, data).equals(Buffer.alloc(2 * KEY_SLOT_SIZE)), 'both slots are zero');
  t.true(after.subarray(0, a).equals(before.subarray(0, a)) && after.subarray(data).equals(before.subarray(data)), 'nothing else changed');
  t.false(after.includes(before.subarray(a + 40, a + 80)), 'no wrapped key bytes are left in the file');
  await assertFails(t, f, blob, 'CONTENT_SHREDDED', 'shredded');
  await t.throwsAsync(f.store.keyVersion(ref(f, blob)), { code: 'CONTENT_SHREDDED' });
  await t.throwsAsync(f.store.rewrap(ref(f, blob), 2), { code: 'CONTENT_SHREDDED' });
  await t.notThrowsAsync(f.store.shred(ref(f, blob)));
});

test('DESIGN 2 a rotation with reads and writes going on loses nothing: every byte of every blob, before, during and after', async (t) => {
  const f = await fixture();
  const expected = new Map<string, { blob: StoredBlob; plain: Buffer }>();
  const sizes = [0, 1, 1000, SEGMENT_SIZE - 1, SEGMENT_SIZE, SEGMENT_SIZE + 1, 3 * SEGMENT_SIZE + 17, 300_000];
  let seed = 1000;
  const add = async () => {
    const plain = plaintext(sizes[seed % sizes.length]!, seed++);
    const blob = await put(f, plain);
    expected.set(blob.blobId, { blob, plain });
  };
  for (let i = 0; i < 40; i++) await add();

  let reads = 0;
  let failures = 0;
  const check = async (blobId: string, withRange: boolean) => {
    const { blob, plain } = expected.get(blobId)!;
    const range = withRange && blob.size > 10 ? { start: 3, end: blob.size - 4 } : undefined;
    const { bytes, error } = await readAll(f, blob, range);
    const want = range ? plain.subarray(range.start, range.end + 1) : plain;
    reads++;
    if (error !== undefined || !bytes.equals(want)) {
      failures++;
      t.fail(`blob ${blobId}: ${String(error ?? 'wrong bytes')}`);
    }
  };

  for (const toVersion of [2, 3]) {
    t.is((await keys.rotateStudyKey(f.study)).version, toVersion);
    let busy = true;
    const readers = Array.from({ length: 3 }, async (_, r) => {
      for (let i = 0; busy || i < 5; i++) {
        const ids = [...expected.keys()];
        await check(ids[(i * 7 + r * 13) % ids.length]!, i % 3 === 0);
      }
    });
    const writer = (async () => {
      for (let i = 0; i < 15; i++) await add();
    })();
    // Two re-wrappers over the same blobs at once, as a resumed job racing its predecessor would.
    const rewrapper = async () => {
      let changed = 0;
      for await (const blobId of f.store.list()) {
        if ((await f.store.rewrap({ blobId, study: f.study }, toVersion)).changed) changed++;
      }
      return changed;
    };
    const older = expected.size;
    const [changedA, changedB] = await Promise.all([rewrapper(), rewrapper(), writer]);
    busy = false;
    await Promise.all(readers);
    t.is(changedA! + changedB!, older, `v${toVersion}: every blob older than the rotation was re-wrapped exactly once`);
    // Blobs written after the rotation were born under the new version: a second pass has nothing to do.
    for await (const blobId of f.store.list()) t.false((await f.store.rewrap({ blobId, study: f.study }, toVersion)).changed);
    for (const { blob, plain } of expected.values()) {
      t.is(await f.store.keyVersion(ref(f, blob)), toVersion, `blob ${blob.blobId} is under v${toVersion}`);
      const { bytes, error } = await readAll(f, blob);
      if (error !== undefined || !bytes.equals(plain)) t.fail(`blob ${blob.blobId} after the rotation to v${toVersion}: ${String(error ?? 'wrong bytes')}`);
      await f.store.verify(record(f, blob));
    }
  }
  t.is(failures, 0);
  t.is(expected.size, 70);
  t.log(`${reads} reads during two rotations of ${expected.size} blobs`);
});
