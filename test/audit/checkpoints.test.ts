// Signed checkpoints and the stored Merkle tree of the audit trail (issue 6,
// 21 CFR 11.10(e)): real LevelDB on disk, an RSA-3072 signer with a
// certificate from `openssl req -x509`, checkpoints made every N entries or T
// seconds off the writers' path, failures retried and audited once per run,
// the tree kept across restarts and rebuilt for trails written without it.

import test from 'ava';
import { Level } from 'level';
import {
  checkpointSignatureValid, CHECKPOINT_SECTION, openAuditTrail, TREE_SECTION,
  type AuditEntry, type AuditEvent, type AuditTrail, type AuditTrailOptions, type StoredCheckpoint,
} from '../../src/audit/index.ts';
import { inclusionProof, leafHash, nodeHash, rangeHash, rootFromInclusionProof } from '../../src/audit/merkle.ts';
import type { Database } from '../../src/db/index.ts';
import { isVellumError, type Clock, type VellumError } from '../../src/kernel/index.ts';
import { eventually, tempStores, testKeys, type TestSigner } from './support.ts';

const { newLocation, openDb, cleanup } = tempStores('vellum-checkpoints-');
const keys = testKeys('vellum-checkpoint-keys-');
const trails: AuditTrail[] = [];
let signer: TestSigner;
test.before(async () => {
  signer = await keys.signer();
});
test.after.always(async () => {
  await Promise.all(trails.map((trail) => trail.close().catch(() => undefined)));
  await Promise.all([cleanup(), keys.cleanup()]);
});

async function openTrail(db: Database, options: AuditTrailOptions): Promise<AuditTrail> {
  const trail = await openAuditTrail(db, options);
  trails.push(trail);
  return trail;
}

/** One millisecond per reading from a fixed start, so two runs write identical entries. */
function tickingClock(): Clock {
  let ms = Date.UTC(2025, 5, 1, 8, 0, 0, 0);
  return { now: () => new Date(ms++) };
}

const rarely = { everyEntries: 1_000_000, everySeconds: 3600 };

function event(n: number): AuditEvent {
  return { action: 'file.read', outcome: 'success', protocol: 'webdav', object: { study: 'S-1', path: `/S-1/f-${n}.pdf` } };
}

async function recordMany(trail: AuditTrail, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) await trail.record(event(i));
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

async function storedCheckpoints(db: Database): Promise<StoredCheckpoint[]> {
  return (await collect(db.section<StoredCheckpoint>(CHECKPOINT_SECTION).entries())).map(([, value]) => value);
}

/** RFC 6962 MTH computed straight from the entries, with nothing from the trail's tree. */
function treeHashOf(hashes: readonly string[]): Buffer {
  if (hashes.length === 1) return leafHash(hashes[0]!);
  let k = 1;
  while (k * 2 < hashes.length) k *= 2;
  return nodeHash(treeHashOf(hashes.slice(0, k)), treeHashOf(hashes.slice(k)));
}

async function entryHashes(trail: AuditTrail): Promise<string[]> {
  return (await collect(trail.entries())).map((entry) => entry.hash);
}

test('11.10(e) a checkpoint is signed every N entries, covers exactly the head it names, and verifies with the certificate', async (t) => {
  const db = await openDb(await newLocation());
  const trail = await openTrail(db, { signer, checkpoints: { everyEntries: 5, everySeconds: 3600 } });
  // Entry 1 is the certificate's issue.
  await recordMany(trail, 2, 3);
  t.is(trail.latestCheckpoint(), null, 'no checkpoint before 5 entries');
  await recordMany(trail, 5, 1);
  await eventually(() => trail.latestCheckpoint()?.size === 5, 'checkpoint 5');
  await recordMany(trail, 6, 5);
  await eventually(() => trail.latestCheckpoint()?.size === 10, 'checkpoint 10');
  await recordMany(trail, 11, 2);
  await trail.close();

  const stored = await storedCheckpoints(db);
  t.deepEqual(stored.map((c) => c.size), [5, 10], 'one per 5 entries, none for the 2 after');
  const hashes = await entryHashes(trail);
  for (const checkpoint of stored) {
    t.is(checkpoint.logId, trail.logId);
    t.is(checkpoint.head, hashes[checkpoint.size - 1]!);
    t.is(checkpoint.root, treeHashOf(hashes.slice(0, checkpoint.size)).toString('hex'), `root of checkpoint ${checkpoint.size}`);
    t.true(checkpointSignatureValid(checkpoint, trail.certificatePem()!));
    t.regex(checkpoint.certificate, /^[0-9a-f]{64}$/);
  }
  t.deepEqual(await trail.certificates(), [{ fingerprint: stored[0]!.certificate, pem: trail.certificatePem()! }]);
  t.like(await trail.verify(), { ok: true, checked: 12, checkpoints: 2 });
});

