// App passwords (issue 5, point 6): the format, scrypt hashes with their own
// salt, verification by id without a scan, listing without secrets, revocation
// by the owner or an Administrator (Part 11 §11.300(c)), throttled last use.

import test from 'ava';
import { scryptSync } from 'node:crypto';
import { createAppPasswords, type AppPasswords } from '../../src/identity/index.ts';
import { isVellumError } from '../../src/kernel/index.ts';
import { ADMINS, ManualClock, openStore, origin, person, type Store } from './fixture.ts';

// Small cost for speed; the stored cost is what verification uses.
const COST = { N: 2 ** 10, r: 8, p: 1 };
const sam = person('sam');
const dana = person('dana');
const ada = person('ada', [ADMINS]);

const stores: Store[] = [];
test.after.always(async () => {
  for (const store of stores) await store.close();
});

async function setUp() {
  const clock = new ManualClock();
  const store = await openStore(clock);
  stores.push(store);
  const revoked: string[] = [];
  const appPasswords: AppPasswords = createAppPasswords({ db: store.db, audit: store.audit, administratorGroups: [ADMINS], onRevoked: (id) => revoked.push(id), clock, cost: COST });
  return { clock, store, appPasswords, revoked };
}

const code = (promise: Promise<unknown>) => promise.then(() => 'none', (e: unknown) => (isVellumError(e) ? e.code : String(e)));

test('11.300 an app password has a recognisable shape with its id, verifies, and is stored only as a salted scrypt hash', async (t) => {
  const { appPasswords, store } = await setUp();
  const { appPassword, password } = await appPasswords.create(sam, '  Laptop ', origin());
  t.regex(password, /^vlmap_[0-9a-f]{16}_[A-Za-z0-9_-]{32}$/);
  t.is(password.slice(6, 22), appPassword.id);
  t.like(appPassword, { name: 'Laptop', ownerId: sam.id, ownerLogin: 'sam', lastUsedAt: null });
  t.true(appPasswords.isAppPassword(password));
  t.false(appPasswords.isAppPassword('sam-Sponsor-2026'));
  t.like(await appPasswords.verify(password), { id: appPassword.id, ownerId: sam.id });

  const stored = await store.db.section<{ salt: string; hash: string; cost: typeof COST }>('app-passwords').get(appPassword.id);
  t.truthy(stored);
  const secret = password.slice(23);
  t.is(scryptSync(secret, Buffer.from(stored!.salt, 'base64'), 32, stored!.cost).toString('base64'), stored!.hash, 'the hash is scrypt of the secret with its salt');
  t.false(JSON.stringify(stored).includes(secret));
  const other = await appPasswords.create(sam, 'Phone', origin());
  const otherStored = await store.db.section<{ salt: string }>('app-passwords').get(other.appPassword.id);
  t.not(otherStored!.salt, stored!.salt, 'each has its own salt');
});

test('11.300 a wrong secret, an unknown id or a changed character does not verify', async (t) => {
  const { appPasswords } = await setUp();
  const { password } = await appPasswords.create(sam, 'Laptop', origin());
  const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
  t.is(await appPasswords.verify(flip(password, password.length - 1)), null, 'secret changed');
  t.is(await appPasswords.verify(`vlmap_${'0'.repeat(16)}_${password.slice(23)}`), null, 'unknown id');
  t.is(await appPasswords.verify(password.toUpperCase()), null);
  t.is(await appPasswords.verify('not-an-app-password'), null);
});

test('11.300(c) listing shows names and times, never a secret or hash; others\' lists are for Administrators (refusal audited)', async (t) => {
  const { appPasswords, store } = await setUp();
  const { password } = await appPasswords.create(sam, 'Laptop', origin());
  const listed = await appPasswords.list(sam, sam.id, origin());
  t.deepEqual(listed.map((p) => p.name), ['Laptop']);
  t.deepEqual(Object.keys(listed[0]!).sort(), ['createdAt', 'id', 'lastUsedAt', 'name', 'ownerId', 'ownerLogin']);
  t.false(JSON.stringify(listed).includes(password.slice(23)));
  t.is(await code(appPasswords.list(dana, sam.id, origin())), 'FORBIDDEN');
  t.is((await appPasswords.list(ada, sam.id, origin())).length, 1);
  t.deepEqual(await appPasswords.list(dana, dana.id, origin()), []);
  t.true((await store.entries()).some((e) => e.action === 'app-password.list' && e.outcome === 'denied' && e.actor?.login === 'dana'));
});

