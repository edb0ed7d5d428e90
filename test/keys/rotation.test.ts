// KEK rotation on a real SoftHSM2 token (DESIGN invariant 5: KEKs are versioned
// for rotation; rotation re-wraps DEKs, it does not re-encrypt data). New
// versions are inspected directly with pkcs11js while no vault is open in this
// process, so the inspection does not depend on the code under test.

import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import type { Handle, PKCS11 } from 'pkcs11js';
import { initSoftHsm } from '../env/softhsm.ts';
import type { SoftHsmToken } from '../env/softhsm.ts';
import { openKeyVault } from '../../src/keys/index.ts';
import type { KeyVault, KeyVaultOptions } from '../../src/keys/index.ts';
import { VellumError } from '../../src/kernel/index.ts';
import { findByLabel, generateKekOutOfBand, inspectToken } from '../support/out-of-band-kek.ts';

let dir: string;
let token: SoftHsmToken;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vellum-keys-'));
  token = await initSoftHsm({ dir });
});

test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const settings = () => ({ library: token.library, tokenLabel: token.tokenLabel, pin: token.pin });

/** Runs fn with a vault open (DEK cache off unless asked), and closes it whatever happens. */
async function withVault<T>(fn: (vault: KeyVault) => Promise<T>, options: KeyVaultOptions = { dekCacheTtlMs: 0 }): Promise<T> {
  const vault = await openKeyVault(settings(), options);
  try {
    return await fn(vault);
  } finally {
    await vault.close();
  }
}

const inspect = <T>(fn: (p: PKCS11, session: Handle) => T): T => inspectToken(token, fn);

test.serial('DESIGN 5 rotateStudyKey makes v2 inside the HSM with the KEK template: sensitive, never extractable, wrap/unwrap only', async (t) => {
  const result = await withVault(async (vault) => {
    await vault.ensureStudyKey('STUDY-R');
    return vault.rotateStudyKey('STUDY-R');
  });
  t.deepEqual(result, { version: 2, previous: 1 });

  const label = 'vellum:kek:STUDY-R:v2';
  const facts = inspect((p, session) => {
    const handles = findByLabel(p, session, label);
    const attrs = new Map(
      p.C_GetAttributeValue(session, handles[0]!, [
        pkcs11js.CKA_CLASS, pkcs11js.CKA_KEY_TYPE, pkcs11js.CKA_VALUE_LEN, pkcs11js.CKA_ID,
        pkcs11js.CKA_TOKEN, pkcs11js.CKA_PRIVATE, pkcs11js.CKA_SENSITIVE, pkcs11js.CKA_EXTRACTABLE,
        pkcs11js.CKA_ALWAYS_SENSITIVE, pkcs11js.CKA_NEVER_EXTRACTABLE, pkcs11js.CKA_LOCAL, pkcs11js.CKA_MODIFIABLE,
        pkcs11js.CKA_WRAP, pkcs11js.CKA_UNWRAP, pkcs11js.CKA_ENCRYPT, pkcs11js.CKA_DECRYPT, pkcs11js.CKA_SIGN, pkcs11js.CKA_VERIFY, pkcs11js.CKA_DERIVE,
      ].map((type) => ({ type }))).map((a) => [a.type, a.value]),
    );
    let readValue = 'allowed';
    try {
      p.C_GetAttributeValue(session, handles[0]!, [{ type: pkcs11js.CKA_VALUE }]);
    } catch (e) {
      readValue = (e as Error).message;
    }
    return { count: handles.length, v1: findByLabel(p, session, 'vellum:kek:STUDY-R:v1').length, attrs, readValue };
  });
  const bool = (type: number) => facts.attrs.get(type)?.[0];
  t.is(facts.count, 1, 'exactly one v2');
  t.is(facts.v1, 1, 'v1 stays: data keys it wrapped must still unwrap');
  t.is(facts.attrs.get(pkcs11js.CKA_CLASS)?.readUInt32LE(0), pkcs11js.CKO_SECRET_KEY);
  t.is(facts.attrs.get(pkcs11js.CKA_KEY_TYPE)?.readUInt32LE(0), pkcs11js.CKK_AES);
  t.is(facts.attrs.get(pkcs11js.CKA_VALUE_LEN)?.readUInt32LE(0), 32, 'AES-256');
  t.is(facts.attrs.get(pkcs11js.CKA_ID)?.toString(), label);
  for (const [name, type, expected] of [
    ['TOKEN', pkcs11js.CKA_TOKEN, 1], ['PRIVATE', pkcs11js.CKA_PRIVATE, 1], ['SENSITIVE', pkcs11js.CKA_SENSITIVE, 1],
    ['EXTRACTABLE', pkcs11js.CKA_EXTRACTABLE, 0], ['ALWAYS_SENSITIVE', pkcs11js.CKA_ALWAYS_SENSITIVE, 1],
    ['NEVER_EXTRACTABLE', pkcs11js.CKA_NEVER_EXTRACTABLE, 1], ['LOCAL', pkcs11js.CKA_LOCAL, 1], ['MODIFIABLE', pkcs11js.CKA_MODIFIABLE, 0],
    ['WRAP', pkcs11js.CKA_WRAP, 1], ['UNWRAP', pkcs11js.CKA_UNWRAP, 1], ['ENCRYPT', pkcs11js.CKA_ENCRYPT, 0], ['DECRYPT', pkcs11js.CKA_DECRYPT, 0],
    ['SIGN', pkcs11js.CKA_SIGN, 0], ['VERIFY', pkcs11js.CKA_VERIFY, 0], ['DERIVE', pkcs11js.CKA_DERIVE, 0],
  ] as const) {
    t.is(bool(type), expected, `CKA_${name}`);
  }
  t.is(facts.readValue, 'CKR_ATTRIBUTE_SENSITIVE');
});

