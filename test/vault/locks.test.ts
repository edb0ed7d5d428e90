// WebDAV locks in the vault (RFC 4918 §6-7) on real SoftHSM, LevelDB and blob
// files: every change checks, under the study lock, each lock that guards
// what it touches; a token counts only for the person who created the lock;
// locks are stored with their audit entry, survive a reopen, stop counting
// when they expire, and go away with a DELETE or MOVE of their root.

import test from 'ava';
import { Readable } from 'node:stream';
import { isVellumError, type Principal, type VaultPath } from '../../src/kernel/index.ts';
import type { Actor, LockRecord, LockRequest } from '../../src/vault/index.ts';
import { ACTOR, entriesSince, openVaultFixture, type VaultFixture } from '../support/vault-fixture.ts';

const S = 'LOCKS-1';
let f: VaultFixture;
const PAT: Principal = { id: 'uuid-pat', login: 'pat', dn: 'uid=pat,ou=people,dc=vellum,dc=test', displayName: 'Pat Punctuation', groups: [] };
const at = (...names: string[]): VaultPath => ({ study: S, names });
const sam = (...tokens: string[]): Actor => ({ ...ACTOR, lockTokens: tokens });
const pat = (...tokens: string[]): Actor => ({ ...ACTOR, principal: PAT, lockTokens: tokens });
const write = (path: VaultPath, actor: Actor, body = 'data') => f.vault.writeFile(path, Readable.from([Buffer.from(body)]), actor, { maxBytes: 1 << 20 });
const exclusive: LockRequest = { scope: 'exclusive', depth: 0, owner: null };
const shared: LockRequest = { scope: 'shared', depth: 0, owner: null };
const code = async (promise: Promise<unknown>) => {
  try {
    await promise;
    return 'resolved';
  } catch (e) {
    return isVellumError(e) ? e.code : String(e);
  }
};
const stored = (token: string) => f.db.section<LockRecord>('locks').get(token);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test.before(async () => {
  f = await openVaultFixture();
  await f.vault.createStudy({ id: S, title: 'Locks', bindings: [] }, ACTOR);
});
test.after.always(async () => f?.close());

test.serial('a lock is stored in the same audited batch; its token is an opaquelocktoken UUID and unique', async (t) => {
  await write(at('a.txt'), sam());
  const seq = f.audit.head().seq;
  const lock = await f.vault.lock(at('a.txt'), { ...exclusive, owner: '<D:owner xmlns:D="DAV:">sam</D:owner>' }, sam());
  t.regex(lock.token, /^opaquelocktoken:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.like(await stored(lock.token), { study: S, root: ['a.txt'], scope: 'exclusive', depth: 0, owner: '<D:owner xmlns:D="DAV:">sam</D:owner>', createdBy: { id: ACTOR.principal.id } });
  const entries = await entriesSince(f.audit, seq);
  t.deepEqual(entries.map((entry) => entry.action), ['node.lock']);
  t.like(entries[0]!.newValue, { token: lock.token, path: `/${S}/a.txt`, scope: 'exclusive', depth: 0 });
  t.deepEqual((await f.vault.locksOn(at('a.txt'))).map((found) => found.token), [lock.token]);
  const other = await f.vault.lock(at('a.txt'), shared, sam()).catch(() => null);
  t.is(other, null, 'an exclusive lock admits no second lock');
  await f.vault.unlock(at('a.txt'), lock.token, sam(lock.token));
  const tokens = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const again = await f.vault.lock(at('a.txt'), exclusive, sam());
    tokens.add(again.token);
    await f.vault.unlock(at('a.txt'), again.token, sam());
  }
  t.is(tokens.size, 20);
});

