// Tampering with the audit store out of band (issue 6, 21 CFR 11.10(a) and
// 11.10(e)): someone with file access opens the LevelDB with `level` directly
// and edits, deletes or reorders entries, cuts off the tail, edits a signed
// checkpoint or a stored tree node, or edits an entry and recomputes every
// later hash and the whole tree. verify() must flag each, at the right seq.

import test from 'ava';
import { Level } from 'level';
import {
  CHECKPOINT_SECTION, entryHash, openAuditTrail, TREE_SECTION, treeKey,
  type AuditEntry, type ChainReport, type StoredCheckpoint,
} from '../../src/audit/index.ts';
import { leafHash, MerkleFrontier } from '../../src/audit/merkle.ts';
import { tempStores, testKeys, type TestSigner } from './support.ts';

const { newLocation, openDb, cleanup } = tempStores('vellum-tamper-');
const keys = testKeys('vellum-tamper-keys-');
let signer: TestSigner;
test.before(async () => {
  signer = await keys.signer();
});
test.after.always(() => Promise.all([cleanup(), keys.cleanup()]));

const key = (seq: number) => seq.toString().padStart(16, '0');

/**
 * A closed store of 40 entries (entry 1 is the certificate's issue) with
 * signed checkpoints at 20 and 40.
 */
async function signedStore(): Promise<string> {
  const location = await newLocation();
  const db = await openDb(location);
  const trail = await openAuditTrail(db, { signer, checkpoints: { everyEntries: 1_000_000, everySeconds: 3600 } });
  for (let n = 2; n <= 40; n++) {
    await trail.record({ action: 'file.read', outcome: 'success', protocol: 'webdav', object: { study: 'S-1', path: `/S-1/f-${n}.pdf` } });
    if (n % 20 === 0) await trail.checkpoint();
  }
  await trail.close();
  await db.close();
  return location;
}

/** A section of the LevelDB opened behind the application's back (JSON values). */
interface RawSection {
  get(key: string): Promise<unknown>;
  put(key: string, value: unknown): Promise<void>;
  del(key: string): Promise<void>;
  batch(ops: { type: 'put'; key: string; value: unknown }[]): Promise<void>;
}

interface RawStore {
  readonly audit: RawSection;
  readonly tree: RawSection;
  readonly checkpoints: RawSection;
}

async function tamper(location: string, change: (raw: RawStore) => Promise<void>): Promise<void> {
  const level = new Level<string, unknown>(location, { valueEncoding: 'json' });
  await level.open();
  try {
    const sub = (name: string) => level.sublevel<string, unknown>(name, { valueEncoding: 'json' });
    await change({ audit: sub('audit'), tree: sub(TREE_SECTION), checkpoints: sub(CHECKPOINT_SECTION) });
  } finally {
    await level.close();
  }
}

async function verifyAt(location: string): Promise<ChainReport> {
  const db = await openDb(location);
  try {
    const trail = await openAuditTrail(db, { signer });
    const report = await trail.verify();
    await trail.close();
    return report;
  } finally {
    await db.close();
  }
}

test('11.10(a) an untouched signed store verifies, both checkpoints included', async (t) => {
  const location = await signedStore();
  const progress: [number, number][] = [];
  const db = await openDb(location);
  const trail = await openAuditTrail(db, { signer });
  t.deepEqual(await trail.verify({ onProgress: (checked, total) => progress.push([checked, total]) }), { ok: true, checked: 40, checkpoints: 2 });
  t.deepEqual(progress.at(-1), [40, 40], 'the last progress report is the whole store');
  await trail.close();
  await db.close();
});

test('11.10(a) one entry\'s value edited: flagged at that entry', async (t) => {
  const location = await signedStore();
  await tamper(location, async ({ audit }) => {
    const entry = (await audit.get(key(17))) as AuditEntry;
    await audit.put(key(17), { ...entry, outcome: 'denied' });
  });
  const report = await verifyAt(location);
  t.false(report.ok);
  t.is(report.checked, 16);
  t.deepEqual(report.firstBroken, { seq: 17, problem: 'entry 17: content does not match its hash' });
});

test('11.10(a) one entry deleted: flagged as missing', async (t) => {
  const location = await signedStore();
  await tamper(location, ({ audit }) => audit.del(key(9)));
  const report = await verifyAt(location);
  t.is(report.checked, 8);
  t.deepEqual(report.firstBroken, { seq: 9, problem: 'entry 9: missing (the next entry stored is 10)' });
});

test('11.10(a) two entries swapped: flagged at the first of them', async (t) => {
  const location = await signedStore();
  await tamper(location, async ({ audit }) => {
    const [a, b] = [await audit.get(key(25)), await audit.get(key(26))];
    await audit.batch([{ type: 'put', key: key(25), value: b }, { type: 'put', key: key(26), value: a }]);
  });
  const report = await verifyAt(location);
  t.is(report.checked, 24);
  t.is(report.checkpoints, 1, 'checkpoint 20 still verifies');
  t.deepEqual(report.firstBroken, { seq: 25, problem: 'entry 25: stored in its place is an entry numbered 26' });
});

