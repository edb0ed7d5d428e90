// The audit signing key pair on a real SoftHSM2 token (DESIGN invariant 5: the
// signing key never leaves the HSM). The token's objects are inspected directly
// with pkcs11js while no vault is open in this process; signatures are checked
// with node:crypto and with the openssl command line.

import test from 'ava';
import { execFile } from 'node:child_process';
import { createPublicKey, createVerify } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pkcs11js from 'pkcs11js';
import type { Handle, PKCS11 } from 'pkcs11js';
import { ensurePackages } from '../env/packages.ts';
import { initSoftHsm } from '../env/softhsm.ts';
import type { SoftHsmToken } from '../env/softhsm.ts';
import { openKeyVault, signingKeyLabel } from '../../src/keys/index.ts';
import type { SigningKeyPurpose } from '../../src/keys/index.ts';
import { VellumError } from '../../src/kernel/index.ts';
import { findByLabel, inspectToken } from '../support/out-of-band-kek.ts';

const run = promisify(execFile);

let dir: string;
/** Holds the audit key pair made by the tests below. */
let token: SoftHsmToken;
/** Never gets a signing key. */
let emptyToken: SoftHsmToken;

const LABEL = 'vellum:sign:audit:v1';

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vellum-signing-'));
  token = await initSoftHsm({ dir });
  emptyToken = await initSoftHsm({ dir, label: 'empty' });
  await ensurePackages(['openssl']);
});

test.after.always(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const settings = (t: SoftHsmToken = token) => ({ library: t.library, tokenLabel: t.tokenLabel, pin: t.pin });

/** Runs fn on a freshly opened vault and closes it, so the token can be inspected afterwards. */
async function withVault<T>(fn: (vault: Awaited<ReturnType<typeof openKeyVault>>) => Promise<T>, on: SoftHsmToken = token): Promise<T> {
  const vault = await openKeyVault(settings(on));
  try {
    return await fn(vault);
  } finally {
    await vault.close();
  }
}

const verifies = (publicKeyPem: string, data: Buffer, signature: Buffer) => createVerify('sha256').update(data).verify(publicKeyPem, signature);

/** `openssl dgst -sha256 -verify`: true for "Verified OK", false for "Verification failure". */
async function opensslVerifies(publicKeyPem: string, data: Buffer, signature: Buffer): Promise<boolean> {
  const work = await mkdtemp(join(dir, 'openssl-'));
  await writeFile(join(work, 'key.pem'), publicKeyPem);
  await writeFile(join(work, 'data'), data);
  await writeFile(join(work, 'sig'), signature);
  try {
    const { stdout } = await run('openssl', ['dgst', '-sha256', '-verify', join(work, 'key.pem'), '-signature', join(work, 'sig'), join(work, 'data')]);
    return stdout.trim() === 'Verified OK';
  } catch (e) {
    const out = (e as { stdout?: string }).stdout ?? '';
    if (out.includes('Verification failure')) return false;
    throw e;
  }
}

test.serial('signingKeyLabel names the audit key vellum:sign:audit:v1', (t) => {
  t.is(signingKeyLabel('audit'), LABEL);
});

test.serial('11.10(e) sign before the key pair exists is NOT_FOUND, and makes no key', async (t) => {
  await withVault(async (vault) => {
    await t.throwsAsync(vault.sign('audit', Buffer.from('checkpoint')), { instanceOf: VellumError, code: 'NOT_FOUND', message: /vellum:sign:audit:v1/ });
  }, emptyToken);
  const count = inspectToken(emptyToken, (p, session) => findByLabel(p, session, LABEL).length);
  t.is(count, 0);
});

test.serial('11.10(e) 20 concurrent ensureSigningKey calls make exactly one RSA-3072 key pair; later calls find it', async (t) => {
  const { results, again } = await withVault(async (vault) => {
    const results = await Promise.all(Array.from({ length: 20 }, () => vault.ensureSigningKey('audit')));
    const again = await vault.ensureSigningKey('audit');
    return { results, again };
  });
  t.is(results.filter((r) => r.created).length, 1, 'exactly one call created the pair');
  t.is(new Set(results.map((r) => r.publicKeyPem)).size, 1, 'every call got the same public key');
  t.true(results.every((r) => r.label === LABEL));
  t.deepEqual(again, { publicKeyPem: results[0]!.publicKeyPem, created: false, label: LABEL });

  const key = createPublicKey(again.publicKeyPem);
  t.is(key.asymmetricKeyType, 'rsa');
  t.is(key.asymmetricKeyDetails?.modulusLength, 3072);
  t.is(key.asymmetricKeyDetails?.publicExponent, 65537n);
  t.regex(again.publicKeyPem, /^-----BEGIN PUBLIC KEY-----\n/);

  const counts = inspectToken(token, (p, session) => {
    const handles = findByLabel(p, session, LABEL);
    const classes = handles.map((h) => p.C_GetAttributeValue(session, h, [{ type: pkcs11js.CKA_CLASS }])[0]!.value.readUInt32LE(0));
    return {
      private: classes.filter((c) => c === pkcs11js.CKO_PRIVATE_KEY).length,
      public: classes.filter((c) => c === pkcs11js.CKO_PUBLIC_KEY).length,
      all: handles.length,
    };
  });
  t.deepEqual(counts, { private: 1, public: 1, all: 2 });
});

/** Attribute flags by name: true when the token says CK_TRUE. */
function flags(attributes: Map<number, Buffer>, names: Record<string, number>): Record<string, boolean> {
  return Object.fromEntries(Object.entries(names).map(([name, type]) => [name, attributes.get(type)?.[0] === 1]));
}

/** What the token answers to an operation: 'allowed', or the CKR name it refused with. */
function outcomes(attempts: Record<string, () => unknown>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(attempts).map(([name, attempt]) => {
      try {
        attempt();
        return [name, 'allowed'];
      } catch (e) {
        return [name, (e as Error).message.split(':')[0]!];
      }
    }),
  );
}