test('11.10(e) after T seconds with new entries a checkpoint is made, and none while idle', async (t) => {
  const db = await openDb(await newLocation());
  const own = await keys.signer('idle');
  const trail = await openTrail(db, { signer: own, checkpoints: { everyEntries: 1000, everySeconds: 1 } });
  await recordMany(trail, 2, 2);
  await eventually(() => trail.latestCheckpoint()?.size === 3, 'a timed checkpoint of 3 entries');
  const calls = own.signCalls;
  // Three intervals with nothing new: nothing is signed.
  await new Promise((resolve) => setTimeout(resolve, 3200));
  t.is(own.signCalls, calls, 'no signing while idle');
  t.deepEqual((await storedCheckpoints(db)).map((c) => c.size), [3]);
  // The schedule is still running: a new entry gets its checkpoint.
  await recordMany(trail, 4, 1);
  await eventually(() => trail.latestCheckpoint()?.size === 4, 'a timed checkpoint of 4 entries');
});

test('11.10(e) a failed signing calls onCheckpointFailure, is retried at the next trigger, and is audited once per run of failures', async (t) => {
  const db = await openDb(await newLocation());
  const own = await keys.signer('failing');
  const failures: VellumError[] = [];
  const trail = await openTrail(db, { signer: own, checkpoints: { everyEntries: 2, everySeconds: 3600 }, onCheckpointFailure: (e) => failures.push(e) });
  own.failing = true;
  await recordMany(trail, 2, 1);
  await eventually(() => failures.length === 1, 'the first failure');
  t.true(isVellumError(failures[0], 'HSM_UNAVAILABLE'), String(failures[0]));
  // Entry 3 is the failure's audit entry; entry 4 reaches the count again: a retry, which fails too.
  await eventually(() => trail.head().seq === 3, 'the failure audited');
  await recordMany(trail, 4, 1);
  await eventually(() => failures.length === 2, 'the retry');
  t.is(trail.latestCheckpoint(), null);
  own.failing = false;
  await recordMany(trail, 5, 2);
  await eventually(() => trail.latestCheckpoint()?.size === 6, 'a checkpoint once the signer works again');
  // A new run of failures is audited again.
  own.failing = true;
  await recordMany(trail, 7, 2);
  await eventually(() => failures.length === 3, 'the second run');
  await eventually(() => trail.head().seq === 9, 'the second run audited');

  const audited = (await collect(trail.entries())).filter((e) => e.action === 'audit.checkpoint');
  t.is(audited.length, 2, 'one entry per run of failures, not per retry');
  for (const entry of audited) {
    t.is(entry.outcome, 'failed');
    t.regex(entry.detail ?? '', /HSM_UNAVAILABLE/);
  }
  t.deepEqual(audited.map((e) => (e.newValue as { size: number }).size), [2, 8]);
  t.like(await trail.verify(), { ok: true, checked: 9, checkpoints: 1 });
});