test('11.10(a) the last entries deleted: the checkpoint that covers them says so', async (t) => {
  const location = await signedStore();
  await tamper(location, async ({ audit }) => {
    for (const seq of [37, 38, 39, 40]) await audit.del(key(seq));
  });
  const report = await verifyAt(location);
  t.false(report.ok);
  t.is(report.checked, 36, 'every entry left is intact');
  t.is(report.checkpoints, 1);
  t.deepEqual(report.firstBroken, { seq: 37, problem: 'entries after 36 are missing: checkpoint 40 covers them' });
});

test('11.10(a) a stored checkpoint\'s root changed: its signature no longer verifies', async (t) => {
  const location = await signedStore();
  await tamper(location, async ({ checkpoints }) => {
    const checkpoint = (await checkpoints.get(key(20))) as StoredCheckpoint;
    await checkpoints.put(key(20), { ...checkpoint, root: 'ab'.repeat(32) });
  });
  const report = await verifyAt(location);
  t.false(report.ok);
  t.is(report.checked, 20);
  t.is(report.checkpoints, 0);
  t.is(report.firstBroken?.seq, 20);
  t.regex(report.firstBroken?.problem ?? '', /^checkpoint 20: its signature does not verify/);
});

test('11.10(a) a stored tree node replaced: flagged with the entries it covers', async (t) => {
  const location = await signedStore();
  await tamper(location, ({ tree }) => tree.put(treeKey(2, 3), 'cd'.repeat(32)));
  const report = await verifyAt(location);
  t.false(report.ok);
  t.is(report.firstBroken?.seq, 13);
  t.regex(report.firstBroken?.problem ?? '', /^entries 13-16 do not match the tree node stored when they were written \(02:0000000000000003\)/);
});

test('11.10(a) an entry edited and every later hash and the whole tree recomputed: the chain passes, the signed checkpoint does not', async (t) => {
  const location = await signedStore();
  await tamper(location, async ({ audit, tree }) => {
    // The strongest intruder without the HSM key: rewrite entry 27, then re-chain 27..40 and rebuild every tree node.
    const frontier = MerkleFrontier.empty();
    let prevHash = '';
    for (let seq = 1; seq <= 40; seq++) {
      let entry = (await audit.get(key(seq))) as AuditEntry;
      if (seq === 27) entry = { ...entry, object: { ...entry.object, path: '/S-1/innocent.pdf' } };
      if (seq >= 27) {
        const relinked = { ...entry, prevHash };
        entry = { ...relinked, hash: entryHash(relinked) };
        await audit.put(key(seq), entry);
      }
      prevHash = entry.hash;
      for (const node of frontier.append(leafHash(entry.hash))) await tree.put(treeKey(node.level, node.index), node.hash.toString('hex'));
    }
  });
  const report = await verifyAt(location);
  t.false(report.ok);
  t.is(report.checked, 40, 'every hash, link and tree node is consistent');
  t.is(report.checkpoints, 1, 'checkpoint 20, before the edit, verifies');
  t.is(report.firstBroken?.seq, 40);
  t.regex(report.firstBroken?.problem ?? '', /^checkpoint 40: the Merkle root of entries 1-40 is not the one signed/);
});

test('11.10(a) an entry edited and only the later hashes recomputed: the tree node stored over it does not match', async (t) => {
  const location = await signedStore();
  await tamper(location, async ({ audit }) => {
    let prevHash = ((await audit.get(key(28))) as AuditEntry).hash;
    for (let seq = 29; seq <= 40; seq++) {
      let entry = (await audit.get(key(seq))) as AuditEntry;
      if (seq === 29) entry = { ...entry, outcome: 'denied' };
      const relinked = { ...entry, prevHash };
      entry = { ...relinked, hash: entryHash(relinked) };
      await audit.put(key(seq), entry);
      prevHash = entry.hash;
    }
  });
  const report = await verifyAt(location);
  t.false(report.ok);
  t.is(report.checked, 28);
  t.is(report.firstBroken?.seq, 29);
  t.regex(report.firstBroken?.problem ?? '', /^entries 29-30 do not match the tree node/);
});

test('11.10(a) in a longer trail (tree nodes compared in several batches) the first of two problems is reported: a node early on, not an entry edited later', async (t) => {
  const location = await newLocation();
  const db = await openDb(location);
  const trail = await openAuditTrail(db);
  for (let chunk = 0; chunk < 10; chunk++) {
    await Promise.all(Array.from({ length: 600 }, (_, i) => trail.record({ action: 'file.read', outcome: 'success', object: { path: `/S-1/${chunk}-${i}` } })));
  }
  await db.close();
  let original: unknown;
  await tamper(location, async ({ audit, tree }) => {
    const late = (await audit.get(key(5900))) as AuditEntry;
    await audit.put(key(5900), { ...late, outcome: 'failed' });
    original = await tree.get(treeKey(1, 2400));
    await tree.put(treeKey(1, 2400), 'ef'.repeat(32));
  });
  const both = await verifyAt(location);
  t.is(both.firstBroken?.seq, 4801);
  t.regex(both.firstBroken?.problem ?? '', /^entries 4801-4802 do not match the tree node/);
  t.is(both.checked, 4800);

  // The node put back as it was: what is left is the edited entry.
  await tamper(location, ({ tree }) => tree.put(treeKey(1, 2400), original));
  const one = await verifyAt(location);
  t.deepEqual(one, { ok: false, checked: 5899, checkpoints: 0, firstBroken: { seq: 5900, problem: 'entry 5900: content does not match its hash' } });
});
