// Health and failure of the HSM on a real SoftHSM2 token (DESIGN invariant 1, fail
// closed): status() reports and never throws; lost sessions fail operations with
// HSM_UNAVAILABLE naming the CKR code, and the vault logs in again afterwards.

import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { initSoftHsm } from '../env/softhsm.ts';
import type { SoftHsmToken } from '../env/softhsm.ts';
import { openKeyVault } from '../../src/keys/index.ts';
import type { KeyVault } from '../../src/keys/index.ts';
import { VellumError } from '../../src/kernel/index.ts';
import { generateKekOutOfBand } from '../support/out-of-band-kek.ts';

let dir: string;
let token: SoftHsmToken;
let vault: KeyVault;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vellum-keys-'));
  token = await initSoftHsm({ dir });
  vault = await openKeyVault({ library: token.library, tokenLabel: token.tokenLabel, pin: token.pin });
});

test.after.always(async () => {
  await vault?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/**
 * Closes every session this process has on the token, as a token reset or an HSM
 * fail-over would: the module is shared within the process, so a second pkcs11js
 * instance reaches the vault's sessions (and the login goes with them).
 */
function closeAllSessionsUnderneath(): void {
  const p = new pkcs11js.PKCS11();
  p.load(token.library);
  try {
    p.C_Initialize();
  } catch (e) {
    if ((e as Error).message !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw e;
  }
  const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === token.tokenLabel)!;
  p.C_CloseAllSessions(slot);
  p.close();
}

test.serial('status is ok on a working token and says which token, which library and how many study keys', async (t) => {
  const before = await vault.status();
  t.true(before.ok, before.detail);
  t.regex(before.detail, /^token 'vellum' \(SoftHSM v2\.\d+\), 0 study keys for 0 studies$/);
  await vault.ensureStudyKey('STUDY-A');
  await vault.ensureStudyKey('STUDY-B');
  const after = await vault.status();
  t.true(after.ok);
  t.regex(after.detail, /, 2 study keys for 2 studies$/, 'the health-check KEK is not counted as a study key');
});

test.serial('invariant 1 fail closed: sessions lost under the vault give HSM_UNAVAILABLE naming the CKR code, then it logs in again', async (t) => {
  await vault.ensureStudyKey('STUDY-A');
  const cachedDek = await vault.newDataKey('STUDY-A');
  t.deepEqual(await vault.unwrapDataKey(cachedDek.wrapped), cachedDek.key, 'now in the DEK cache');
  const otherDek = await vault.newDataKey('STUDY-A');

  closeAllSessionsUnderneath();

  const error = await t.throwsAsync(vault.unwrapDataKey(otherDek.wrapped), { instanceOf: VellumError, code: 'HSM_UNAVAILABLE' });
  t.is(error.status, 503);
  t.regex(error.message, /CKR_SESSION_HANDLE_INVALID/);
  t.is((error.cause as Error).message, 'CKR_SESSION_HANDLE_INVALID', 'the original error is kept as cause');

  // A DEK unwrapped moments ago is still served from the short-lived cache.
  t.deepEqual(await vault.unwrapDataKey(cachedDek.wrapped), cachedDek.key);

  // The next operations get fresh, logged-in sessions.
  t.deepEqual(await vault.unwrapDataKey(otherDek.wrapped), otherDek.key);
  const fresh = await vault.newDataKey('STUDY-A');
  t.deepEqual(await vault.unwrapDataKey(fresh.wrapped), fresh.key);
  const status = await vault.status();
  t.true(status.ok, status.detail);
});

test.serial('status reports lost sessions as not ok without throwing, and recovers', async (t) => {
  closeAllSessionsUnderneath();
  const down = await vault.status();
  t.false(down.ok);
  t.regex(down.detail, /^token 'vellum': .*CKR_SESSION_HANDLE_INVALID/);
  const up = await vault.status();
  t.true(up.ok, up.detail);
});

test.serial('a cached KEK handle that went stale (object replaced on the token) is found again by its label', async (t) => {
  await vault.ensureStudyKey('STUDY-R');
  await vault.newDataKey('STUDY-R'); // the vault now holds the KEK's handle
  // Replace the KEK object behind the vault's back (same label, new object, new handle).
  const p = new pkcs11js.PKCS11();
  p.load(token.library);
  const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === token.tokenLabel)!;
  const session = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION); // logged in: the login is per process
  const label = 'vellum:kek:STUDY-R:v1';
  p.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_LABEL, value: label }]);
  const [old] = p.C_FindObjects(session, 10);
  p.C_FindObjectsFinal(session);
  p.C_DestroyObject(session, old!);
  const replacement = generateKekOutOfBand(p, session, label);
  p.C_CloseSession(session);
  p.close();
  t.false(replacement.equals(old!), 'the new object has a different handle');

  const dek = await vault.newDataKey('STUDY-R');
  t.deepEqual(await vault.unwrapDataKey(dek.wrapped), dek.key);
});

test.serial('close is idempotent; afterwards status is not ok (no throw) and operations fail HSM_UNAVAILABLE', async (t) => {
  const dek = await vault.newDataKey('STUDY-A');
  await Promise.all([vault.close(), vault.close()]);
  await vault.close();
  const status = await vault.status();
  t.false(status.ok);
  t.regex(status.detail, /closed/);
  await t.throwsAsync(vault.newDataKey('STUDY-A'), { instanceOf: VellumError, code: 'HSM_UNAVAILABLE' });
  await t.throwsAsync(vault.unwrapDataKey(dek.wrapped), { instanceOf: VellumError, code: 'HSM_UNAVAILABLE' }, 'the DEK cache was cleared on close');
  await t.throwsAsync(vault.ensureStudyKey('STUDY-A'), { instanceOf: VellumError, code: 'HSM_UNAVAILABLE' });
});
