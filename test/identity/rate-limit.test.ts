// The per-address sign-in rate limit: a sliding window, per key, that says how long to wait.

import test from 'ava';
import { createRateLimit } from '../../src/identity/rate-limit.ts';

test('at most `events` per window per key; the wait is until the oldest event leaves the window', (t) => {
  let now = 1_000_000;
  const limit = createRateLimit({ events: 3, windowMs: 60_000, now: () => now });
  t.deepEqual([limit.take('a'), limit.take('a'), limit.take('a')], [0, 0, 0]);
  now += 10_000;
  t.is(limit.take('a'), 50_000);
  t.is(limit.take('b'), 0, 'another address has its own window');
  now += 50_000;
  // All three left the window together: three more are allowed, the fourth waits a whole window.
  t.deepEqual([limit.take('a'), limit.take('a'), limit.take('a'), limit.take('a')], [0, 0, 0, 60_000]);
});

test('refused attempts do not count: waiting out the window is enough', (t) => {
  let now = 0;
  const limit = createRateLimit({ events: 1, windowMs: 1000, now: () => now });
  t.is(limit.take('a'), 0);
  for (let i = 0; i < 5; i++) {
    now += 100;
    t.true(limit.take('a') > 0);
  }
  now = 1000;
  t.is(limit.take('a'), 0);
});
