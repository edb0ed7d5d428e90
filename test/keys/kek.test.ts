// Key-encryption keys on a real SoftHSM2 token (DESIGN invariant 5: KEKs never leave
// the HSM). The token's objects are inspected directly with pkcs11js, with no vault
// open in this process, so the inspection does not depend on the code under test.

import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import type { Handle, PKCS11 } from 'pkcs11js';
import { initSoftHsm } from '../env/softhsm.ts';
import type { SoftHsmToken } from '../env/softhsm.ts';
import { openKeyVault } from '../../src/keys/index.ts';
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

const inspect = <T>(fn: (p: PKCS11, session: Handle) => T): T => inspectToken(token, fn);

test.serial('11.10(c) / DESIGN 5 KEK is generated inside the HSM, sensitive, never extractable, wrap/unwrap only', async (t) => {
  const vault = await openKeyVault(settings());
  t.deepEqual(await vault.ensureStudyKey('STUDY-A'), { version: 1 });
  await vault.close();

  const label = 'vellum:kek:STUDY-A:v1';
  const facts = await inspect((p, session) => {
    const handles = findByLabel(p, session, label);
    const kek = handles[0]!;
    const attrs = new Map(
      p.C_GetAttributeValue(session, kek, [
        pkcs11js.CKA_CLASS, pkcs11js.CKA_KEY_TYPE, pkcs11js.CKA_VALUE_LEN, pkcs11js.CKA_ID,
        pkcs11js.CKA_TOKEN, pkcs11js.CKA_PRIVATE, pkcs11js.CKA_SENSITIVE, pkcs11js.CKA_EXTRACTABLE,
        pkcs11js.CKA_ALWAYS_SENSITIVE, pkcs11js.CKA_NEVER_EXTRACTABLE, pkcs11js.CKA_LOCAL, pkcs11js.CKA_MODIFIABLE,
        pkcs11js.CKA_WRAP, pkcs11js.CKA_UNWRAP, pkcs11js.CKA_ENCRYPT, pkcs11js.CKA_DECRYPT, pkcs11js.CKA_SIGN, pkcs11js.CKA_VERIFY,
      ].map((type) => ({ type }))).map((a) => [a.type, a.value]),
    );
    const tryIt = (fn: () => unknown): string => {
      try {
        fn();
        return 'allowed';
      } catch (e) {
        return (e as Error).message;
      }
    };
    // A throwaway wrapping key, to prove the KEK cannot be wrapped out either.
    const other = p.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_WRAP, value: true },
    ]);
    return {
      count: handles.length,
      attrs,
      readValue: tryIt(() => p.C_GetAttributeValue(session, kek, [{ type: pkcs11js.CKA_VALUE }])),
      wrapOut: tryIt(() => p.C_WrapKey(session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD }, other, kek, Buffer.alloc(64))),
      encrypt: tryIt(() => p.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_ECB }, kek)),
      makeExtractable: tryIt(() => p.C_SetAttributeValue(session, kek, [{ type: pkcs11js.CKA_EXTRACTABLE, value: true }])),
    };
  });

  const bool = (type: number) => facts.attrs.get(type)?.[0];
  t.is(facts.count, 1);
  t.is(facts.attrs.get(pkcs11js.CKA_CLASS)?.readUInt32LE(0), pkcs11js.CKO_SECRET_KEY);
  t.is(facts.attrs.get(pkcs11js.CKA_KEY_TYPE)?.readUInt32LE(0), pkcs11js.CKK_AES);
  t.is(facts.attrs.get(pkcs11js.CKA_VALUE_LEN)?.readUInt32LE(0), 32, 'AES-256');
  t.is(facts.attrs.get(pkcs11js.CKA_ID)?.toString(), label, 'CKA_ID carries the label bytes');
  t.is(bool(pkcs11js.CKA_TOKEN), 1, 'a token object: it survives restarts');
  t.is(bool(pkcs11js.CKA_PRIVATE), 1);
  t.is(bool(pkcs11js.CKA_SENSITIVE), 1);
  t.is(bool(pkcs11js.CKA_EXTRACTABLE), 0);
  t.is(bool(pkcs11js.CKA_ALWAYS_SENSITIVE), 1);
  t.is(bool(pkcs11js.CKA_NEVER_EXTRACTABLE), 1);
  t.is(bool(pkcs11js.CKA_LOCAL), 1, 'generated on the token, not imported');
  t.is(bool(pkcs11js.CKA_MODIFIABLE), 0);
  t.is(bool(pkcs11js.CKA_WRAP), 1);
  t.is(bool(pkcs11js.CKA_UNWRAP), 1);
  t.is(bool(pkcs11js.CKA_ENCRYPT), 0);
  t.is(bool(pkcs11js.CKA_DECRYPT), 0);
  t.is(bool(pkcs11js.CKA_SIGN), 0);
  t.is(bool(pkcs11js.CKA_VERIFY), 0);
  t.is(facts.readValue, 'CKR_ATTRIBUTE_SENSITIVE', 'reading CKA_VALUE fails');
  t.is(facts.wrapOut, 'CKR_KEY_UNEXTRACTABLE', 'the KEK cannot be wrapped out of the HSM');
  t.is(facts.encrypt, 'CKR_KEY_FUNCTION_NOT_PERMITTED', 'the KEK cannot encrypt data');
  t.not(facts.makeExtractable, 'allowed', 'the KEK cannot be made extractable');
});

