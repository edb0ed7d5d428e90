// Dead properties in the vault (RFC 4918 §4): kept per node in LevelDB, set
// and removed in order and all or nothing, bounded, audited with old and new
// values; they follow the node through move, delete and undelete, are copied
// by copy (within and across studies, whole trees too), and survive a
// restart. Real SoftHSM, LevelDB and blob files.

import test from 'ava';
import { Readable } from 'node:stream';
import { isVellumError, type VaultPath } from '../../src/kernel/index.ts';
import { PROPERTY_LIMITS, type PropertyOperation } from '../../src/vault/index.ts';
import { ACTOR, entriesSince, openVaultFixture, type VaultFixture } from '../support/vault-fixture.ts';

const STUDY = 'PROPS-1';
const OTHER = 'PROPS-2';
let f: VaultFixture;
const at = (...names: string[]): VaultPath => ({ study: STUDY, names });
const write = (path: VaultPath, body: string) => f.vault.writeFile(path, Readable.from([Buffer.from(body)]), ACTOR, { maxBytes: 1 << 20 });
const AUTHOR = '{http://example.com/ns}author';
const TITLE = '{http://example.com/ns}title';
const authorXml = (who: string) => `<ns0:author xmlns:ns0="http://example.com/ns">${who}</ns0:author>`;
const set = (name: string, xml: string): PropertyOperation => ({ op: 'set', name, xml });
const props = async (path: VaultPath) => {
  const node = await f.vault.stat(path);
  return Object.fromEntries((await f.vault.propertiesOf(node.study, [node.id]))[0]!);
};

test.before(async () => {
  f = await openVaultFixture();
  await f.vault.createStudy({ id: STUDY, title: 'Properties', bindings: [] }, ACTOR);
  await f.vault.createStudy({ id: OTHER, title: 'Other', bindings: [] }, ACTOR);
  await f.vault.makeFolder(at('Docs'), ACTOR);
  await write(at('Docs', 'a.txt'), 'a');
});
test.after.always(async () => f?.close());

test.serial('set and remove apply in order, and one audited entry names each property with its old and new value', async (t) => {
  const before = f.audit.head().seq;
  await f.vault.patchProperties(at('Docs', 'a.txt'), [
    set(AUTHOR, authorXml('first')), set(TITLE, '<ns0:title xmlns:ns0="http://example.com/ns">T</ns0:title>'),
    { op: 'remove', name: TITLE }, set(AUTHOR, authorXml('second')),
  ], ACTOR);
  t.deepEqual(await props(at('Docs', 'a.txt')), { [AUTHOR]: authorXml('second') });
  const entries = await entriesSince(f.audit, before);
  t.deepEqual(entries.map((e) => [e.action, e.outcome]), [['node.properties', 'success']]);
  t.is(entries[0]!.object.path, `/${STUDY}/Docs/a.txt`);
  t.deepEqual(entries[0]!.oldValue, { [AUTHOR]: null, [TITLE]: null });
  t.deepEqual(entries[0]!.newValue, { [AUTHOR]: authorXml('second'), [TITLE]: null });

  const named = await f.vault.propertiesOf(STUDY, [(await f.vault.stat(at('Docs', 'a.txt'))).id], [TITLE, AUTHOR]);
  t.deepEqual([...named[0]!.keys()], [AUTHOR], 'asking by name returns only what exists');
});

test.serial('over the limits nothing changes: PROPERTIES_TOO_LARGE, and no audit entry of a change', async (t) => {
  const before = f.audit.head().seq;
  const huge = `<ns0:big xmlns:ns0="http://example.com/ns">${'x'.repeat(PROPERTY_LIMITS.valueBytes)}</ns0:big>`;
  const refused = await t.throwsAsync(f.vault.patchProperties(at('Docs', 'a.txt'), [{ op: 'remove', name: AUTHOR }, set('{http://example.com/ns}big', huge)], ACTOR));
  t.true(isVellumError(refused, 'PROPERTIES_TOO_LARGE'));
  t.deepEqual(await props(at('Docs', 'a.txt')), { [AUTHOR]: authorXml('second') }, 'the remove before it was not applied either');

  const many = Array.from({ length: 5 }, (_, i) => set(`{http://example.com/ns}p${i}`, `<ns0:p${i} xmlns:ns0="http://example.com/ns">${'y'.repeat(60 * 1024)}</ns0:p${i}>`));
  t.true(isVellumError(await t.throwsAsync(f.vault.patchProperties(at('Docs', 'a.txt'), many, ACTOR)), 'PROPERTIES_TOO_LARGE'));
  t.is(Object.keys(await props(at('Docs', 'a.txt'))).length, 1);
  t.deepEqual(await entriesSince(f.audit, before), []);
});

