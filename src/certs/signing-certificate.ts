// The X.509 certificate of a signing key held in the HSM (the audit trail's):
// self-signed, so an inspector can check a checkpoint's signature with the
// certificate alone. forge's cert.sign wants the private key in this process;
// here the DER TBSCertificate goes to an asynchronous signer (the HSM) instead,
// and the certificate is put together from forge's parts around its signature.

import { X509Certificate, createPublicKey, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { VellumError } from '../kernel/index.ts';

export interface SigningCertificateOptions {
  /** SPKI PEM of the HSM key: RSA, at least 3072 bits. */
  readonly publicKeyPem: string;
  /** e.g. "Vellum audit trail signing key". */
  readonly commonName: string;
  readonly organization?: string;
  /** Validity from now, in days. */
  readonly days: number;
  /**
   * Signs the DER TBSCertificate with RSASSA-PKCS1-v1_5 / SHA-256, hashing it
   * itself (the HSM does it: CKM_SHA256_RSA_PKCS). Its errors pass through.
   */
  readonly sign: (tbsCertificateDer: Buffer) => Promise<Buffer>;
}

const MIN_RSA_BITS = 3072;
/** Longest validity accepted: 100 years. */
const MAX_DAYS = 36_500;
/** X.500 attributes are at most 64 characters (RFC 5280 ub-common-name, ub-organization-name). */
const MAX_NAME_LENGTH = 64;
const SHA256_WITH_RSA = forge.pki.oids.sha256WithRSAEncryption!;

/** What forge has but its type definitions leave out. */
const forgeX509 = forge.pki as unknown as { getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1 };

/**
 * A self-signed X.509 v3 certificate (PEM) for the key: issuer = subject,
 * sha256WithRSAEncryption, a random positive 16-byte serial, valid from a
 * minute ago for `days`, basicConstraints cA=false and keyUsage
 * digitalSignature + nonRepudiation (both critical), subjectKeyIdentifier.
 * The finished certificate is checked against the key before it is returned.
 * @throws VellumError BAD_REQUEST for a key that is not RSA of at least 3072
 *   bits, an empty or over-long name, or days out of range; INTERNAL when the
 *   signature does not verify with the key (the signer used another key);
 *   whatever the signer throws (e.g. HSM_UNAVAILABLE, NOT_FOUND).
 */
export async function issueSigningCertificate(options: SigningCertificateOptions): Promise<string> {
  const publicKey = signingPublicKey(options.publicKeyPem);
  const commonName = checkName('commonName', options.commonName);
  const organization = options.organization === undefined ? undefined : checkName('organization', options.organization);
  if (!Number.isInteger(options.days) || options.days < 1 || options.days > MAX_DAYS) {
    throw new VellumError('BAD_REQUEST', `A certificate's validity must be 1 to ${MAX_DAYS} days, not ${String(options.days)}.`);
  }

  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(options.publicKeyPem);
  cert.serialNumber = positiveSerial().toString('hex');
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 60_000);
  cert.validity.notAfter = new Date(now + options.days * 86_400_000);
  const name: forge.pki.CertificateField[] = [utf8Attribute('commonName', commonName)];
  if (organization !== undefined) name.push(utf8Attribute('organizationName', organization));
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', critical: true, cA: false },
    { name: 'keyUsage', critical: true, digitalSignature: true, nonRepudiation: true },
    { name: 'subjectKeyIdentifier' },
  ]);

  // What cert.sign would do, with the signature made elsewhere: the algorithm
  // goes into the TBSCertificate (siginfo) and the outer Certificate (signatureOid).
  cert.siginfo.algorithmOid = SHA256_WITH_RSA;
  cert.signatureOid = SHA256_WITH_RSA;
  const tbs = forgeX509.getTBSCertificate(cert);
  const signature = await options.sign(Buffer.from(forge.asn1.toDer(tbs).getBytes(), 'binary'));
  if (!Buffer.isBuffer(signature)) throw new VellumError('INTERNAL', 'The certificate signer returned no signature bytes.');
  // certificateToAsn1 writes the cached tbsCertificate, signatureOid (+ signatureParameters) and signature.
  cert.tbsCertificate = tbs;
  cert.signature = signature.toString('binary');
  const pem = forge.pki.certificateToPem(cert);

  if (!new X509Certificate(pem).verify(publicKey)) {
    throw new VellumError('INTERNAL', 'The certificate\'s signature does not verify with the key it certifies; the signer used another key.');
  }
  return pem;
}

/** The key as node:crypto sees it, refused unless RSA (PKCS#1 v1.5 kind) of at least 3072 bits. */
function signingPublicKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (e) {
    throw new VellumError('BAD_REQUEST', 'The signing key is not a PEM public key.', { cause: e });
  }
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (key.asymmetricKeyType !== 'rsa' || bits === undefined || bits < MIN_RSA_BITS) {
    const what = key.asymmetricKeyType === 'rsa' ? `RSA-${bits}` : String(key.asymmetricKeyType);
    throw new VellumError('BAD_REQUEST', `A signing certificate needs an RSA key of at least ${MIN_RSA_BITS} bits, not ${what}.`);
  }
  return key;
}

function checkName(field: string, value: string): string {
  if (typeof value !== 'string' || value.trim() === '' || value.length > MAX_NAME_LENGTH) {
    throw new VellumError('BAD_REQUEST', `The certificate's ${field} must be 1 to ${MAX_NAME_LENGTH} characters.`);
  }
  return value;
}

/** A name attribute as a UTF8String (RFC 5280 4.1.2.4); forge would write a PrintableString. */
function utf8Attribute(name: string, value: string): forge.pki.CertificateField {
  // forge's types call the tag a Class; it is the ASN.1 type number.
  return { name, value, valueTagClass: forge.asn1.Type.UTF8 as unknown as forge.asn1.Class };
}

/** 16 random bytes read as a positive, minimally encoded DER INTEGER: top bits 01. */
function positiveSerial(): Buffer {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x3f) | 0x40;
  return serial;
}