test.serial('ensureStudyKey is idempotent and safe when called concurrently: ten calls, one KEK', async (t) => {
  const vault = await openKeyVault(settings());
  const results = await Promise.all(Array.from({ length: 10 }, () => vault.ensureStudyKey('STUDY-B')));
  t.deepEqual(results, Array.from({ length: 10 }, () => ({ version: 1 })));
  await vault.close();

  // A fresh process state (no in-memory cache) finds the same key instead of making another.
  const again = await openKeyVault(settings());
  t.deepEqual(await Promise.all([again.ensureStudyKey('STUDY-B'), again.ensureStudyKey('STUDY-B')]), [{ version: 1 }, { version: 1 }]);
  await again.close();

  const counts = await inspect((p, session) => ({
    b: findByLabel(p, session, 'vellum:kek:STUDY-B:v1').length,
    b2: findByLabel(p, session, 'vellum:kek:STUDY-B:v2').length,
  }));
  t.deepEqual(counts, { b: 1, b2: 0 });
});

test.serial('ensureStudyKey returns the highest existing version', async (t) => {
  // Versions 2 and 3 made directly on the token, as a rotation would.
  await inspect((p, session) => {
    for (const version of [3, 2]) {
      const label = `vellum:kek:STUDY-C:v${version}`;
      generateKekOutOfBand(p, session, label);
    }
  });
  const vault = await openKeyVault(settings());
  try {
    t.deepEqual(await vault.ensureStudyKey('STUDY-C'), { version: 3 });
    const dek = await vault.newDataKey('STUDY-C');
    t.is(dek.wrapped.kekVersion, 3, 'new data keys are wrapped by the current version');
    // A look-alike study whose id is a prefix of another is not confused with it.
    t.deepEqual(await vault.ensureStudyKey('STUDY'), { version: 1 });
  } finally {
    await vault.close();
  }
});

test.serial('11.10(c) data keys wrapped before a restart unwrap after it (KEKs are persistent token objects)', async (t) => {
  const first = await openKeyVault(settings());
  await first.ensureStudyKey('STUDY-D');
  const dek = await first.newDataKey('STUDY-D');
  const expected = Buffer.from(dek.key);
  await first.close();

  const second = await openKeyVault(settings());
  try {
    t.deepEqual(await second.unwrapDataKey(dek.wrapped), expected);
  } finally {
    await second.close();
  }
});

test.serial('ensureStudyKey refuses ids that are not study ids, so no label can be forged', async (t) => {
  const vault = await openKeyVault(settings());
  try {
    for (const bad of ['__health__', 'a:v1', '', 'lower', 'X'.repeat(65)]) {
      await t.throwsAsync(vault.ensureStudyKey(bad), { code: 'BAD_REQUEST' }, JSON.stringify(bad));
    }
  } finally {
    await vault.close();
  }
});