test.serial('an exclusive lock yields only to its token, sent by the person who created it', async (t) => {
  await write(at('b.txt'), sam());
  const { token } = await f.vault.lock(at('b.txt'), exclusive, sam());
  t.is(await code(write(at('b.txt'), sam())), 'LOCKED', 'the same person without the token');
  t.is(await code(write(at('b.txt'), sam('opaquelocktoken:other'))), 'LOCKED', 'a wrong token');
  t.is(await code(write(at('b.txt'), pat(token))), 'LOCKED', 'someone else with the token');
  t.is(await code(f.vault.remove(at('b.txt'), pat(token))), 'LOCKED');
  t.is(await code(f.vault.move(at('b.txt'), at('b2.txt'), sam(), { overwrite: false })), 'LOCKED');
  t.is(await code(f.vault.copy(at('a.txt'), at('b.txt'), pat(), { overwrite: true, depth: 0 })), 'LOCKED', 'COPY onto it');
  t.is(await code(f.vault.lock(at('b.txt'), exclusive, pat())), 'LOCK_CONFLICT');
  t.is((await f.vault.stat(at('b.txt'))).versionCount, 1, 'nothing changed');
  t.is((await write(at('b.txt'), sam(token), 'v2')).version.number, 2);
  // A copy of a locked file is not locked.
  await f.vault.copy(at('b.txt'), at('b-copy.txt'), pat(), { overwrite: false, depth: 0 });
  t.deepEqual(await f.vault.locksOn(at('b-copy.txt')), []);
  await f.vault.unlock(at('b.txt'), token, sam());
  t.is((await write(at('b.txt'), pat(), 'v3')).version.number, 3);
});

test.serial('shared locks coexist; an exclusive one conflicts with them, and they with it', async (t) => {
  await write(at('c.txt'), sam());
  const first = await f.vault.lock(at('c.txt'), shared, sam());
  const second = await f.vault.lock(at('c.txt'), shared, pat());
  t.is(await code(f.vault.lock(at('c.txt'), exclusive, sam())), 'LOCK_CONFLICT');
  t.is(await code(write(at('c.txt'), sam(first.token))), 'LOCKED', 'a change needs the tokens of every lock on it');
  await f.vault.unlock(at('c.txt'), second.token, pat());
  t.is((await write(at('c.txt'), sam(first.token))).version.number, 2);
  await f.vault.unlock(at('c.txt'), first.token, sam());
});

test.serial('a depth-infinity lock on a folder covers everything below it, existing or new', async (t) => {
  await f.vault.makeFolder(at('F'), sam());
  await f.vault.makeFolder(at('F', 'sub'), sam());
  await write(at('F', 'sub', 'in.txt'), sam());
  const { token } = await f.vault.lock(at('F'), { ...exclusive, depth: 'infinity' }, sam());
  t.deepEqual((await f.vault.locksOn(at('F', 'sub', 'in.txt'))).map((lock) => lock.token), [token]);
  t.is(await code(write(at('F', 'sub', 'in.txt'), pat())), 'LOCKED');
  t.is(await code(write(at('F', 'sub', 'new.txt'), sam())), 'LOCKED');
  t.is(await code(f.vault.makeFolder(at('F', 'new'), sam())), 'LOCKED');
  t.is(await code(f.vault.move(at('b.txt'), at('F', 'b.txt'), sam(), { overwrite: false })), 'LOCKED', 'moving into it');
  t.is(await code(f.vault.lock(at('F', 'sub', 'in.txt'), shared, pat())), 'LOCK_CONFLICT');
  t.is((await write(at('F', 'sub', 'new.txt'), sam(token))).version.number, 1);
  await f.vault.unlock(at('F', 'sub', 'in.txt'), token, sam());
  t.deepEqual(await f.vault.locksOn(at('F')), [], 'UNLOCK through a member of the locked folder');
});

test.serial('a depth-infinity lock on a folder conflicts with an exclusive lock below it', async (t) => {
  const below = await f.vault.lock(at('F', 'sub', 'in.txt'), exclusive, pat());
  t.is(await code(f.vault.lock(at('F'), { ...shared, depth: 'infinity' }, sam())), 'LOCK_CONFLICT');
  t.truthy(await f.vault.lock(at('F'), { ...shared, depth: 0 }, sam()).then((lock) => f.vault.unlock(at('F'), lock.token, sam())));
  await f.vault.unlock(at('F', 'sub', 'in.txt'), below.token, pat());
});

