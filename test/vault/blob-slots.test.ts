// Key slots of the blob format (docs/storage-format.md): a slot is either empty
// (all zero), valid (format byte, fields in range, checksum matches) or invalid.
// A torn or overwritten slot must come out invalid, never as a key to try.

import test from 'ava';
import { randomBytes } from 'node:crypto';
import { decodeKeySlot, decodeKeySlots, encodeKeySlot, KEY_SLOT_SIZE, validSlots } from '../../src/vault/blob-format.ts';

const content = { kekVersion: 7, mechanism: 'AES_KEY_WRAP_PAD', wrapped: randomBytes(40) };

test('a slot round-trips its KEK version, mechanism and wrapped key in a fixed 256 bytes', (t) => {
  const slot = encodeKeySlot(content);
  t.is(slot.length, KEY_SLOT_SIZE);
  const decoded = decodeKeySlot(1, slot);
  t.like(decoded, { index: 1, state: 'valid', kekVersion: 7, mechanism: 'AES_KEY_WRAP_PAD' });
  t.true(decoded.state === 'valid' && decoded.wrapped.equals(content.wrapped));
  for (const wrapped of [Buffer.alloc(1, 1), randomBytes(200)]) {
    const again = decodeKeySlot(0, encodeKeySlot({ ...content, wrapped }));
    t.true(again.state === 'valid' && again.wrapped.equals(wrapped), `${wrapped.length} bytes`);
  }
  t.like(decodeKeySlot(0, encodeKeySlot({ ...content, kekVersion: 0xffffffff })), { state: 'valid', kekVersion: 0xffffffff });
});

test('an all-zero slot is empty', (t) => {
  t.deepEqual(decodeKeySlot(0, Buffer.alloc(KEY_SLOT_SIZE)), { index: 0, state: 'empty' });
});

test('a torn slot is invalid wherever the tear is: every prefix of a new slot over zeros, or over an older slot', (t) => {
  const older = encodeKeySlot({ ...content, kekVersion: 1, wrapped: randomBytes(40) });
  const newer = encodeKeySlot({ ...content, kekVersion: 2 });
  for (let cut = 1; cut < KEY_SLOT_SIZE; cut++) {
    const overEmpty = Buffer.concat([newer.subarray(0, cut), Buffer.alloc(KEY_SLOT_SIZE - cut)]);
    const overOlder = Buffer.concat([newer.subarray(0, cut), older.subarray(cut)]);
    for (const torn of [overEmpty, overOlder]) {
      if (torn.equals(newer) || torn.equals(older)) continue; // a cut where both agree on the rest is not a tear
      t.is(decodeKeySlot(0, torn).state, 'invalid', `cut at ${cut}`);
    }
  }
});

test('any flipped bit makes a slot invalid', (t) => {
  const slot = encodeKeySlot(content);
  for (let i = 0; i < KEY_SLOT_SIZE; i++) {
    const flipped = Buffer.from(slot);
    flipped[i]! ^= 1 << i % 8;
    t.is(decodeKeySlot(0, flipped).state, 'invalid', `byte ${i}`);
  }
});

test('random garbage, a short slot and an unknown slot format are invalid', (t) => {
  for (let i = 0; i < 100; i++) t.is(decodeKeySlot(0, randomBytes(KEY_SLOT_SIZE)).state, 'invalid');
  t.is(decodeKeySlot(0, encodeKeySlot(content).subarray(0, KEY_SLOT_SIZE - 1)).state, 'invalid');
});

test('encodeKeySlot refuses what does not fit', (t) => {
  t.throws(() => encodeKeySlot({ ...content, kekVersion: 0 }), { instanceOf: RangeError });
  t.throws(() => encodeKeySlot({ ...content, kekVersion: 2 ** 32 }), { instanceOf: RangeError });
  t.throws(() => encodeKeySlot({ ...content, mechanism: '' }), { instanceOf: RangeError });
  t.throws(() => encodeKeySlot({ ...content, mechanism: 'X'.repeat(33) }), { instanceOf: RangeError });
  t.throws(() => encodeKeySlot({ ...content, mechanism: 'aes wrap' }), { instanceOf: RangeError });
  t.throws(() => encodeKeySlot({ ...content, wrapped: Buffer.alloc(0) }), { instanceOf: RangeError });
  t.throws(() => encodeKeySlot({ ...content, wrapped: Buffer.alloc(201) }), { instanceOf: RangeError });
});

test('validSlots orders the valid slots by KEK version, newest first, and leaves out empty and invalid ones', (t) => {
  const a = encodeKeySlot({ ...content, kekVersion: 3 });
  const b = encodeKeySlot({ ...content, kekVersion: 4 });
  t.deepEqual(validSlots(decodeKeySlots(Buffer.concat([a, b]))).map((s) => s.index), [1, 0]);
  t.deepEqual(validSlots(decodeKeySlots(Buffer.concat([b, a]))).map((s) => s.index), [0, 1]);
  t.deepEqual(validSlots(decodeKeySlots(Buffer.concat([a, Buffer.alloc(KEY_SLOT_SIZE)]))).map((s) => s.index), [0]);
  t.deepEqual(validSlots(decodeKeySlots(Buffer.concat([randomBytes(KEY_SLOT_SIZE), b]))).map((s) => s.index), [1]);
  t.deepEqual(validSlots(decodeKeySlots(Buffer.alloc(2 * KEY_SLOT_SIZE))), []);
});
