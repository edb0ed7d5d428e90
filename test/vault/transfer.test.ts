// MOVE and COPY in the vault: a move keeps the node and so its history; a copy
// within a study shares the encrypted blob (reference-counted); a copy across
// studies re-encrypts under the target study's key. Real SoftHSM, LevelDB and
// blob files.

import test from 'ava';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { isVellumError, type VaultPath } from '../../src/kernel/index.ts';
import { ACTOR, entriesSince, openVaultFixture, type VaultFixture } from '../support/vault-fixture.ts';

const A = 'MOVE-A';
const B = 'MOVE-B';
let f: VaultFixture;
const at = (study: string, ...names: string[]): VaultPath => ({ study, names });
const write = (path: VaultPath, body: string) => f.vault.writeFile(path, Readable.from([Buffer.from(body)]), ACTOR, { maxBytes: 1 << 20 });
const read = async (path: VaultPath) => {
  const node = await f.vault.stat(path);
  return text(await f.vault.readVersion(node.currentVersion!, path.study!));
};
const refs = async (blobId: string) => (await f.db.section<{ refs: number }>('blobs').get(blobId))?.refs;
const code = async (promise: Promise<unknown>) => {
  try {
    await promise;
    return 'resolved';
  } catch (e) {
    return isVellumError(e) ? e.code : String(e);
  }
};

test.before(async () => {
  f = await openVaultFixture();
  await f.vault.createStudy({ id: A, title: 'A', bindings: [] }, ACTOR);
  await f.vault.createStudy({ id: B, title: 'B', bindings: [] }, ACTOR);
  for (const name of ['In', 'Out']) await f.vault.makeFolder(at(A, name), ACTOR);
  await f.vault.makeFolder(at(B, 'In'), ACTOR);
});
test.after.always(async () => f?.close());

test.serial('a move keeps the node id and every version, and is one audited step with old and new path', async (t) => {
  await write(at(A, 'In', 'lab.csv'), 'v1');
  await write(at(A, 'In', 'lab.csv'), 'v2');
  const before = await f.vault.stat(at(A, 'In', 'lab.csv'));
  const seq = f.audit.head().seq;
  const { node, replaced } = await f.vault.move(at(A, 'In', 'lab.csv'), at(A, 'Out', 'lab-final.csv'), ACTOR, { overwrite: false });
  t.false(replaced);
  t.is(node.id, before.id);
  t.is(await code(f.vault.stat(at(A, 'In', 'lab.csv'))), 'NOT_FOUND');
  const moved = await f.vault.stat(at(A, 'Out', 'lab-final.csv'));
  t.is(moved.id, before.id);
  t.deepEqual((await f.vault.versions(moved)).map((v) => v.number), [1, 2]);
  const entries = await entriesSince(f.audit, seq);
  t.deepEqual(entries.map((e) => e.action), ['file.move']);
  t.deepEqual(entries[0]!.oldValue, { path: `/${A}/In/lab.csv` });
  t.like(entries[0]!.newValue, { path: `/${A}/Out/lab-final.csv`, replacedNodeId: null });
});

test.serial('a move onto an existing item needs Overwrite and puts the replaced item in the trash', async (t) => {
  await write(at(A, 'In', 'x.txt'), 'mover');
  await write(at(A, 'Out', 'x.txt'), 'victim');
  const victim = await f.vault.stat(at(A, 'Out', 'x.txt'));
  t.is(await code(f.vault.move(at(A, 'In', 'x.txt'), at(A, 'Out', 'x.txt'), ACTOR, { overwrite: false })), 'DESTINATION_EXISTS');
  t.is(await read(at(A, 'Out', 'x.txt')), 'victim', 'nothing changed');
  const { replaced } = await f.vault.move(at(A, 'In', 'x.txt'), at(A, 'Out', 'x.txt'), ACTOR, { overwrite: true });
  t.true(replaced);
  t.is(await read(at(A, 'Out', 'x.txt')), 'mover');
  const trashed = (await f.vault.trash(A)).find((n) => n.id === victim.id);
  t.truthy(trashed, 'the replaced file can be recovered from the trash');
});

test.serial('a move of a folder carries its contents; moves into itself, of a root, and across studies are refused', async (t) => {
  await f.vault.makeFolder(at(A, 'In', 'Site'), ACTOR);
  await write(at(A, 'In', 'Site', 'f.txt'), 'inside');
  await f.vault.move(at(A, 'In', 'Site'), at(A, 'Out', 'Site 2'), ACTOR, { overwrite: false });
  t.is(await read(at(A, 'Out', 'Site 2', 'f.txt')), 'inside');
  t.is(await code(f.vault.move(at(A, 'Out'), at(A, 'Out', 'Site 2', 'Out'), ACTOR, { overwrite: false })), 'FORBIDDEN');
  t.is(await code(f.vault.move(at(A, 'Out'), at(A, 'Out'), ACTOR, { overwrite: true })), 'FORBIDDEN');
  t.is(await code(f.vault.move(at(A), at(A, 'Root'), ACTOR, { overwrite: false })), 'FORBIDDEN');
  t.is(await code(f.vault.move(at(A, 'Out', 'x.txt'), at(B, 'In', 'x.txt'), ACTOR, { overwrite: false })), 'FORBIDDEN');
  t.is(await code(f.vault.move(at(A, 'Out', 'x.txt'), at(A, 'Nowhere', 'x.txt'), ACTOR, { overwrite: false })), 'PARENT_MISSING');
  t.is(await code(f.vault.move(at(A, 'Out', 'missing.txt'), at(A, 'In', 'y.txt'), ACTOR, { overwrite: false })), 'NOT_FOUND');
});