test.serial('after a rotation newDataKey wraps under v2 and keys wrapped under v1 still unwrap', async (t) => {
  await withVault(async (vault) => {
    await vault.ensureStudyKey('STUDY-N');
    const before = await vault.newDataKey('STUDY-N');
    t.is(before.wrapped.kekVersion, 1);
    t.deepEqual(await vault.rotateStudyKey('STUDY-N'), { version: 2, previous: 1 });
    const after = await vault.newDataKey('STUDY-N');
    t.is(after.wrapped.kekVersion, 2);
    t.deepEqual(await vault.unwrapDataKey(after.wrapped), after.key);
    t.deepEqual(await vault.unwrapDataKey(before.wrapped), before.key);
    t.deepEqual(await vault.ensureStudyKey('STUDY-N'), { version: 2 }, 'ensureStudyKey reports the new current version');
  });
  // A fresh process state finds v2 as current on the token.
  await withVault(async (vault) => {
    t.is((await vault.newDataKey('STUDY-N')).wrapped.kekVersion, 2);
  });
});

test.serial('rewrapDataKey gives a v2 wrapping of the same key, done inside the HSM; the v1 wrapping stays valid', async (t) => {
  await withVault(async (vault) => {
    await vault.ensureStudyKey('STUDY-W');
    const dek = await vault.newDataKey('STUDY-W');
    await vault.rotateStudyKey('STUDY-W');
    const rewrapped = await vault.rewrapDataKey(dek.wrapped, 2);
    t.is(rewrapped.study, 'STUDY-W');
    t.is(rewrapped.kekVersion, 2);
    t.is(rewrapped.mechanism, 'AES_KEY_WRAP_PAD');
    t.is(rewrapped.wrapped.length, 40);
    t.false(rewrapped.wrapped.equals(dek.wrapped.wrapped), 'another KEK, another wrapping');
    t.false(rewrapped.wrapped.includes(dek.key));
    t.deepEqual(await vault.unwrapDataKey(rewrapped), dek.key, 'the same data key under v2');
    t.deepEqual(await vault.unwrapDataKey(dek.wrapped), dek.key, 'the v1 wrapping is untouched');
    // v2 -> v2 and back to v1 are plain re-wraps too.
    t.deepEqual(await vault.unwrapDataKey(await vault.rewrapDataKey(rewrapped, 2)), dek.key);
    t.deepEqual(await vault.unwrapDataKey(await vault.rewrapDataKey(rewrapped, 1)), dek.key);
  });
});

