// Versions, restore and the trash (21 CFR 11.10(c),(e); DESIGN invariant 3):
// every write is a new immutable version, a restore is one more version with
// older content, a delete is a tombstone that the trash lists and that can be
// undone. Real SoftHSM, LevelDB and blob files.

import test from 'ava';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { isVellumError, type VaultPath } from '../../src/kernel/index.ts';
import { ACTOR, entriesSince, openVaultFixture, type VaultFixture } from '../support/vault-fixture.ts';

const STUDY = 'HIST-1';
let f: VaultFixture;
const at = (...names: string[]): VaultPath => ({ study: STUDY, names });
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const write = (path: VaultPath, body: string) => f.vault.writeFile(path, Readable.from([Buffer.from(body)]), ACTOR, { maxBytes: 1 << 20 });
const read = async (path: VaultPath) => {
  const node = await f.vault.stat(path);
  return text(await f.vault.readVersion(node.currentVersion!, STUDY));
};

test.before(async () => {
  f = await openVaultFixture();
  await f.vault.createStudy({ id: STUDY, title: 'History', bindings: [] }, ACTOR);
  await f.vault.makeFolder(at('Regulatory'), ACTOR);
});
test.after.always(async () => f?.close());

test.serial('each write is a version with size, SHA-256, creator, time and KEK version; old versions stay readable', async (t) => {
  await write(at('Regulatory', 'protocol.txt'), 'one');
  await write(at('Regulatory', 'protocol.txt'), 'two!');
  const node = await f.vault.stat(at('Regulatory', 'protocol.txt'));
  const versions = await f.vault.versions(node);
  t.deepEqual(versions.map((v) => [v.number, v.size, v.sha256, v.current]), [[1, 3, sha('one'), false], [2, 4, sha('two!'), true]]);
  for (const v of versions) {
    t.is(v.createdBy.login, 'sam');
    t.regex(v.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    t.is(v.kekVersion, 1);
    t.is(v.keyVersion, 1);
  }
  t.is(await text(await f.vault.readVersion(versions[0]!, STUDY)), 'one');
  const missing = await t.throwsAsync(f.vault.version(node, 3));
  t.true(isVellumError(missing, 'VERSION_NOT_FOUND'));
});

test.serial('restoring a version adds a new version with its content, sharing the blob, in one audited step', async (t) => {
  const node = await f.vault.stat(at('Regulatory', 'protocol.txt'));
  const before = f.audit.head().seq;
  const { version } = await f.vault.restoreVersion(node, 1, ACTOR);
  t.is(version.number, 3);
  t.deepEqual(version.origin, { kind: 'restore', fromVersion: 1 });
  t.is(await read(at('Regulatory', 'protocol.txt')), 'one');
  const versions = await f.vault.versions(await f.vault.stat(at('Regulatory', 'protocol.txt')));
  t.is(versions.length, 3, 'nothing was replaced: versions 1 and 2 are still there');
  t.is(versions[2]!.blobId, versions[0]!.blobId, 'a restore shares the encrypted content');
  t.is((await f.db.section<{ refs: number }>('blobs').get(versions[0]!.blobId))?.refs, 2);
  const entries = await entriesSince(f.audit, before);
  t.deepEqual(entries.map((e) => e.action), ['file.restore']);
  t.is((entries[0]!.oldValue as { number: number }).number, 2);
  t.is((entries[0]!.newValue as { number: number }).number, 3);
});

test.serial('a deleted file is a tombstone in the trash with who and when, its history intact, and the delete can be undone', async (t) => {
  const node = await f.vault.stat(at('Regulatory', 'protocol.txt'));
  await f.vault.remove(at('Regulatory', 'protocol.txt'), ACTOR);
  await t.throwsAsync(f.vault.stat(at('Regulatory', 'protocol.txt')), { message: /does not exist/ });
  const trash = await f.vault.trash(STUDY);
  const entry = trash.find((n) => n.id === node.id);
  t.truthy(entry);
  t.is(entry!.path, `/${STUDY}/Regulatory/protocol.txt`);
  t.is(entry!.deletedBy?.login, 'sam');
  t.true(entry!.inTrash);
  t.is((await f.vault.versions(await f.vault.node(STUDY, node.id))).length, 3, 'the history survives the delete');
  const restoreWhileDeleted = await t.throwsAsync(f.vault.restoreVersion(await f.vault.node(STUDY, node.id), 2, ACTOR));
  t.true(isVellumError(restoreWhileDeleted, 'NOT_FOUND'));

  const back = await f.vault.undelete(STUDY, node.id, ACTOR);
  t.is(back.id, node.id);
  t.false(back.inTrash);
  t.is(await read(at('Regulatory', 'protocol.txt')), 'one');
  t.false((await f.vault.trash(STUDY)).some((n) => n.id === node.id));
  const again = await t.throwsAsync(f.vault.undelete(STUDY, node.id, ACTOR));
  t.true(isVellumError(again, 'NOT_DELETED'));
});

test.serial('undo refuses a taken name (restore under another) and a deleted parent folder', async (t) => {
  await write(at('Regulatory', 'ib.txt'), 'first');
  const first = await f.vault.stat(at('Regulatory', 'ib.txt'));
  await f.vault.remove(at('Regulatory', 'ib.txt'), ACTOR);
  await write(at('Regulatory', 'ib.txt'), 'second');
  const taken = await t.throwsAsync(f.vault.undelete(STUDY, first.id, ACTOR));
  t.true(isVellumError(taken, 'NAME_TAKEN'));
  const renamed = await f.vault.undelete(STUDY, first.id, ACTOR, 'ib (restored).txt');
  t.is(renamed.path, `/${STUDY}/Regulatory/ib (restored).txt`);
  t.is(await read(at('Regulatory', 'ib (restored).txt')), 'first');
  t.is(await read(at('Regulatory', 'ib.txt')), 'second');
  // A new name is normalised like every path (NFC), so it can be found again by path.
  await f.vault.remove(at('Regulatory', 'ib (restored).txt'), ACTOR);
  const first2 = (await f.vault.trash(STUDY))[0]!;
  await f.vault.undelete(STUDY, first2.id, ACTOR, 'Zu\u0308rich.txt');
  t.is(await read(at('Regulatory', 'Z\u00fcrich.txt')), 'first');
  const bad = await t.throwsAsync(f.vault.undelete(STUDY, (await f.vault.stat(at('Regulatory', 'ib.txt'))).id, ACTOR, '../x'));
  t.true(isVellumError(bad));

  await f.vault.makeFolder(at('Old'), ACTOR);
  await write(at('Old', 'a.txt'), 'a');
  const a = await f.vault.stat(at('Old', 'a.txt'));
  await f.vault.remove(at('Old', 'a.txt'), ACTOR);
  await f.vault.remove(at('Old'), ACTOR);
  const orphaned = await t.throwsAsync(f.vault.undelete(STUDY, a.id, ACTOR));
  t.true(isVellumError(orphaned, 'PARENT_MISSING'));
  t.regex(orphaned!.message, /Old is deleted/);

  // Inside a deleted folder without being deleted itself: the message points at the folder.
  await f.vault.makeFolder(at('Box'), ACTOR);
  await write(at('Box', 'b.txt'), 'b');
  const b = await f.vault.stat(at('Box', 'b.txt'));
  await f.vault.remove(at('Box'), ACTOR);
  const inside = await t.throwsAsync(f.vault.undelete(STUDY, b.id, ACTOR));
  t.true(isVellumError(inside, 'PARENT_MISSING'));
  t.regex(inside!.message, /folder above it/);
});

test.serial('deleting a folder tombstones it alone; undoing it brings back everything inside', async (t) => {
  await f.vault.makeFolder(at('Raw'), ACTOR);
  await f.vault.makeFolder(at('Raw', 'Site 01'), ACTOR);
  await write(at('Raw', 'Site 01', 'crf.csv'), 'id,value\n1,2\n');
  const folder = await f.vault.stat(at('Raw'));
  await f.vault.remove(at('Raw'), ACTOR);
  await t.throwsAsync(f.vault.stat(at('Raw', 'Site 01', 'crf.csv')));
  const trash = await f.vault.trash(STUDY);
  t.is(trash[0]!.id, folder.id, 'newest first');
  await f.vault.undelete(STUDY, folder.id, ACTOR);
  t.is(await read(at('Raw', 'Site 01', 'crf.csv')), 'id,value\n1,2\n');
});

test.serial('a node of another study is not found by id', async (t) => {
  await f.vault.createStudy({ id: 'HIST-2', title: 'Other', bindings: [] }, ACTOR);
  const node = await f.vault.stat(at('Regulatory', 'ib.txt'));
  const e = await t.throwsAsync(f.vault.node('HIST-2', node.id));
  t.true(isVellumError(e, 'NOT_FOUND'));
});
