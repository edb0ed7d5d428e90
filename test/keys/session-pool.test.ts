// The session pool: PKCS#11 allows one active operation per session, so no two
// operations may ever hold the same session, and no more than `size` are open.

import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { SessionPool } from '../../src/keys/session-pool.ts';

function fakeSessions() {
  let next = 1;
  const open = new Set<number>();
  const closed: number[] = [];
  return {
    open,
    closed,
    opener: () => {
      const s = next++;
      open.add(s);
      return s;
    },
    closer: (s: number) => {
      open.delete(s);
      closed.push(s);
    },
  };
}

const closedError = () => new Error('pool closed');

test('never more than size sessions, and never one session in two operations at once', async (t) => {
  const f = fakeSessions();
  const pool = new SessionPool<number>({ size: 4, open: f.opener, close: f.closer, closedError });
  const busy = new Set<number>();
  let maxBusy = 0;
  await Promise.all(
    Array.from({ length: 100 }, (_, i) =>
      pool.use(async (s) => {
        t.false(busy.has(s), `session ${s} is already in use`);
        busy.add(s);
        maxBusy = Math.max(maxBusy, busy.size);
        await sleep(i % 3);
        busy.delete(s);
      }),
    ),
  );
  t.is(maxBusy, 4);
  t.is(f.open.size, 4);
  t.deepEqual(pool.stats, { open: 4, borrowed: 0, waiting: 0 });
});

test('a failing operation gives its session back', async (t) => {
  const f = fakeSessions();
  const pool = new SessionPool<number>({ size: 1, open: f.opener, close: f.closer, closedError });
  await t.throwsAsync(pool.use(async () => Promise.reject(new Error('boom'))), { message: 'boom' });
  t.is(await pool.use(async (s) => s), 1);
  t.is(pool.stats.borrowed, 0);
});

test('waiters are served in order', async (t) => {
  const f = fakeSessions();
  const pool = new SessionPool<number>({ size: 1, open: f.opener, close: f.closer, closedError });
  const order: number[] = [];
  await Promise.all([0, 1, 2, 3, 4].map((i) => pool.use(async () => { order.push(i); await sleep(1); })));
  t.deepEqual(order, [0, 1, 2, 3, 4]);
});

test('invalidate retires every current session: idle ones at once, borrowed ones on return', async (t) => {
  const f = fakeSessions();
  const pool = new SessionPool<number>({ size: 2, open: f.opener, close: f.closer, closedError });
  await Promise.all([pool.use(async () => sleep(1)), pool.use(async () => sleep(1))]);
  t.deepEqual([...f.open], [1, 2]);
  let release!: () => void;
  const held = pool.use((s) => new Promise<number>((resolve) => (release = () => resolve(s))));
  await sleep(0);
  pool.invalidate();
  t.deepEqual(f.closed, [1], 'the idle session is closed at once');
  t.is(await pool.use(async (s) => s), 3, 'the next borrower gets a fresh session');
  release();
  t.is(await held, 2);
  t.deepEqual(f.closed, [1, 2], 'the borrowed session is closed when it comes back');
  t.deepEqual([...f.open], [3]);
});

test('a session that cannot be opened fails the borrower and frees its place', async (t) => {
  let fail = true;
  const f = fakeSessions();
  const pool = new SessionPool<number>({ size: 1, open: () => { if (fail) throw new Error('CKR_TOKEN_NOT_PRESENT'); return f.opener(); }, close: f.closer, closedError });
  await t.throwsAsync(pool.use(async (s) => s), { message: 'CKR_TOKEN_NOT_PRESENT' });
  fail = false;
  t.is(await pool.use(async (s) => s), 1);
});

test('shutdown rejects waiters, waits for borrowed sessions, then hands all sessions over', async (t) => {
  const f = fakeSessions();
  const pool = new SessionPool<number>({ size: 1, open: f.opener, close: f.closer, closedError });
  let finished = false;
  const running = pool.use(async () => { await sleep(20); finished = true; });
  const waiting = pool.use(async () => 'should not run');
  const sessions = await pool.shutdown(5000);
  t.true(finished, 'shutdown waited for the operation in flight');
  await running;
  await t.throwsAsync(waiting, { message: 'pool closed' });
  await t.throwsAsync(pool.use(async () => 1), { message: 'pool closed' });
  t.deepEqual(sessions, [1]);
});