test.serial('rewrapDataKey: a missing target version is NOT_FOUND; a source that does not unwrap is INTEGRITY_FAILURE', async (t) => {
  await withVault(async (vault) => {
    await vault.ensureStudyKey('STUDY-X');
    await vault.ensureStudyKey('STUDY-Y');
    const dek = await vault.newDataKey('STUDY-X');
    for (const version of [2, 0, -1, 1.5]) {
      await t.throwsAsync(vault.rewrapDataKey(dek.wrapped, version), { instanceOf: VellumError, code: 'NOT_FOUND' }, `to v${version}`);
    }
    await t.throwsAsync(vault.rewrapDataKey({ ...dek.wrapped, study: 'STUDY-NONE' }, 1), { instanceOf: VellumError, code: 'NOT_FOUND' });
    // A missing target is reported as such even when the source is bad too.
    await t.throwsAsync(vault.rewrapDataKey({ ...dek.wrapped, wrapped: Buffer.alloc(40) }, 2), { instanceOf: VellumError, code: 'NOT_FOUND' });

    const tampered = Buffer.from(dek.wrapped.wrapped);
    tampered[7]! ^= 0x10;
    const bad = [
      { ...dek.wrapped, wrapped: tampered },
      { ...dek.wrapped, study: 'STUDY-Y' },
      { ...dek.wrapped, kekVersion: 9 },
      { ...dek.wrapped, wrapped: dek.wrapped.wrapped.subarray(0, 32) },
      { ...dek.wrapped, mechanism: 'ROT13' },
    ];
    for (const [i, wrapped] of bad.entries()) {
      await t.throwsAsync(vault.rewrapDataKey(wrapped, 1), { instanceOf: VellumError, code: 'INTEGRITY_FAILURE' }, `case ${i}`);
    }
    t.deepEqual(await vault.unwrapDataKey(await vault.rewrapDataKey(dek.wrapped, 1)), dek.key, 'the vault still works');
  });
});

test.serial('rotateStudyKey: NOT_FOUND for a study without a KEK, BAD_REQUEST for a malformed id; nothing is created', async (t) => {
  await withVault(async (vault) => {
    await t.throwsAsync(vault.rotateStudyKey('STUDY-NOKEY'), { instanceOf: VellumError, code: 'NOT_FOUND' });
    await t.throwsAsync(vault.rotateStudyKey('__health__'), { instanceOf: VellumError, code: 'BAD_REQUEST' });
    await t.throwsAsync(vault.studyKeyVersions('../x'), { instanceOf: VellumError, code: 'BAD_REQUEST' });
    t.deepEqual(await vault.studyKeyVersions('STUDY-NOKEY'), []);
  });
  t.is(inspect((p, session) => findByLabel(p, session, 'vellum:kek:STUDY-NOKEY:v1').length), 0);
});

test.serial('studyKeyVersions lists what is on the token, ascending, including versions made outside this vault', async (t) => {
  await withVault(async (vault) => {
    t.deepEqual(await vault.studyKeyVersions('STUDY-V'), []);
    await vault.ensureStudyKey('STUDY-V');
    t.deepEqual(await vault.studyKeyVersions('STUDY-V'), [1]);
    await vault.rotateStudyKey('STUDY-V');
    await vault.rotateStudyKey('STUDY-V');
    t.deepEqual(await vault.studyKeyVersions('STUDY-V'), [1, 2, 3]);
    t.deepEqual(await vault.studyKeyVersions('STUDY'), [], 'a study whose id is a prefix of another is not confused with it');
  });
  inspect((p, session) => generateKekOutOfBand(p, session, 'vellum:kek:STUDY-V:v5'));
  await withVault(async (vault) => {
    t.deepEqual(await vault.studyKeyVersions('STUDY-V'), [1, 2, 3, 5]);
    t.deepEqual(await vault.rotateStudyKey('STUDY-V'), { version: 6, previous: 5 }, 'rotation goes past the highest version on the token');
  });
});

