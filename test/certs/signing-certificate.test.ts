// The audit signing key's X.509 certificate, built with node-forge and signed
// inside a real SoftHSM2 token, then read back by the openssl command line and
// by node:crypto, which know nothing of how it was made.

import test from 'ava';
import { execFile } from 'node:child_process';
import { X509Certificate, createPublicKey, generateKeyPairSync, sign as signWithKey } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensurePackages } from '../env/packages.ts';
import { initSoftHsm } from '../env/softhsm.ts';
import { issueSigningCertificate } from '../../src/certs/index.ts';
import { openKeyVault } from '../../src/keys/index.ts';
import { VellumError } from '../../src/kernel/index.ts';

const run = promisify(execFile);

let dir: string;
let vault: Awaited<ReturnType<typeof openKeyVault>>;
let publicKeyPem: string;
/** A second token, for a vault that is closed before it signs. */
let closedToken: Awaited<ReturnType<typeof initSoftHsm>>;

const COMMON_NAME = 'Vellum audit trail signing key';
const ORGANIZATION = 'Vellum Trials Ltd';

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vellum-certs-'));
  const token = await initSoftHsm({ dir });
  // Both tokens exist before the PKCS#11 module is loaded: SoftHSM reads its token directory once.
  closedToken = await initSoftHsm({ dir, label: 'closed' });
  await ensurePackages(['openssl']);
  vault = await openKeyVault({ library: token.library, tokenLabel: token.tokenLabel, pin: token.pin });
  publicKeyPem = (await vault.ensureSigningKey('audit')).publicKeyPem;
});

test.after.always(async () => {
  await vault?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const hsmSigner = (tbs: Buffer) => vault.sign('audit', tbs);

const issue = () => issueSigningCertificate({ publicKeyPem, commonName: COMMON_NAME, organization: ORGANIZATION, days: 365, sign: hsmSigner });

async function saved(pem: string): Promise<string> {
  const work = await mkdtemp(join(dir, 'cert-'));
  const file = join(work, 'cert.pem');
  await writeFile(file, pem);
  return file;
}

/** `openssl verify` of a self-signed certificate as its own trust anchor, its signature checked too. */
async function opensslVerify(file: string): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout, stderr } = await run('openssl', ['verify', '-check_ss_sig', '-CAfile', file, file]);
    return { ok: true, output: stdout + stderr };
  } catch (e) {
    const { stdout = '', stderr = '' } = e as { stdout?: string; stderr?: string };
    return { ok: false, output: stdout + stderr };
  }
}

test('11.10(e) openssl reads the HSM-signed certificate: v3, RSA 3072 bits, sha256WithRSAEncryption, critical key usages, subject = issuer', async (t) => {
  const file = await saved(await issue());
  const { stdout: text } = await run('openssl', ['x509', '-in', file, '-noout', '-text']);
  t.regex(text, /Version: 3 \(0x2\)/);
  t.regex(text, /Public-Key: \(3072 bit\)/);
  t.regex(text, /Exponent: 65537 \(0x10001\)/);
  t.is([...text.matchAll(/Signature Algorithm: sha256WithRSAEncryption/g)].length, 2, 'in the TBSCertificate and the outer Certificate');
  t.regex(text, /X509v3 Basic Constraints: critical\s+CA:FALSE/);
  t.regex(text, /X509v3 Key Usage: critical\s+Digital Signature, Non Repudiation\s/);
  t.regex(text, /X509v3 Subject Key Identifier:\s+[0-9A-F]{2}(:[0-9A-F]{2}){19}/);
  t.regex(text, /Subject: CN\s?=\s?Vellum audit trail signing key, O\s?=\s?Vellum Trials Ltd/);
  t.regex(text, /Issuer: CN\s?=\s?Vellum audit trail signing key, O\s?=\s?Vellum Trials Ltd/);
  t.notRegex(text, /Extended Key Usage|Certificate Sign|CA:TRUE/);
});