test.serial('a depth-0 lock on a folder guards its membership, not its members', async (t) => {
  const { token } = await f.vault.lock(at('F', 'sub'), exclusive, sam());
  t.is((await write(at('F', 'sub', 'in.txt'), pat())).created, false, 'an existing member changes freely');
  t.is(await code(write(at('F', 'sub', 'added.txt'), pat())), 'LOCKED');
  t.is(await code(f.vault.remove(at('F', 'sub', 'in.txt'), pat())), 'LOCKED');
  t.is(await code(f.vault.move(at('F', 'sub', 'in.txt'), at('F', 'in.txt'), pat(), { overwrite: false })), 'LOCKED');
  await f.vault.unlock(at('F', 'sub'), token, sam());
});

test.serial('DELETE and MOVE need the tokens of locks below; the locks at and below go with the same batch', async (t) => {
  const deep = await f.vault.lock(at('F', 'sub', 'in.txt'), exclusive, sam());
  t.is(await code(f.vault.remove(at('F'), sam())), 'LOCKED');
  t.is(await code(f.vault.move(at('F'), at('G'), sam(), { overwrite: false })), 'LOCKED');
  let seq = f.audit.head().seq;
  await f.vault.move(at('F'), at('G'), sam(deep.token), { overwrite: false });
  t.deepEqual(await f.vault.locksOn(at('G', 'sub', 'in.txt')), [], 'a MOVE moves no lock');
  t.is(await stored(deep.token), undefined);
  let entries = await entriesSince(f.audit, seq);
  t.deepEqual(entries.map((entry) => entry.action), ['folder.move']);
  t.like(entries[0]!.newValue, { locksReleased: [deep.token] });

  const root = await f.vault.lock(at('G'), { ...exclusive, depth: 'infinity' }, sam());
  seq = f.audit.head().seq;
  await f.vault.remove(at('G'), sam(root.token));
  t.is(await stored(root.token), undefined);
  entries = await entriesSince(f.audit, seq);
  t.deepEqual(entries.map((entry) => entry.action), ['folder.delete']);
  t.like(entries[0]!.newValue, { locksReleased: [root.token] });
  // The undo of the delete brings the folder back, unlocked.
  const [deleted] = await f.vault.trash(S);
  await f.vault.undelete(S, deleted!.id, sam());
  t.deepEqual(await f.vault.locksOn(at('G')), []);
});

test.serial('undelete into a locked folder and restore of a locked file need the token', async (t) => {
  await write(at('G', 'gone.txt'), sam());
  const gone = await f.vault.remove(at('G', 'gone.txt'), sam());
  const folder = await f.vault.lock(at('G'), { ...exclusive, depth: 0 }, pat());
  t.is(await code(f.vault.undelete(S, gone.id, sam())), 'LOCKED');
  await f.vault.unlock(at('G'), folder.token, pat());
  await f.vault.undelete(S, gone.id, sam());
  await write(at('G', 'gone.txt'), sam(), 'v2');
  const file = await f.vault.lock(at('G', 'gone.txt'), exclusive, pat());
  const node = await f.vault.stat(at('G', 'gone.txt'));
  t.is(await code(f.vault.restoreVersion(node, 1, sam())), 'LOCKED');
  t.is((await f.vault.restoreVersion(node, 1, pat(file.token))).version.number, 3);
  await f.vault.unlock(at('G', 'gone.txt'), file.token, pat());
});

test.serial('timeouts: the default without one, at most the maximum, Infinite is the maximum', async (t) => {
  const grant = async (timeout: LockRequest['timeout']) => {
    const lock = await f.vault.lock(at('a.txt'), { ...exclusive, ...(timeout === undefined ? {} : { timeout }) }, sam());
    await f.vault.unlock(at('a.txt'), lock.token, sam());
    return lock.timeoutSeconds;
  };
  t.is(await grant(undefined), 3600);
  t.is(await grant(120), 120);
  t.is(await grant(10_000_000), 86_400);
  t.is(await grant('infinite'), 86_400);
});