test.serial('DESIGN 5 the private key is generated in the HSM, sensitive, never extractable, and can only sign; the public key only verifies', async (t) => {
  const publicKeyPem = await withVault(async (vault) => (await vault.ensureSigningKey('audit')).publicKeyPem);
  const privateFlags = {
    token: pkcs11js.CKA_TOKEN, private: pkcs11js.CKA_PRIVATE, sensitive: pkcs11js.CKA_SENSITIVE, extractable: pkcs11js.CKA_EXTRACTABLE,
    alwaysSensitive: pkcs11js.CKA_ALWAYS_SENSITIVE, neverExtractable: pkcs11js.CKA_NEVER_EXTRACTABLE, local: pkcs11js.CKA_LOCAL,
    modifiable: pkcs11js.CKA_MODIFIABLE, sign: pkcs11js.CKA_SIGN, signRecover: pkcs11js.CKA_SIGN_RECOVER, decrypt: pkcs11js.CKA_DECRYPT,
    unwrap: pkcs11js.CKA_UNWRAP, derive: pkcs11js.CKA_DERIVE,
  };
  const publicFlags = {
    token: pkcs11js.CKA_TOKEN, verify: pkcs11js.CKA_VERIFY, verifyRecover: pkcs11js.CKA_VERIFY_RECOVER, encrypt: pkcs11js.CKA_ENCRYPT, wrap: pkcs11js.CKA_WRAP,
  };
  const facts = inspectToken(token, (p, session) => {
    const handles = findByLabel(p, session, LABEL);
    const read = (h: Handle, types: number[]) => new Map(p.C_GetAttributeValue(session, h, types.map((type) => ({ type }))).map((a) => [a.type, a.value]));
    const classOf = (h: Handle) => read(h, [pkcs11js.CKA_CLASS]).get(pkcs11js.CKA_CLASS)!.readUInt32LE(0);
    const privateKey = handles.find((h) => classOf(h) === pkcs11js.CKO_PRIVATE_KEY)!;
    const publicKey = handles.find((h) => classOf(h) === pkcs11js.CKO_PUBLIC_KEY)!;
    const priv = read(privateKey, [pkcs11js.CKA_KEY_TYPE, pkcs11js.CKA_ID, ...Object.values(privateFlags)]);
    const pub = read(publicKey, [
      pkcs11js.CKA_KEY_TYPE, pkcs11js.CKA_ID, pkcs11js.CKA_MODULUS_BITS, pkcs11js.CKA_MODULUS, pkcs11js.CKA_PUBLIC_EXPONENT, ...Object.values(publicFlags),
    ]);
    // A session key allowed to wrap, to show the private key cannot be wrapped out with it.
    const wrappingKey = p.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_WRAP, value: true },
    ]);
    const refused = outcomes({
      readPrivateExponent: () => p.C_GetAttributeValue(session, privateKey, [{ type: pkcs11js.CKA_PRIVATE_EXPONENT }]),
      readPrime: () => p.C_GetAttributeValue(session, privateKey, [{ type: pkcs11js.CKA_PRIME_1 }]),
      wrapOut: () => p.C_WrapKey(session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD }, wrappingKey, privateKey, Buffer.alloc(4096)),
      decrypt: () => p.C_DecryptInit(session, { mechanism: pkcs11js.CKM_RSA_PKCS }, privateKey),
      encryptWithPublicKey: () => p.C_EncryptInit(session, { mechanism: pkcs11js.CKM_RSA_PKCS }, publicKey),
    });
    const makeExtractable = outcomes({ set: () => p.C_SetAttributeValue(session, privateKey, [{ type: pkcs11js.CKA_EXTRACTABLE, value: true }]) }).set;
    return { priv, pub, refused, makeExtractable };
  });

  t.is(facts.priv.get(pkcs11js.CKA_KEY_TYPE)?.readUInt32LE(0), pkcs11js.CKK_RSA);
  t.deepEqual(flags(facts.priv, privateFlags), {
    token: true, // survives restarts
    private: true,
    sensitive: true,
    extractable: false,
    alwaysSensitive: true,
    neverExtractable: true,
    local: true, // generated on the token, not imported
    modifiable: false,
    sign: true,
    signRecover: false,
    decrypt: false,
    unwrap: false,
    derive: false,
  });
  t.is(facts.pub.get(pkcs11js.CKA_KEY_TYPE)?.readUInt32LE(0), pkcs11js.CKK_RSA);
  t.deepEqual(flags(facts.pub, publicFlags), { token: true, verify: true, verifyRecover: false, encrypt: false, wrap: false });
  t.is(facts.pub.get(pkcs11js.CKA_MODULUS_BITS)?.readUInt32LE(0), 3072);
  t.is(facts.pub.get(pkcs11js.CKA_MODULUS)?.length, 384);
  t.deepEqual(facts.pub.get(pkcs11js.CKA_PUBLIC_EXPONENT), Buffer.from([1, 0, 1]));

  const id = facts.priv.get(pkcs11js.CKA_ID);
  t.true(id !== undefined && id.length > 0, 'the pair has a CKA_ID');
  t.deepEqual(facts.pub.get(pkcs11js.CKA_ID), id, 'both halves share it');

  const jwk = createPublicKey(publicKeyPem).export({ format: 'jwk' });
  t.is(jwk.n, facts.pub.get(pkcs11js.CKA_MODULUS)!.toString('base64url'), 'the PEM handed out is the token\'s public key');

  t.deepEqual(facts.refused, {
    readPrivateExponent: 'CKR_ATTRIBUTE_SENSITIVE',
    readPrime: 'CKR_ATTRIBUTE_SENSITIVE',
    wrapOut: 'CKR_KEY_UNEXTRACTABLE',
    decrypt: 'CKR_KEY_FUNCTION_NOT_PERMITTED',
    encryptWithPublicKey: 'CKR_KEY_FUNCTION_NOT_PERMITTED',
  });
  t.not(facts.makeExtractable, 'allowed', 'the private key cannot be made extractable');
});