test('11.10(e) checkpoint() returns the latest when it covers the head, else signs one now; without a signer it throws HSM_UNAVAILABLE', async (t) => {
  const db = await openDb(await newLocation());
  const trail = await openTrail(db, { signer, checkpoints: rarely });
  await recordMany(trail, 2, 6);
  const first = await trail.checkpoint();
  t.is(first.size, 7);
  t.is(first.head, trail.head().hash);
  t.is(await trail.checkpoint(), first, 'the head did not move: the same checkpoint');
  await recordMany(trail, 8, 1);
  const [second, third] = await Promise.all([trail.checkpoint(), trail.checkpoint()]);
  t.is(second!.size, 8);
  t.is(third, second, 'concurrent calls are serialised: one signing');
  t.is(trail.latestCheckpoint(), second);
  t.deepEqual((await storedCheckpoints(db)).map((c) => c.size), [7, 8]);

  const plainDb = await openDb(await newLocation());
  const plain = await openTrail(plainDb, {});
  await recordMany(plain, 1, 2);
  const error = await t.throwsAsync(plain.checkpoint());
  t.true(isVellumError(error, 'HSM_UNAVAILABLE'), String(error));
  t.is(plain.certificatePem(), null);
  t.is(plain.latestCheckpoint(), null);
});

test('11.10(e) the certificate is issued once, audited, kept across restarts, and every certificate ever used is kept', async (t) => {
  const location = await newLocation();
  const own = await keys.signer('first');
  let db = await openDb(location);
  let trail = await openTrail(db, { signer: own, checkpoints: rarely });
  const [issue] = await collect(trail.entries());
  t.is(issue!.action, 'audit.certificate.issue');
  t.is(issue!.outcome, 'success');
  const facts = issue!.newValue as { fingerprint: string; subject: string; notAfter: string };
  t.regex(facts.fingerprint, /^[0-9a-f]{64}$/);
  t.regex(facts.subject, /CN=Vellum audit first/);
  t.true(Date.parse(facts.notAfter) > Date.now());
  await recordMany(trail, 2, 2);
  const old = await trail.checkpoint();
  const logId = trail.logId;
  await trail.close();
  await db.close();

  db = await openDb(location);
  trail = await openTrail(db, { signer: own, checkpoints: rarely });
  t.is(own.issued, 1, 'the stored certificate is reused');
  t.is(trail.logId, logId, 'the log id is kept');
  t.deepEqual(trail.latestCheckpoint(), old);
  await trail.close();
  await db.close();

  // A new signing key: a new certificate; the old one is kept for the old checkpoints.
  const rotated = await keys.signer('second');
  db = await openDb(location);
  trail = await openTrail(db, { signer: rotated, checkpoints: rarely });
  const fresh = await trail.checkpoint();
  const certificates = await trail.certificates();
  t.is(certificates.length, 2);
  t.true(certificates.some((c) => c.fingerprint === facts.fingerprint));
  t.true(checkpointSignatureValid(fresh, trail.certificatePem()!));
  t.false(checkpointSignatureValid(old, trail.certificatePem()!), 'the old checkpoint needs the old certificate');
  t.is((await collect(trail.entries())).filter((e) => e.action === 'audit.certificate.issue').length, 2);
  t.like(await trail.verify(), { ok: true, checked: 4, checkpoints: 2 });
});

test('11.10(e) a restart continues the tree: the root equals that of an uninterrupted run', async (t) => {
  const clockA = tickingClock();
  const location = await newLocation();
  let db = await openDb(location);
  let interrupted = await openTrail(db, { clock: clockA, signer, checkpoints: rarely });
  await recordMany(interrupted, 2, 10);
  await interrupted.close();
  await db.close();
  db = await openDb(location);
  interrupted = await openTrail(db, { clock: clockA, signer, checkpoints: rarely });
  await recordMany(interrupted, 12, 11);

  const straight = await openTrail(await openDb(await newLocation()), { clock: tickingClock(), signer, checkpoints: rarely });
  await recordMany(straight, 2, 21);

  t.deepEqual(await entryHashes(interrupted), await entryHashes(straight), 'the same entries');
  const a = await interrupted.checkpoint();
  const b = await straight.checkpoint();
  t.is(a.size, 22);
  t.is(a.root, b.root);
  t.is(a.root, treeHashOf(await entryHashes(straight)).toString('hex'));
  t.like(await interrupted.verify(), { ok: true, checked: 22, checkpoints: 1 });
});

