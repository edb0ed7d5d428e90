// Data keys on a real SoftHSM2 token (DESIGN invariant 4: each blob has a fresh
// 256-bit DEK, stored only wrapped by the study's KEK). The DEK cache is off in this
// file, so every unwrap here is done by the HSM.

import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initSoftHsm } from '../env/softhsm.ts';
import { openKeyVault } from '../../src/keys/index.ts';
import type { KeyVault, WrappedDataKey } from '../../src/keys/index.ts';
import { VellumError } from '../../src/kernel/index.ts';

let dir: string;
let vault: KeyVault;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vellum-keys-'));
  const token = await initSoftHsm({ dir });
  vault = await openKeyVault({ library: token.library, tokenLabel: token.tokenLabel, pin: token.pin }, { dekCacheTtlMs: 0 });
  await vault.ensureStudyKey('STUDY-A');
  await vault.ensureStudyKey('STUDY-B');
});

test.after.always(async () => {
  await vault?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('round trip: the HSM unwraps a new data key to the same 32 bytes', async (t) => {
  const dek = await vault.newDataKey('STUDY-A');
  t.is(dek.key.length, 32);
  t.is(dek.wrapped.study, 'STUDY-A');
  t.is(dek.wrapped.kekVersion, 1);
  t.is(dek.wrapped.mechanism, 'AES_KEY_WRAP_PAD');
  t.is(dek.wrapped.wrapped.length, 40, 'RFC 5649: 32 key bytes + 8-byte integrity block');
  t.false(dek.wrapped.wrapped.includes(dek.key), 'the wrapped form does not contain the key');
  t.deepEqual(await vault.unwrapDataKey(dek.wrapped), dek.key);
});

test('DESIGN 4 every data key is fresh: 100 keys, 100 different keys and wrappings', async (t) => {
  const deks = await Promise.all(Array.from({ length: 100 }, () => vault.newDataKey('STUDY-A')));
  t.is(new Set(deks.map((d) => d.key.toString('hex'))).size, 100);
  t.is(new Set(deks.map((d) => d.wrapped.wrapped.toString('hex'))).size, 100);
  t.false(deks.some((d) => d.key.equals(Buffer.alloc(32))), 'no all-zero key');
});

test('DESIGN 5 a data key of study A cannot be unwrapped as study B: INTEGRITY_FAILURE (B has a KEK v1, it does not fit)', async (t) => {
  const dek = await vault.newDataKey('STUDY-A');
  const asB: WrappedDataKey = { ...dek.wrapped, study: 'STUDY-B' };
  const error = await t.throwsAsync(vault.unwrapDataKey(asB), { instanceOf: VellumError, code: 'INTEGRITY_FAILURE' });
  t.regex(error.message, /vellum:kek:STUDY-B:v1/);
});

test('a data key presented as a study without a KEK, or as a KEK version that does not exist: NOT_FOUND', async (t) => {
  const dek = await vault.newDataKey('STUDY-A');
  await t.throwsAsync(vault.unwrapDataKey({ ...dek.wrapped, study: 'STUDY-NONE' }), { instanceOf: VellumError, code: 'NOT_FOUND' });
  await t.throwsAsync(vault.unwrapDataKey({ ...dek.wrapped, kekVersion: 2 }), { instanceOf: VellumError, code: 'NOT_FOUND' });
  await t.throwsAsync(vault.unwrapDataKey({ ...dek.wrapped, kekVersion: 0 }), { instanceOf: VellumError, code: 'NOT_FOUND' });
  await t.throwsAsync(vault.unwrapDataKey({ ...dek.wrapped, study: '__health__' }), { instanceOf: VellumError, code: 'NOT_FOUND' });
});

test('11.10(a) tampered wrapped bytes are detected: flipping any single bit of any byte gives INTEGRITY_FAILURE', async (t) => {
  const dek = await vault.newDataKey('STUDY-A');
  const original = dek.wrapped.wrapped;
  for (let i = 0; i < original.length; i++) {
    const tampered = Buffer.from(original);
    tampered[i]! ^= 1 << i % 8;
    await t.throwsAsync(vault.unwrapDataKey({ ...dek.wrapped, wrapped: tampered }), { instanceOf: VellumError, code: 'INTEGRITY_FAILURE' }, `byte ${i}`);
  }
  // The untouched original still unwraps: the failures above are about the bytes, not the vault.
  t.deepEqual(await vault.unwrapDataKey(dek.wrapped), dek.key);
});

test('truncated, empty, extended or mislabelled wrapped keys give INTEGRITY_FAILURE', async (t) => {
  const { wrapped } = await vault.newDataKey('STUDY-A');
  const cases: WrappedDataKey[] = [
    { ...wrapped, wrapped: wrapped.wrapped.subarray(0, 32) },
    { ...wrapped, wrapped: wrapped.wrapped.subarray(0, 39) },
    { ...wrapped, wrapped: Buffer.alloc(0) },
    { ...wrapped, wrapped: Buffer.concat([wrapped.wrapped, Buffer.alloc(8)]) },
    { ...wrapped, mechanism: 'AES_KEY_WRAP' },
    { ...wrapped, mechanism: 'ROT13' },
  ];
  for (const c of cases) {
    await t.throwsAsync(vault.unwrapDataKey(c), { instanceOf: VellumError, code: 'INTEGRITY_FAILURE' }, `${c.mechanism} ${c.wrapped.length} bytes`);
  }
});

test('newDataKey for a study without a KEK is NOT_FOUND, for a malformed study id BAD_REQUEST', async (t) => {
  await t.throwsAsync(vault.newDataKey('STUDY-NONE'), { instanceOf: VellumError, code: 'NOT_FOUND' });
  await t.throwsAsync(vault.newDataKey('../etc'), { instanceOf: VellumError, code: 'BAD_REQUEST' });
});

test('the caller owns the returned key: zeroing it does not change the next unwrap', async (t) => {
  const dek = await vault.newDataKey('STUDY-B');
  const copy = Buffer.from(dek.key);
  const first = await vault.unwrapDataKey(dek.wrapped);
  first.fill(0);
  t.deepEqual(await vault.unwrapDataKey(dek.wrapped), copy);
});