test.serial('11.10(e) a signature (RSASSA-PKCS1-v1_5, SHA-256) verifies with node:crypto and openssl dgst; other data or a changed signature does not', async (t) => {
  const data = Buffer.from('vellum-audit-checkpoint/1 log=0123 size=1 time=2025-01-01T00:00:00.000Z root=ab head=cd', 'ascii');
  const { publicKeyPem, signature } = await withVault(async (vault) => {
    const { publicKeyPem } = await vault.ensureSigningKey('audit');
    return { publicKeyPem, signature: await vault.sign('audit', data) };
  });
  t.is(signature.length, 384, 'a 3072-bit signature');
  t.true(verifies(publicKeyPem, data, signature));
  t.true(await opensslVerifies(publicKeyPem, data, signature), 'openssl: Verified OK');

  const otherData = Buffer.from(data);
  otherData[otherData.length - 1]! ^= 1;
  t.false(verifies(publicKeyPem, otherData, signature));
  t.false(await opensslVerifies(publicKeyPem, otherData, signature), 'openssl: Verification failure for changed data');
  const otherSignature = Buffer.from(signature);
  otherSignature[10]! ^= 1;
  t.false(verifies(publicKeyPem, data, otherSignature));
});

test.serial('11.10(e) 200 concurrent signs through the session pool all verify, each over its own data', async (t) => {
  const { publicKeyPem, signed } = await withVault(async (vault) => {
    const { publicKeyPem } = await vault.ensureSigningKey('audit');
    const signed = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const data = Buffer.from(`checkpoint ${i}`);
        return { data, signature: await vault.sign('audit', data) };
      }),
    );
    return { publicKeyPem, signed };
  });
  t.is(signed.length, 200);
  t.is(signed.filter(({ data, signature }) => verifies(publicKeyPem, data, signature)).length, 200);
  // Each signature belongs to its own data: swapping two fails.
  t.false(verifies(publicKeyPem, signed[0]!.data, signed[1]!.signature));
});