test.serial('a copy within a study is a new file whose version shares the blob (refs counted)', async (t) => {
  const source = await f.vault.stat(at(A, 'Out', 'lab-final.csv'));
  const blobId = source.currentVersion!.blobId;
  const { node, replaced } = await f.vault.copy(at(A, 'Out', 'lab-final.csv'), at(A, 'In', 'lab-copy.csv'), ACTOR, { overwrite: false, depth: 'infinity' });
  t.false(replaced);
  t.not(node.id, source.id);
  const copy = await f.vault.stat(at(A, 'In', 'lab-copy.csv'));
  t.is(copy.versionCount, 1, 'a copy starts its own history');
  t.is(copy.currentVersion!.blobId, blobId);
  t.like(copy.currentVersion!.origin, { kind: 'copy', fromStudy: A, fromNodeId: source.id });
  t.is(await refs(blobId), 2);
  t.is(await read(at(A, 'In', 'lab-copy.csv')), 'v2');
});

test.serial('a copy onto an existing file is a new version of it (its history continues)', async (t) => {
  await write(at(A, 'In', 'target.txt'), 'old');
  const target = await f.vault.stat(at(A, 'In', 'target.txt'));
  t.is(await code(f.vault.copy(at(A, 'Out', 'x.txt'), at(A, 'In', 'target.txt'), ACTOR, { overwrite: false, depth: 'infinity' })), 'DESTINATION_EXISTS');
  const { replaced } = await f.vault.copy(at(A, 'Out', 'x.txt'), at(A, 'In', 'target.txt'), ACTOR, { overwrite: true, depth: 'infinity' });
  t.true(replaced);
  const after = await f.vault.stat(at(A, 'In', 'target.txt'));
  t.is(after.id, target.id);
  t.is(after.versionCount, 2);
  t.is(await read(at(A, 'In', 'target.txt')), 'mover');
});

test.serial('a copy across studies re-encrypts under the target study\'s key and checks the digest', async (t) => {
  const source = await f.vault.stat(at(A, 'Out', 'lab-final.csv'));
  await f.vault.copy(at(A, 'Out', 'lab-final.csv'), at(B, 'In', 'lab.csv'), ACTOR, { overwrite: false, depth: 'infinity' });
  const copy = await f.vault.stat(at(B, 'In', 'lab.csv'));
  t.not(copy.currentVersion!.blobId, source.currentVersion!.blobId);
  t.is(copy.currentVersion!.sha256, source.currentVersion!.sha256);
  t.is(await read(at(B, 'In', 'lab.csv')), 'v2');
  const blobId = copy.currentVersion!.blobId;
  const blob = await readFile(join(f.dir, 'data', 'blobs', blobId.slice(0, 2), blobId));
  t.true(blob.includes(Buffer.from(`"study":"${B}"`)), 'the new blob belongs to the target study');
  t.is(await refs(source.currentVersion!.blobId), 2, 'the source blob is not shared with the other study');
});

test.serial('a folder copy: depth infinity copies the tree, depth 0 the folder alone; copying into itself is refused', async (t) => {
  await f.vault.copy(at(A, 'Out'), at(A, 'Out copy'), ACTOR, { overwrite: false, depth: 'infinity' });
  t.is(await read(at(A, 'Out copy', 'Site 2', 'f.txt')), 'inside');
  t.deepEqual((await f.vault.list(at(A, 'Out copy'))).map((n) => n.name).sort(), (await f.vault.list(at(A, 'Out'))).map((n) => n.name).sort());
  await f.vault.copy(at(A, 'Out'), at(A, 'Empty copy'), ACTOR, { overwrite: false, depth: 0 });
  t.deepEqual(await f.vault.list(at(A, 'Empty copy')), []);
  t.is(await code(f.vault.copy(at(A, 'Out'), at(A, 'Out', 'Inner'), ACTOR, { overwrite: false, depth: 'infinity' })), 'FORBIDDEN');
  await f.vault.copy(at(A, 'Out'), at(B, 'Out'), ACTOR, { overwrite: false, depth: 'infinity' });
  t.is(await read(at(B, 'Out', 'Site 2', 'f.txt')), 'inside');
});
