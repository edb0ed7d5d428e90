// Opening the vault fails with a clear, specific error (DESIGN invariant 1, fail
// closed), and a failed open leaves the PKCS#11 module finalized so the process can
// exit or try again.

import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { initSoftHsm } from '../env/softhsm.ts';
import type { SoftHsmToken } from '../env/softhsm.ts';
import { openKeyVault } from '../../src/keys/index.ts';
import { VellumError } from '../../src/kernel/index.ts';

let dir: string;
let token: SoftHsmToken;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vellum-keys-'));
  token = await initSoftHsm({ dir, pin: '24681357' });
});

test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const settings = () => ({ library: token.library, tokenLabel: token.tokenLabel, pin: token.pin });

/** True when nobody in this process has the module initialised (a fresh C_Initialize succeeds). */
function moduleIsFinalized(): boolean {
  const p = new pkcs11js.PKCS11();
  p.load(token.library);
  try {
    p.C_Initialize();
  } catch (e) {
    p.close();
    if ((e as Error).message === 'CKR_CRYPTOKI_ALREADY_INITIALIZED') return false;
    throw e;
  }
  p.C_Finalize();
  p.close();
  return true;
}

test.serial('wrong PIN: HSM_PIN_INCORRECT, the message says the PIN was rejected and does not contain it', async (t) => {
  const error = await t.throwsAsync(openKeyVault({ ...settings(), pin: '99999999' }), { instanceOf: VellumError, code: 'HSM_PIN_INCORRECT' });
  t.regex(error.message, /rejected the configured user PIN/);
  t.regex(error.message, /'vellum'/);
  t.false(error.message.includes('99999999'));
  t.is((error.cause as Error).message, 'CKR_PIN_INCORRECT');
  t.true(moduleIsFinalized(), 'the module was finalized before throwing');
});

test.serial('unknown token label: HSM_TOKEN_NOT_FOUND, listing the labels that exist', async (t) => {
  const error = await t.throwsAsync(openKeyVault({ ...settings(), tokenLabel: 'no-such-token' }), { instanceOf: VellumError, code: 'HSM_TOKEN_NOT_FOUND' });
  t.regex(error.message, /No token is labelled 'no-such-token' \(tokens found: 'vellum'\)/);
  t.true(moduleIsFinalized());
});

test.serial('missing library: HSM_LIBRARY_MISSING naming the path and the OS error', async (t) => {
  const library = join(dir, 'missing', 'libpkcs11.so');
  const error = await t.throwsAsync(openKeyVault({ ...settings(), library }), { instanceOf: VellumError, code: 'HSM_LIBRARY_MISSING' });
  t.true(error.message.includes(library));
  t.regex(error.message, /No such file or directory/);
});

test.serial('a shared library that is not a PKCS#11 module: HSM_LIBRARY_MISSING saying why', async (t) => {
  // The C library this process already runs on: loadable, but without C_GetFunctionList.
  const maps = await readFile('/proc/self/maps', 'utf8');
  const libc = /\s(\/\S*\/libc\.so\.6)$/m.exec(maps)?.[1];
  if (libc === undefined) return t.fail('libc not found in /proc/self/maps');
  const error = await t.throwsAsync(openKeyVault({ ...settings(), library: libc }), { instanceOf: VellumError, code: 'HSM_LIBRARY_MISSING' });
  t.true(error.message.includes(libc));
  t.regex(error.message, /C_GetFunctionList/);
});

test.serial('a session count that is not a positive integer is CONFIG_INVALID', async (t) => {
  await t.throwsAsync(openKeyVault({ ...settings(), sessions: 0 }), { instanceOf: VellumError, code: 'CONFIG_INVALID' });
  await t.throwsAsync(openKeyVault({ ...settings(), sessions: 1.5 }), { instanceOf: VellumError, code: 'CONFIG_INVALID' });
});

test.serial('after the failures above the right PIN opens the token, and close finalizes the module', async (t) => {
  const vault = await openKeyVault(settings());
  t.false(moduleIsFinalized(), 'open vault keeps the module initialised');
  t.true((await vault.status()).ok);
  await vault.close();
  t.true(moduleIsFinalized());
});

test.serial('the same token cannot be opened twice in one process, and the refusal does not disturb the open vault', async (t) => {
  const vault = await openKeyVault(settings());
  try {
    await t.throwsAsync(openKeyVault(settings()), { instanceOf: VellumError, code: 'HSM_UNAVAILABLE', message: /already open in this process/ });
    await t.throwsAsync(openKeyVault({ ...settings(), pin: '0000' }), { instanceOf: VellumError, code: 'HSM_UNAVAILABLE' });
    await vault.ensureStudyKey('STUDY-A');
    const dek = await vault.newDataKey('STUDY-A');
    t.deepEqual(await vault.unwrapDataKey(dek.wrapped), dek.key);
  } finally {
    await vault.close();
  }
  t.true(moduleIsFinalized());
});