test.serial('concurrent rotations of one study make one new version each, never the same version twice', async (t) => {
  await withVault(async (vault) => {
    await vault.ensureStudyKey('STUDY-C');
    const results = await Promise.all(Array.from({ length: 5 }, () => vault.rotateStudyKey('STUDY-C')));
    t.deepEqual(results.map((r) => r.version).sort(), [2, 3, 4, 5, 6]);
    for (const r of results) t.is(r.previous, r.version - 1);
    t.deepEqual(await vault.studyKeyVersions('STUDY-C'), [1, 2, 3, 4, 5, 6]);
    t.is((await vault.newDataKey('STUDY-C')).wrapped.kekVersion, 6);
  });
  const labels = inspect((p, session) => [2, 3, 4, 5, 6].map((v) => findByLabel(p, session, `vellum:kek:STUDY-C:v${v}`).length));
  t.deepEqual(labels, [1, 1, 1, 1, 1]);
});

test.serial('KEKs of many studies created and rotated at once, with data keys in use meanwhile, all succeed (SoftHSM cannot create token objects concurrently)', async (t) => {
  await withVault(async (vault) => {
    const studies = Array.from({ length: 10 }, (_, i) => `STUDY-M${i}`);
    t.deepEqual(await Promise.all(studies.map((s) => vault.ensureStudyKey(s))), studies.map(() => ({ version: 1 })));
    for (const round of [2, 3, 4]) {
      const deks = await Promise.all(studies.map((s) => vault.newDataKey(s)));
      const [rotations, unwrapped] = await Promise.all([
        Promise.all(studies.map((s) => vault.rotateStudyKey(s))),
        Promise.all(deks.map((d) => vault.unwrapDataKey(d.wrapped))),
        Promise.all(studies.map((s) => vault.studyKeyVersions(s))),
      ]);
      t.deepEqual(rotations, studies.map(() => ({ version: round, previous: round - 1 })));
      deks.forEach((d, i) => t.deepEqual(unwrapped[i], d.key));
    }
  });
});

test.serial('forgetDataKey drops the cached key: the next unwrap goes to the HSM again', async (t) => {
  // With the cache on, an unwrap served from the cache succeeds even after its
  // KEK is destroyed on the token; once forgotten, the HSM answers NOT_FOUND.
  await withVault(async (vault) => {
    await vault.ensureStudyKey('STUDY-F');
    const { version } = await vault.rotateStudyKey('STUDY-F');
    const dek = await vault.newDataKey('STUDY-F');
    t.is(dek.wrapped.kekVersion, version);
    t.deepEqual(await vault.unwrapDataKey(dek.wrapped), dek.key);
    // Destroy the KEK behind the vault's back, through the module it already initialised.
    const p = new pkcs11js.PKCS11();
    p.load(token.library);
    const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === token.tokenLabel)!;
    const session = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    for (const handle of findByLabel(p, session, `vellum:kek:STUDY-F:v${version}`)) p.C_DestroyObject(session, handle);
    p.C_CloseSession(session);
    t.deepEqual(await vault.unwrapDataKey(dek.wrapped), dek.key, 'served from the cache');
    vault.forgetDataKey(dek.wrapped);
    await t.throwsAsync(vault.unwrapDataKey(dek.wrapped), { instanceOf: VellumError, code: 'NOT_FOUND' });
    t.notThrows(() => vault.forgetDataKey({ ...dek.wrapped, wrapped: Buffer.alloc(0) }), 'forgetting an unknown key is harmless');
  }, {});
});