test('11.10(e) openssl verify -CAfile cert.pem cert.pem says OK; a certificate with one signature bit changed is refused', async (t) => {
  const pem = await issue();
  const good = await opensslVerify(await saved(pem));
  t.true(good.ok, good.output);
  t.regex(good.output, /: OK\s*$/);

  // Flip one bit of the signature (the last bytes of the DER) and check openssl notices.
  const der = new X509Certificate(pem).raw;
  der[der.length - 5]! ^= 0x01;
  const tampered = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`;
  const bad = await opensslVerify(await saved(tampered));
  t.false(bad.ok, bad.output);
  t.regex(bad.output, /signature failure/i);
});

test('11.10(e) node:crypto: the certificate carries the HSM public key, is self-issued, its signature verifies, and it cannot issue certificates', async (t) => {
  const pem = await issue();
  const cert = new X509Certificate(pem);
  const hsmKey = createPublicKey(publicKeyPem);
  t.deepEqual(cert.publicKey.export({ type: 'spki', format: 'der' }), hsmKey.export({ type: 'spki', format: 'der' }));
  t.is(cert.subject, `CN=${COMMON_NAME}\nO=${ORGANIZATION}`);
  t.is(cert.issuer, cert.subject, 'self-issued');
  t.true(cert.verify(hsmKey), 'the signature verifies with the HSM key');
  t.false(cert.ca);
  // checkIssued is OpenSSL's "could this certificate have issued that one": it also
  // wants keyCertSign in the issuer's key usage, which RFC 5280 forbids with cA=false.
  // So the audit key's certificate cannot pass for an issuer of other certificates.
  t.false(cert.checkIssued(cert), 'not accepted as an issuer of certificates, not even of itself');

  // A random positive serial of 16 bytes: 32 hex digits, top bit clear, no leading zero byte.
  t.regex(cert.serialNumber, /^[4-7][0-9A-F]{31}$/);
  t.not(new X509Certificate(await issue()).serialNumber, cert.serialNumber, 'each certificate gets its own serial');

  const from = new Date(cert.validFrom).getTime();
  const to = new Date(cert.validTo).getTime();
  t.true(from <= Date.now(), 'valid already');
  t.is(Math.round((to - from) / 1000), 365 * 86_400 + 60, 'valid from a minute ago for 365 days');
});

test('11.10(e) a name with characters outside PrintableString is kept as UTF-8', async (t) => {
  const pem = await issueSigningCertificate({ publicKeyPem, commonName: 'Prüfpfad_Signatur', days: 1, sign: hsmSigner });
  t.is(new X509Certificate(pem).subject, 'CN=Prüfpfad_Signatur');
});

test('a key that is not RSA of at least 3072 bits is refused with BAD_REQUEST before anything is signed', async (t) => {
  let signed = 0;
  const countingSigner = async (tbs: Buffer) => {
    signed++;
    return hsmSigner(tbs);
  };
  const rsa2048 = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
  for (const [key, message] of [
    [rsa2048, /RSA-2048/],
    [p256, /not ec/],
    ['not a key', /not a PEM public key/],
  ] as const) {
    await t.throwsAsync(issueSigningCertificate({ publicKeyPem: key, commonName: COMMON_NAME, days: 30, sign: countingSigner }), { instanceOf: VellumError, code: 'BAD_REQUEST', message });
  }
  t.is(signed, 0, 'the HSM was never asked to sign');
});

test('an empty or over-long name, or a validity out of range, is refused with BAD_REQUEST', async (t) => {
  const options = { publicKeyPem, commonName: COMMON_NAME, days: 30, sign: hsmSigner };
  await t.throwsAsync(issueSigningCertificate({ ...options, commonName: ' ' }), { instanceOf: VellumError, code: 'BAD_REQUEST' });
  await t.throwsAsync(issueSigningCertificate({ ...options, organization: 'x'.repeat(65) }), { instanceOf: VellumError, code: 'BAD_REQUEST' });
  for (const days of [0, -1, 1.5, 36_501, Number.NaN]) {
    await t.throwsAsync(issueSigningCertificate({ ...options, days }), { instanceOf: VellumError, code: 'BAD_REQUEST' }, String(days));
  }
});

test('a signer that signs with another key is caught: INTERNAL, no certificate', async (t) => {
  const other = generateKeyPairSync('rsa', { modulusLength: 3072 });
  await t.throwsAsync(
    issueSigningCertificate({ publicKeyPem, commonName: COMMON_NAME, days: 30, sign: async (tbs) => signWithKey('sha256', tbs, other.privateKey) }),
    { instanceOf: VellumError, code: 'INTERNAL', message: /does not verify/ },
  );
});

test('the signer\'s failure passes through (HSM_UNAVAILABLE from a closed vault)', async (t) => {
  const closed = await openKeyVault({ library: closedToken.library, tokenLabel: closedToken.tokenLabel, pin: closedToken.pin });
  const key = (await closed.ensureSigningKey('audit')).publicKeyPem;
  await closed.close();
  await t.throwsAsync(issueSigningCertificate({ publicKeyPem: key, commonName: COMMON_NAME, days: 30, sign: (tbs) => closed.sign('audit', tbs) }), {
    instanceOf: VellumError,
    code: 'HSM_UNAVAILABLE',
  });
});