test.serial('a move keeps them; a delete keeps them on the tombstone and an undelete brings them back', async (t) => {
  await f.vault.move(at('Docs', 'a.txt'), at('Docs', 'moved.txt'), ACTOR, { overwrite: false });
  t.deepEqual(await props(at('Docs', 'moved.txt')), { [AUTHOR]: authorXml('second') });
  const tombstone = await f.vault.remove(at('Docs', 'moved.txt'), ACTOR);
  t.is((await f.vault.propertiesOf(STUDY, [tombstone.id]))[0]!.get(AUTHOR), authorXml('second'));
  await f.vault.undelete(STUDY, tombstone.id, ACTOR);
  t.deepEqual(await props(at('Docs', 'moved.txt')), { [AUTHOR]: authorXml('second') });
});

test.serial('a copy copies them: a file, onto an existing file (replacing its own), a whole tree, and into another study', async (t) => {
  await f.vault.patchProperties(at('Docs'), [set(TITLE, '<ns0:title xmlns:ns0="http://example.com/ns">folder</ns0:title>')], ACTOR);
  await f.vault.copy(at('Docs', 'moved.txt'), at('Docs', 'copy.txt'), ACTOR, { overwrite: false, depth: 'infinity' });
  t.deepEqual(await props(at('Docs', 'copy.txt')), { [AUTHOR]: authorXml('second') });

  await write(at('Docs', 'target.txt'), 't');
  await f.vault.patchProperties(at('Docs', 'target.txt'), [set(TITLE, '<ns0:title xmlns:ns0="http://example.com/ns">mine</ns0:title>')], ACTOR);
  await f.vault.copy(at('Docs', 'moved.txt'), at('Docs', 'target.txt'), ACTOR, { overwrite: true, depth: 'infinity' });
  t.deepEqual(await props(at('Docs', 'target.txt')), { [AUTHOR]: authorXml('second') }, 'the destination ends with the source\'s properties only');

  await f.vault.copy(at('Docs'), at('Docs copy'), ACTOR, { overwrite: false, depth: 'infinity' });
  t.deepEqual(Object.keys(await props(at('Docs copy'))), [TITLE]);
  t.deepEqual(await props(at('Docs copy', 'moved.txt')), { [AUTHOR]: authorXml('second') });

  await f.vault.copy(at('Docs', 'moved.txt'), { study: OTHER, names: ['moved.txt'] }, ACTOR, { overwrite: false, depth: 'infinity' });
  t.deepEqual(await props({ study: OTHER, names: ['moved.txt'] }), { [AUTHOR]: authorXml('second') });
});

test.serial('another study\'s node ids get nothing, and properties survive a restart', async (t) => {
  const node = await f.vault.stat(at('Docs', 'moved.txt'));
  t.deepEqual((await f.vault.propertiesOf(OTHER, [node.id]))[0]!.size, 0);
  f = await f.reopen();
  t.deepEqual(await props(at('Docs', 'moved.txt')), { [AUTHOR]: authorXml('second') });
});

test.serial('quota figures: used bytes are the study\'s stored content, available bytes the free space of the volume', async (t) => {
  const usage = await f.vault.storageUsage(STUDY);
  // 'a' (shared by the moved file, its copies within the study) and 't': two blobs of one byte.
  t.is(usage.usedBytes, 2);
  t.true(usage.availableBytes > 0);
  t.is((await f.vault.storageUsage(OTHER)).usedBytes, 1);
});