test.serial('a refresh sets a new timeout, only for the creator and a token on the resource', async (t) => {
  const lock = await f.vault.lock(at('a.txt'), { ...exclusive, timeout: 60 }, sam());
  t.is(await code(f.vault.refreshLock(at('a.txt'), 600, sam())), 'LOCK_TOKEN_MISMATCH');
  t.is(await code(f.vault.refreshLock(at('c.txt'), 600, sam(lock.token))), 'LOCK_TOKEN_MISMATCH', 'a token for another resource');
  t.is(await code(f.vault.refreshLock(at('a.txt'), 600, pat(lock.token))), 'LOCKED');
  const seq = f.audit.head().seq;
  const [refreshed] = await f.vault.refreshLock(at('a.txt'), 600, sam(lock.token));
  t.is(refreshed!.timeoutSeconds, 600);
  t.true(Date.parse(refreshed!.expiresAt) > Date.parse(lock.expiresAt) + 500_000);
  t.is((await stored(lock.token))!.expiresAt, refreshed!.expiresAt);
  t.deepEqual((await entriesSince(f.audit, seq)).map((entry) => entry.action), ['node.lock.refresh']);
  await f.vault.unlock(at('a.txt'), lock.token, sam());
});

test.serial('UNLOCK: an unknown token or one for another resource is a mismatch, someone else\'s lock is forbidden', async (t) => {
  const lock = await f.vault.lock(at('a.txt'), exclusive, sam());
  t.is(await code(f.vault.unlock(at('a.txt'), 'opaquelocktoken:foobar', sam())), 'LOCK_TOKEN_MISMATCH');
  t.is(await code(f.vault.unlock(at('c.txt'), lock.token, sam())), 'LOCK_TOKEN_MISMATCH');
  t.is(await code(f.vault.unlock(at('a.txt'), lock.token, pat())), 'FORBIDDEN');
  const seq = f.audit.head().seq;
  await f.vault.unlock(at('a.txt'), lock.token, sam());
  const entries = await entriesSince(f.audit, seq);
  t.deepEqual(entries.map((entry) => entry.action), ['node.unlock']);
  t.like(entries[0]!.oldValue, { token: lock.token });
  t.is(await stored(lock.token), undefined);
  t.is(await code(f.vault.unlock(at('a.txt'), lock.token, sam())), 'LOCK_TOKEN_MISMATCH', 'twice');
});

test.serial('an expired lock stops counting at once; the sweep removes its record with one audit entry', async (t) => {
  const lock = await f.vault.lock(at('c.txt'), { ...exclusive, timeout: 1 }, sam());
  t.is(await code(write(at('c.txt'), pat())), 'LOCKED');
  await sleep(1100);
  t.deepEqual(await f.vault.locksOn(at('c.txt')), []);
  t.is((await write(at('c.txt'), pat())).created, false);
  t.truthy(await stored(lock.token), 'still stored until the sweep');
  const seq = f.audit.head().seq;
  t.is(await f.vault.sweepExpiredLocks(), 1);
  t.is(await stored(lock.token), undefined);
  const entries = await entriesSince(f.audit, seq);
  t.deepEqual(entries.map((entry) => entry.action), ['lock.expire']);
  t.like((entries[0]!.oldValue as unknown[])[0], { token: lock.token });
  t.is(await f.vault.sweepExpiredLocks(), 0);
});

test.serial('locks survive a reopen of the vault and are enforced after it', async (t) => {
  const lock = await f.vault.lock(at('a.txt'), { ...exclusive, owner: '<x:o xmlns:x="urn:x">me</x:o>' }, sam());
  f = await f.reopen();
  await f.vault.getStudy(S);
  const found = await f.vault.locksOn(at('a.txt'));
  t.deepEqual(found, [lock]);
  t.is(await code(write(at('a.txt'), sam())), 'LOCKED');
  t.is((await write(at('a.txt'), sam(lock.token))).created, false);
  await f.vault.unlock(at('a.txt'), lock.token, sam());
});