test.serial('11.10(c) the key pair survives re-opening the vault: same public key, its signatures verify', async (t) => {
  const first = await withVault((vault) => vault.ensureSigningKey('audit'));
  // A new vault knows nothing in memory: it signs with the pair on the token, before and after ensureSigningKey.
  const { signed, again } = await withVault(async (vault) => {
    const signed = await vault.sign('audit', Buffer.from('after restart'));
    const again = await vault.ensureSigningKey('audit');
    return { signed, again };
  });
  t.deepEqual(again, { publicKeyPem: first.publicKeyPem, created: false, label: LABEL });
  t.true(verifies(first.publicKeyPem, Buffer.from('after restart'), signed));
  const count = inspectToken(token, (p: PKCS11, session: Handle) => findByLabel(p, session, LABEL).length);
  t.is(count, 2, 'still one pair');
});

test.serial('invariant 1 fail closed: a login lost under the vault makes sign HSM_UNAVAILABLE, then it logs in again and signs with the same key', async (t) => {
  await withVault(async (vault) => {
    const { publicKeyPem } = await vault.ensureSigningKey('audit');
    t.true(verifies(publicKeyPem, Buffer.from('before'), await vault.sign('audit', Buffer.from('before'))), 'the key handle is now cached');

    // Another user of the same PKCS#11 module in this process logs the application out
    // (login state is per application and token): the cached private-key handle goes stale.
    const p = new pkcs11js.PKCS11();
    p.load(token.library);
    t.throws(() => p.C_Initialize(), { message: 'CKR_CRYPTOKI_ALREADY_INITIALIZED' }, 'the module is the one the vault uses');
    const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === token.tokenLabel)!;
    const session = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    p.C_Logout(session);
    p.C_CloseSession(session);
    p.close();

    const error = await t.throwsAsync(vault.sign('audit', Buffer.from('during')), { instanceOf: VellumError, code: 'HSM_UNAVAILABLE' });
    t.regex(error.message, /CKR_USER_NOT_LOGGED_IN/);
    const after = await vault.sign('audit', Buffer.from('after'));
    t.true(verifies(publicKeyPem, Buffer.from('after'), after), 'the same key signs after a fresh login');
    t.deepEqual(await vault.ensureSigningKey('audit'), { publicKeyPem, created: false, label: LABEL });
  });
});

test.serial('after close, ensureSigningKey and sign are HSM_UNAVAILABLE', async (t) => {
  const vault = await openKeyVault(settings());
  await vault.ensureSigningKey('audit');
  await vault.close();
  await t.throwsAsync(vault.sign('audit', Buffer.from('x')), { instanceOf: VellumError, code: 'HSM_UNAVAILABLE' });
  await t.throwsAsync(vault.ensureSigningKey('audit'), { instanceOf: VellumError, code: 'HSM_UNAVAILABLE' });
});

test.serial('an unknown purpose or data that is not bytes is BAD_REQUEST', async (t) => {
  await withVault(async (vault) => {
    await t.throwsAsync(vault.ensureSigningKey('tls' as SigningKeyPurpose), { instanceOf: VellumError, code: 'BAD_REQUEST' });
    await t.throwsAsync(vault.sign('tls' as SigningKeyPurpose, Buffer.from('x')), { instanceOf: VellumError, code: 'BAD_REQUEST' });
    await t.throwsAsync(vault.sign('audit', 'text' as unknown as Buffer), { instanceOf: VellumError, code: 'BAD_REQUEST' });
  });
});