test('11.10(e) a trail written without tree nodes is rebuilt at open, and then verifies and signs the right root', async (t) => {
  const location = await newLocation();
  let db = await openDb(location);
  const trail = await openTrail(db, { checkpoints: rarely });
  await recordMany(trail, 1, 37);
  const hashes = await entryHashes(trail);
  await db.close();
  // As an older version left it: entries only.
  const raw = new Level<string, unknown>(location, { valueEncoding: 'json' });
  const nodes = raw.sublevel<string, string>(TREE_SECTION, { valueEncoding: 'json' });
  const before = (await nodes.keys().all()).length;
  await nodes.clear();
  await raw.close();
  t.is(before, 37 - 3, 'a tree of 37 leaves has 34 stored nodes of level >= 1 (n minus the set bits of n)');

  db = await openDb(location);
  const reopened = await openTrail(db, { signer, checkpoints: rarely });
  // 37 entries and the certificate's issue: 38 leaves, 38 - 3 = 35 nodes.
  t.is((await collect(db.section<string>(TREE_SECTION).entries())).length, 35, 'every node written again, and the new entry\'s');
  const checkpoint = await reopened.checkpoint();
  t.is(checkpoint.size, 38, 'the 37 entries and the certificate issue');
  t.is(checkpoint.root, treeHashOf([...hashes, (await entryHashes(reopened))[37]!]).toString('hex'));
  t.like(await reopened.verify(), { ok: true, checked: 38, checkpoints: 1 });
});

test('11.10(e) subtreeHash agrees with rangeHash over the entries, and its inclusion proofs lead to the signed root', async (t) => {
  const db = await openDb(await newLocation());
  const trail = await openTrail(db, { signer, checkpoints: rarely });
  await recordMany(trail, 2, 20);
  const hashes = await entryHashes(trail);
  const fromEntries = async (level: number, index: number) => treeHashOf(hashes.slice(index * 2 ** level, (index + 1) * 2 ** level));
  for (let level = 0; 2 ** level <= hashes.length; level++) {
    for (let index = 0; (index + 1) * 2 ** level <= hashes.length; index++) {
      t.deepEqual(await trail.subtreeHash(level, index), await fromEntries(level, index), `subtree ${level}:${index}`);
    }
  }
  for (const [lo, hi] of [[0, 21], [3, 17], [16, 21], [5, 6]] as const) {
    t.deepEqual(await rangeHash(lo, hi, trail.subtreeHash), await rangeHash(lo, hi, fromEntries), `range ${lo}-${hi}`);
  }
  const checkpoint = await trail.checkpoint();
  for (const index of [0, 7, 16, 20]) {
    const proof = await inclusionProof(index, checkpoint.size, trail.subtreeHash);
    t.is(rootFromInclusionProof(index, checkpoint.size, leafHash(hashes[index]!), proof)?.toString('hex'), checkpoint.root, `leaf ${index}`);
  }
  const incomplete = await t.throwsAsync(trail.subtreeHash(2, 5));
  t.true(isVellumError(incomplete, 'INTERNAL'), 'leaves 20-23 are not all there yet');
});

test('11.10(e) concurrent writers never wait for a slow signer', async (t) => {
  const db = await openDb(await newLocation());
  const own = await keys.signer('slow');
  const trail = await openTrail(db, { signer: own, checkpoints: { everyEntries: 4, everySeconds: 3600 } });
  own.block();
  await recordMany(trail, 2, 3);
  await eventually(() => own.waiting === 1, 'a signing under way, blocked');
  // 16 writers, 25 entries each, while the HSM does not answer.
  const written = await Promise.all(Array.from({ length: 16 }, async (_, w) => {
    const mine: AuditEntry[] = [];
    for (let i = 0; i < 25; i++) mine.push(await trail.record(event(1000 * w + i)));
    return mine;
  }));
  t.is(written.flat().length, 400);
  t.is(trail.head().seq, 404);
  t.is(own.waiting, 1, 'the signing is still blocked: no write waited for it');
  t.is(trail.latestCheckpoint(), null);
  own.release();
  // The blocked one is stored at the size it started at; the writes made meanwhile reached the count again, so the next follows on its own.
  await eventually(() => trail.latestCheckpoint()?.size === 404, 'a checkpoint of the entries written meanwhile');
  t.deepEqual((await storedCheckpoints(db)).map((c) => c.size), [4, 404]);
  t.like(await trail.verify(), { ok: true, checked: 404, checkpoints: 2 });
});
