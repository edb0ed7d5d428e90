// The in-memory cache of unwrapped DEKs (DESIGN invariant 5: "Unwrapped DEKs may be
// cached in memory briefly"): short-lived, bounded, and every buffer it lets go of is zeroed.

import test from 'ava';
import { DekCache } from '../../src/keys/dek-cache.ts';

function clock() {
  let now = 1000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

const key = (byte: number) => Buffer.alloc(32, byte);
const zero = Buffer.alloc(32);

test('DESIGN 5 a cached DEK expires after its time to live and its buffer is zeroed', (t) => {
  const c = clock();
  const cache = new DekCache({ ttlMs: 60_000, maxEntries: 10, now: c.now });
  const owned = key(7);
  cache.set('a', owned);
  c.advance(59_999);
  t.deepEqual(cache.get('a'), key(7));
  c.advance(1);
  t.is(cache.get('a'), undefined);
  t.deepEqual(owned, zero, 'the expired key material is overwritten');
  t.is(cache.size, 0);
});

test('sweep zeroes expired entries without waiting for a lookup', (t) => {
  const c = clock();
  const cache = new DekCache({ ttlMs: 100, maxEntries: 10, now: c.now });
  const old = key(1);
  cache.set('old', old);
  c.advance(50);
  const young = key(2);
  cache.set('young', young);
  c.advance(60);
  cache.sweep();
  t.deepEqual(old, zero);
  t.deepEqual(young, key(2));
  t.is(cache.size, 1);
});

test('the cache is bounded: the least recently used entry is evicted and zeroed', (t) => {
  const c = clock();
  const cache = new DekCache({ ttlMs: 60_000, maxEntries: 3, now: c.now });
  const buffers = [key(1), key(2), key(3), key(4)];
  cache.set('k1', buffers[0]!);
  cache.set('k2', buffers[1]!);
  cache.set('k3', buffers[2]!);
  t.truthy(cache.get('k1'), 'k1 becomes the most recently used');
  cache.set('k4', buffers[3]!);
  t.is(cache.size, 3);
  t.is(cache.get('k2'), undefined, 'k2 was the least recently used');
  t.deepEqual(buffers[1], zero);
  t.deepEqual(cache.get('k1'), key(1));
  t.deepEqual(cache.get('k3'), key(3));
  t.deepEqual(cache.get('k4'), key(4));
});

test('get hands out copies: a caller zeroing its key does not corrupt the cache', (t) => {
  const cache = new DekCache({ ttlMs: 60_000, maxEntries: 10, now: clock().now });
  cache.set('a', key(9));
  const first = cache.get('a')!;
  first.fill(0);
  t.deepEqual(cache.get('a'), key(9));
});

test('replacing an entry zeroes the old buffer; clear zeroes everything', (t) => {
  const cache = new DekCache({ ttlMs: 60_000, maxEntries: 10, now: clock().now });
  const a1 = key(1);
  const a2 = key(2);
  const b = key(3);
  cache.set('a', a1);
  cache.set('a', a2);
  t.deepEqual(a1, zero);
  cache.set('b', b);
  cache.clear();
  t.deepEqual(a2, zero);
  t.deepEqual(b, zero);
  t.is(cache.size, 0);
  t.is(cache.get('b'), undefined);
});

test('a time to live of 0 disables the cache and still zeroes what it was given', (t) => {
  const cache = new DekCache({ ttlMs: 0, maxEntries: 10 });
  const owned = key(5);
  cache.set('a', owned);
  t.is(cache.get('a'), undefined);
  t.deepEqual(owned, zero);
  cache.clear();
});

test('delete drops one entry and zeroes it (a shredded blob\'s key does not wait for its time to live)', (t) => {
  const cache = new DekCache({ ttlMs: 60_000, maxEntries: 10, now: clock().now });
  const gone = key(3);
  const kept = key(4);
  cache.set('gone', gone);
  cache.set('kept', kept);
  cache.delete('gone');
  t.is(cache.get('gone'), undefined);
  t.deepEqual(gone, zero);
  t.deepEqual(cache.get('kept'), key(4));
  t.is(cache.size, 1);
  t.notThrows(() => cache.delete('never-there'));
});
