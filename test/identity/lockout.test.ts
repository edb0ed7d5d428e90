// Lockout (issue 5, point 3; Part 11 §11.300(d)) with a clock the test moves:
// the window, administrator and timed unlock, the per-address block, locks
// kept in LevelDB across a restart, and the audit entries of each.

import test from 'ava';
import { isVellumError, type RequestOrigin } from '../../src/kernel/index.ts';
import { openLockout, SourceBlockedError, type LockoutSettings } from '../../src/identity/index.ts';
import { ADMINS, ManualClock, openStore, origin, person, type Store } from './fixture.ts';

const SETTINGS: LockoutSettings = { attempts: 3, windowSeconds: 60, unlock: 'administrator', lockSeconds: 300, sourceAttempts: 0, sourceLockSeconds: 120 };
const ada = person('ada', [ADMINS]);
const sam = person('sam');

const stores: Store[] = [];
test.after.always(async () => {
  for (const store of stores) await store.close();
});

async function setUp(settings: Partial<LockoutSettings> = {}) {
  const clock = new ManualClock();
  const store = await openStore(clock);
  stores.push(store);
  const open = () => openLockout({ db: store.db, audit: store.audit, settings: { ...SETTINGS, ...settings }, administratorGroups: [ADMINS], clock });
  return { clock, store, lockout: await open(), open };
}

async function code(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'none';
  } catch (e) {
    return isVellumError(e) ? e.code : String(e);
  }
}

test('11.300(d) N failures within the window lock the login; fewer, or spread beyond the window, do not', async (t) => {
  const { clock, lockout } = await setUp();
  const from: RequestOrigin = origin();
  t.deepEqual(await lockout.recordFailure('sam', from), []);
  clock.advance(61);
  t.deepEqual(await lockout.recordFailure('sam', from), [], 'the first failure left the window');
  t.deepEqual(await lockout.recordFailure('sam', from), []);
  t.is(await code(lockout.check('sam', from.ip)), 'none');
  const made = await lockout.recordFailure('sam', from);
  t.is(made.length, 1);
  t.like(made[0], { kind: 'account', key: 'sam', until: null, failures: 3, ip: from.ip });
  t.is(await code(lockout.check('sam', from.ip)), 'ACCOUNT_LOCKED');
  t.is(await code(lockout.check(' SAM ', '198.51.100.7')), 'ACCOUNT_LOCKED', 'the same login in any case, from anywhere');
  t.is(await code(lockout.check('dana', from.ip)), 'none', 'other logins are not affected');
  clock.advance(86_400);
  t.is(await code(lockout.check('sam', from.ip)), 'ACCOUNT_LOCKED', 'an administrator lock does not end by itself');
});

test('11.300(d) a success clears the count of failures so far', async (t) => {
  const { lockout } = await setUp();
  await lockout.recordFailure('sam', origin());
  await lockout.recordFailure('sam', origin());
  lockout.recordSuccess('sam');
  t.deepEqual(await lockout.recordFailure('sam', origin()), []);
  t.deepEqual(await lockout.recordFailure('sam', origin()), []);
  t.is((await lockout.recordFailure('sam', origin())).length, 1);
});

test('11.300(d) a name that does not exist locks exactly like one that does', async (t) => {
  const { lockout } = await setUp();
  for (let i = 0; i < 2; i++) await lockout.recordFailure('no-such-person', origin());
  t.is((await lockout.recordFailure('no-such-person', origin())).length, 1);
  t.is(await code(lockout.check('no-such-person', '203.0.113.1')), 'ACCOUNT_LOCKED');
});

