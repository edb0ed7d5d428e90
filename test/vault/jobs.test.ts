// The vault's background work on real parts (SoftHSM, LevelDB, blob files):
// KEK rotation re-wraps every older data key while reads and writes go on and
// continues after a restart; scrub finds every kind of damage and names the
// versions it hits; start-up collection removes what an interrupted write left.

import test from 'ava';
import { createHash } from 'node:crypto';
import { open, readdir, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import type { VaultPath } from '../../src/kernel/index.ts';
import type { Vault } from '../../src/vault/index.ts';
import { ACTOR, entriesSince, openVaultFixture, type VaultFixture } from '../support/vault-fixture.ts';

const STUDY = 'JOBS-1';
let f: VaultFixture;
const at = (...names: string[]): VaultPath => ({ study: STUDY, names });
const content = (i: number, size: number) => {
  const out = Buffer.alloc(size);
  for (let at = 0; at < size; at += 32) createHash('sha256').update(`${i}:${at}`).digest().copy(out, at);
  return out;
};
const write = (vault: Vault, path: VaultPath, body: Buffer) => vault.writeFile(path, Readable.from([body]), ACTOR, { maxBytes: 1 << 30 });
const read = async (vault: Vault, path: VaultPath) => {
  const node = await vault.stat(path);
  return buffer(await vault.readVersion(node.currentVersion!, STUDY));
};
const blobPath = (blobId: string) => join(f.dir, 'data', 'blobs', blobId.slice(0, 2), blobId);

async function until<T>(probe: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test.before(async () => {
  f = await openVaultFixture();
  await f.vault.createStudy({ id: STUDY, title: 'Jobs', bindings: [] }, ACTOR);
  await f.vault.makeFolder(at('Data'), ACTOR);
});
test.after.always(async () => f?.close());

test.serial('rotation: new writes use the new KEK at once, every older data key is re-wrapped while reads and writes go on, nothing is lost', async (t) => {
  const expected = new Map<string, Buffer>();
  for (let i = 0; i < 40; i++) {
    const body = content(i, [0, 1, 4096, 65536, 65537, 200_000][i % 6]!);
    await write(f.vault, at('Data', `f${i}.bin`), body);
    expected.set(`f${i}.bin`, body);
  }
  const seq = f.audit.head().seq;
  const started = await f.vault.rotateStudyKey(STUDY, ACTOR);
  t.like(started, { study: STUDY, fromVersion: 1, toVersion: 2, state: 'running', blobsTotal: 40 });
  await t.throwsAsync(f.vault.rotateStudyKey(STUDY, ACTOR), { message: /under way/ });

  // Readers and writers race the job until it is done.
  let round = 0;
  let status = await f.vault.keyStatus(STUDY);
  while (status.rotation?.state === 'running' || round < 3) {
    const name = `new${round}.bin`;
    const body = content(1000 + round, 70_000);
    const written = await write(f.vault, at('Data', name), body);
    t.is(written.version.kekVersion, 2, 'a write after the rotation started uses the new KEK');
    expected.set(name, body);
    for (const [file, bytes] of expected) t.true((await read(f.vault, at('Data', file))).equals(bytes), `${file} reads back during rotation`);
    round++;
    status = await f.vault.keyStatus(STUDY);
  }
  t.is(status.rotation?.state, 'done');
  t.deepEqual(status.versions, [1, 2]);
  t.is(status.current, 2);
  t.deepEqual(Object.keys(status.blobsByVersion), ['2'], 'every blob is wrapped under v2 now');
  for (const [file, bytes] of expected) t.true((await read(f.vault, at('Data', file))).equals(bytes));
  for (const v of await f.vault.versions(await f.vault.stat(at('Data', 'f3.bin')))) t.is(v.keyVersion, 2);

  const actions = (await entriesSince(f.audit, seq)).map((e) => e.action).filter((a) => a.startsWith('key.'));
  t.is(actions[0], 'key.rotate');
  t.true(actions.includes('key.rewrap'));
  t.is(actions[actions.length - 1], 'key.rotate.complete');
});

test.serial('rotation stopped by a shutdown continues after the restart', async (t) => {
  for (let i = 0; i < 120; i++) await write(f.vault, at('Data', `r${i}.bin`), content(5000 + i, 100));
  const started = await f.vault.rotateStudyKey(STUDY, ACTOR);
  // stopJobs (part of reopen) sets the stop flag before the first batch: the job stops with nothing done.
  f = await f.reopen();
  const interrupted = await f.vault.keyStatus(STUDY);
  t.is(interrupted.rotation?.state, 'running');
  t.true(interrupted.blobsByVersion[String(started.fromVersion)]! > 0, 'some blobs were still on the old KEK at the stop');
  await f.vault.resumeRotations();
  const done = await until(() => f.vault.keyStatus(STUDY), (s) => s.rotation?.state !== 'running');
  t.is(done.rotation?.state, 'done');
  t.deepEqual(Object.keys(done.blobsByVersion), [String(started.toVersion)]);
  t.true((await read(f.vault, at('Data', 'r7.bin'))).equals(content(5007, 100)));
});

test.serial('rotation: an upload that began under the old KEK and ends after the job is re-wrapped before it is committed', async (t) => {
  const body = new PassThrough();
  const uploading = f.vault.writeFile(at('Data', 'slow.bin'), body, ACTOR, { maxBytes: 1 << 30 });
  body.write(content(77, 100_000));
  await new Promise((resolve) => setTimeout(resolve, 100)); // the data key (old KEK) is made when the upload starts
  const started = await f.vault.rotateStudyKey(STUDY, ACTOR);
  await until(() => f.vault.keyStatus(STUDY), (s) => s.rotation?.state !== 'running');
  body.end(content(78, 100_000));
  const { version } = await uploading;
  t.is(version.kekVersion, started.toVersion);
  const status = await f.vault.keyStatus(STUDY);
  t.deepEqual(Object.keys(status.blobsByVersion), [String(started.toVersion)], 'no blob is left on a retired KEK');
  t.is(await f.blobs.keyVersion({ blobId: version.blobId, study: STUDY }), started.toVersion);
  t.true((await read(f.vault, at('Data', 'slow.bin'))).equals(Buffer.concat([content(77, 100_000), content(78, 100_000)])));
});

test.serial('scrub: a clean store verifies; every byte counted', async (t) => {
  const seq = f.audit.head().seq;
  const started = await f.vault.startScrub('request', ACTOR);
  t.is(started.state, 'running');
  const done = await until(async () => f.vault.scrubStatus()!, (s) => s.state !== 'running');
  t.is(done.state, 'done');
  t.deepEqual(done.damaged, []);
  t.is(done.blobsDone, done.blobsTotal);
  t.is(done.bytesDone, done.bytesTotal);
  const actions = (await entriesSince(f.audit, seq)).map((e) => [e.action, e.outcome]);
  t.deepEqual(actions, [['storage.scrub', 'success'], ['storage.scrub.complete', 'success']]);
});

test.serial('scrub: a flipped byte, a truncated blob, a missing blob and a shredded key are each reported with the versions they hit, and raised as integrity alerts', async (t) => {
  const damaged = new Map<string, string>();
  for (const name of ['flip.bin', 'cut.bin', 'gone.bin', 'shred.bin']) {
    const { version } = await write(f.vault, at('Data', name), content(name.length, 150_000));
    damaged.set(version.blobId, name);
  }
  const [flip, cut, gone, shred] = [...damaged.keys()] as [string, string, string, string];
  const handle = await open(blobPath(flip), 'r+');
  const { size } = await handle.stat();
  const byte = Buffer.alloc(1);
  await handle.read(byte, 0, 1, size - 100);
  byte[0]! ^= 0x01;
  await handle.write(byte, 0, 1, size - 100);
  await handle.close();
  await truncate(blobPath(cut), (await stat(blobPath(cut))).size - 1);
  await writeFile(blobPath(gone), '');
  await f.blobs.shred({ blobId: shred, study: STUDY });

  const seq = f.audit.head().seq;
  await f.vault.startScrub('request', ACTOR);
  const done = await until(async () => f.vault.scrubStatus()!, (s) => s.state !== 'running');
  t.is(done.state, 'done');
  const found = new Map(done.damaged.map((d) => [d.blobId, d]));
  t.deepEqual([...found.keys()].sort(), [...damaged.keys()].sort(), 'exactly the damaged blobs, nothing else');
  for (const [blobId, name] of damaged) {
    t.deepEqual(found.get(blobId)!.versions.map((v) => [v.path, v.number]), [[`/${STUDY}/Data/${name}`, 1]]);
  }
  t.is(found.get(shred)!.code, 'CONTENT_SHREDDED');
  t.is(found.get(flip)!.code, 'INTEGRITY_FAILURE');
  t.regex(found.get(flip)!.detail, /segment/i);
  const entries = await entriesSince(f.audit, seq);
  const alerts = entries.filter((e) => e.action === 'integrity.alert');
  t.is(alerts.length, 4);
  t.true(alerts.every((e) => e.outcome === 'failed'));
  t.like(entries[entries.length - 1], { action: 'storage.scrub.complete', outcome: 'failed' });
  t.true(f.logs.some((line) => line.includes('INTEGRITY ALERT') && line.includes('flip.bin')));
});

test.serial('rotation passes over a shredded and a damaged blob (each audited), re-wraps the rest, and says so at the end', async (t) => {
  const seq = f.audit.head().seq;
  const started = await f.vault.rotateStudyKey(STUDY, ACTOR);
  const done = await until(() => f.vault.keyStatus(STUDY), (s) => s.rotation?.state !== 'running');
  t.is(done.rotation?.state, 'done');
  t.is(done.rotation?.blobsSkipped, 2);
  t.deepEqual(done.rotation?.skipped?.map((s) => s.code).sort(), ['CONTENT_SHREDDED', 'INTEGRITY_FAILURE']);
  t.is(done.blobsByVersion[String(started.fromVersion)], 2, 'only the two skipped blobs stay on the old KEK');
  t.true((await read(f.vault, at('Data', 'r7.bin'))).equals(content(5007, 100)));
  const entries = await entriesSince(f.audit, seq);
  t.true(entries.some((e) => e.action === 'integrity.alert' && e.outcome === 'failed'));
  t.true(entries.some((e) => e.action === 'key.rewrap' && e.outcome === 'failed' && /CONTENT_SHREDDED/.test(e.detail ?? '')));
  t.like(entries[entries.length - 1], { action: 'key.rotate.complete', outcome: 'failed' });
});

test.serial('start-up collection removes temporary files and unreferenced blobs, audits it, and leaves every version alone', async (t) => {
  await writeFile(join(f.dir, 'data', 'tmp', 'crashed-upload.part'), 'half an upload');
  const orphan = await f.blobs.write(STUDY, Readable.from([Buffer.from('never committed')]), 1000);
  const seq = f.audit.head().seq;
  const report = await f.vault.collectOrphans();
  t.deepEqual(report.temporary, ['crashed-upload.part']);
  t.deepEqual(report.blobs, [orphan.blobId]);
  t.deepEqual(await readdir(join(f.dir, 'data', 'tmp')), []);
  await t.throwsAsync(stat(blobPath(orphan.blobId)));
  const entries = await entriesSince(f.audit, seq);
  t.is(entries.length, 1);
  t.like(entries[0], { action: 'storage.orphans.collect', outcome: 'success', newValue: { temporaryFiles: 1, blobs: 1, blobIds: [orphan.blobId] } });
  t.true((await read(f.vault, at('Data', 'r7.bin'))).equals(content(5007, 100)), 'referenced blobs stay');
  t.deepEqual(await f.vault.collectOrphans(), { temporary: [], blobs: [] }, 'a second pass finds nothing');
  t.is(f.audit.head().seq, entries[0]!.seq, 'and audits nothing');
});