test('11.300(c) revocation: the owner or an Administrator; someone else\'s id is not found; audited; the cache is told', async (t) => {
  const { appPasswords, store, revoked } = await setUp();
  const laptop = await appPasswords.create(sam, 'Laptop', origin());
  const phone = await appPasswords.create(sam, 'Phone', origin());
  t.is(await code(appPasswords.revoke(dana, dana.id, laptop.appPassword.id, origin())), 'APP_PASSWORD_NOT_FOUND', 'not hers: as if it did not exist');
  t.is(await code(appPasswords.revoke(dana, sam.id, laptop.appPassword.id, origin())), 'FORBIDDEN');
  await appPasswords.revoke(sam, sam.id, laptop.appPassword.id, origin());
  t.is(await appPasswords.verify(laptop.password), null, 'revoked: refused at once');
  await appPasswords.revoke(ada, sam.id, phone.appPassword.id, origin());
  t.is(await appPasswords.verify(phone.password), null);
  t.deepEqual(revoked, [laptop.appPassword.id, phone.appPassword.id]);
  t.deepEqual(await appPasswords.list(sam, sam.id, origin()), []);
  const entries = (await store.entries()).filter((e) => e.action.startsWith('app-password.'));
  t.deepEqual(entries.map((e) => [e.action, e.outcome, e.actor?.login]), [
    ['app-password.create', 'success', 'sam'],
    ['app-password.create', 'success', 'sam'],
    ['app-password.revoke', 'denied', 'dana'],
    ['app-password.revoke', 'denied', 'dana'],
    ['app-password.revoke', 'success', 'sam'],
    ['app-password.revoke', 'success', 'ada'],
  ]);
  t.like(entries[5], { oldValue: { name: 'Phone', ownerId: sam.id } });
});

test('names are checked: empty, control characters and duplicates are refused; an app password cannot make another', async (t) => {
  const { appPasswords } = await setUp();
  t.is(await code(appPasswords.create(sam, '   ', origin())), 'BAD_REQUEST');
  t.is(await code(appPasswords.create(sam, 'a\nb', origin())), 'BAD_REQUEST');
  t.is(await code(appPasswords.create(sam, 'x'.repeat(65), origin())), 'BAD_REQUEST');
  const first = await appPasswords.create(sam, 'Laptop', origin());
  t.is(await code(appPasswords.create(sam, 'laptop', origin())), 'BAD_REQUEST');
  t.is(await code(appPasswords.create(dana, 'Laptop', origin())), 'none', 'names are per person');
  t.is(await code(appPasswords.create(sam, 'Tablet', origin(), first.appPassword.id)), 'FORBIDDEN');
});

test('last use is kept, written at most every few minutes', async (t) => {
  const { appPasswords, store, clock } = await setUp();
  const { appPassword } = await appPasswords.create(sam, 'Laptop', origin());
  const stored = () => store.db.section<{ lastUsedAt: string | null }>('app-passwords').get(appPassword.id);
  appPasswords.touch(appPassword.id);
  const first = clock.now().toISOString();
  await appPasswords.list(sam, sam.id, origin()); // queued after the write
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.is((await stored())!.lastUsedAt, first, 'the first use is written');
  clock.advance(60);
  appPasswords.touch(appPassword.id);
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.is((await stored())!.lastUsedAt, first, 'a minute later: not written again');
  t.is((await appPasswords.list(sam, sam.id, origin()))[0]!.lastUsedAt, clock.now().toISOString(), 'but shown');
  clock.advance(300);
  appPasswords.touch(appPassword.id);
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.is((await stored())!.lastUsedAt, clock.now().toISOString(), 'five minutes on: written');
});