test('11.300(d) an Administrator unlocks (audited with the Administrator as actor); others are refused (audited)', async (t) => {
  const { lockout, store } = await setUp();
  for (let i = 0; i < 3; i++) await lockout.recordFailure('sam', origin());
  t.is(await code(lockout.unlockAccount(sam, 'sam', origin('10.0.0.2'))), 'FORBIDDEN');
  t.is(await code(lockout.list(sam, origin('10.0.0.2'))), 'FORBIDDEN');
  const listed = await lockout.list(ada, origin('10.0.0.1'));
  t.deepEqual(listed.accounts.map((l) => l.key), ['sam']);
  t.deepEqual(listed.sources, []);
  await lockout.unlockAccount(ada, 'SAM', origin('10.0.0.1'));
  t.is(await code(lockout.check('sam', '192.0.2.10')), 'none');
  t.is(await code(lockout.unlockAccount(ada, 'sam', origin('10.0.0.1'))), 'LOCKOUT_NOT_FOUND');
  t.deepEqual((await lockout.recordFailure('sam', origin())), [], 'unlocking starts the count afresh');

  const entries = await store.entries();
  const locked = entries.filter((e) => e.action === 'auth.lockout');
  t.is(locked.length, 1);
  t.like(locked[0], { outcome: 'success', ip: '192.0.2.10', object: { path: 'login:sam' } });
  const unlocks = entries.filter((e) => e.action === 'auth.unlock');
  t.deepEqual(unlocks.map((e) => [e.outcome, e.actor?.login ?? null]), [['denied', 'sam'], ['success', 'ada']]);
  t.like(unlocks[1], { ip: '10.0.0.1', object: { path: 'login:sam' } });
  t.true(entries.some((e) => e.action === 'auth.lockouts.read' && e.outcome === 'denied'));
});

test('11.300(d) timed unlock: the lock ends after lockSeconds, and its end is audited', async (t) => {
  const { clock, lockout, store } = await setUp({ unlock: 'timed', lockSeconds: 300 });
  for (let i = 0; i < 3; i++) await lockout.recordFailure('sam', origin());
  const error = await lockout.check('sam', '192.0.2.10').catch((e: unknown) => e);
  t.true(isVellumError(error, 'ACCOUNT_LOCKED'));
  t.regex((error as Error).message, /unlocks at 2026-03-01T09:05:00\.000Z/);
  clock.advance(299);
  t.is(await code(lockout.check('sam', '192.0.2.10')), 'ACCOUNT_LOCKED');
  clock.advance(1);
  t.is(await code(lockout.check('sam', '192.0.2.10')), 'none');
  const unlock = (await store.entries()).find((e) => e.action === 'auth.unlock');
  t.like(unlock, { outcome: 'success', actor: null, detail: 'The lock time ran out.' });
});

test('11.300(d) an address with too many failures, whatever the names, is blocked for sourceLockSeconds', async (t) => {
  const { clock, lockout } = await setUp({ attempts: 100, sourceAttempts: 4, sourceLockSeconds: 120 });
  const attacker = origin('::ffff:203.0.113.9');
  for (const name of ['a', 'b', 'c']) t.deepEqual(await lockout.recordFailure(name, attacker), []);
  const made = await lockout.recordFailure('d', attacker);
  t.like(made, [{ kind: 'source', key: '203.0.113.9', failures: 4 }]);
  const error = await lockout.check('sam', '203.0.113.9').catch((e: unknown) => e);
  t.true(error instanceof SourceBlockedError);
  t.is((error as SourceBlockedError).retryAfterSeconds, 120);
  t.is((error as SourceBlockedError).code, 'SOURCE_BLOCKED');
  t.is(await code(lockout.check('sam', '192.0.2.10')), 'none', 'other addresses are not blocked');
  clock.advance(100);
  t.is(((await lockout.check('sam', '::ffff:203.0.113.9').catch((e: unknown) => e)) as SourceBlockedError).retryAfterSeconds, 20);
  clock.advance(20);
  t.is(await code(lockout.check('sam', '203.0.113.9')), 'none');
});

test('11.300(d) an Administrator lifts an address block', async (t) => {
  const { lockout } = await setUp({ sourceAttempts: 2 });
  await lockout.recordFailure('x', origin('198.51.100.1'));
  await lockout.recordFailure('y', origin('198.51.100.1'));
  t.deepEqual((await lockout.list(ada, origin())).sources.map((l) => l.key), ['198.51.100.1']);
  await lockout.unlockSource(ada, '198.51.100.1', origin());
  t.is(await code(lockout.check('x', '198.51.100.1')), 'none');
});

test('11.300(d) locks survive a restart; failure counts below the limit do not', async (t) => {
  const { lockout, store, open } = await setUp();
  for (let i = 0; i < 3; i++) await lockout.recordFailure('sam', origin());
  await lockout.recordFailure('dana', origin());
  await lockout.recordFailure('dana', origin());
  await store.reopen();
  const again = await open();
  t.is(await code(again.check('sam', '192.0.2.10')), 'ACCOUNT_LOCKED');
  t.deepEqual(await again.recordFailure('dana', origin()), [], 'the in-memory count started over');
});
