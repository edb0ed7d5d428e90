// The trail's identity and signing certificates, kept in section `audit-meta`:
// the log id (made at first open) and every certificate that ever verified a
// checkpoint, keyed by its SHA-256 fingerprint, so that old checkpoints still
// verify after the signing key is rotated.

import { createHash, createPublicKey, randomBytes, X509Certificate } from 'node:crypto';
import { VellumError } from '../kernel/index.ts';
import type { Database, Section } from '../db/index.ts';

export const META_SECTION = 'audit-meta';
const LOG_ID_KEY = 'log-id';
const CERTIFICATE_PREFIX = 'certificate:';

export interface StoredCertificate {
  /** SHA-256 of the DER certificate, lowercase hex. */
  readonly fingerprint: string;
  readonly pem: string;
}

export interface CertificateFacts extends StoredCertificate {
  readonly subject: string;
  /** UTC, ISO-8601. */
  readonly notAfter: string;
}

export type MetaSection = Section<string | StoredCertificate>;

export function certificateKey(fingerprint: string): string {
  return `${CERTIFICATE_PREFIX}${fingerprint}`;
}

/**
 * The fingerprint, subject and end of validity of a PEM certificate.
 * @throws VellumError INTERNAL when it is not one.
 */
export function certificateFacts(pem: string): CertificateFacts {
  try {
    const cert = new X509Certificate(pem);
    return {
      fingerprint: createHash('sha256').update(cert.raw).digest('hex'),
      pem,
      subject: cert.subject.replaceAll('\n', ', '),
      notAfter: new Date(cert.validTo).toISOString(),
    };
  } catch (e) {
    throw new VellumError('INTERNAL', `The audit signing certificate cannot be read: ${(e as Error).message}`, { cause: e });
  }
}

/** Does the certificate carry this public key (SPKI PEM)? Never throws. */
export function certifiesKey(certificatePem: string, publicKeyPem: string): boolean {
  try {
    const certified = new X509Certificate(certificatePem).publicKey.export({ type: 'spki', format: 'der' });
    return certified.equals(createPublicKey(publicKeyPem).export({ type: 'spki', format: 'der' }));
  } catch {
    return false;
  }
}

/** The log id, made (32 hex) and stored on first use. */
export async function logIdOf(db: Database, meta: MetaSection): Promise<string> {
  const stored = await meta.get(LOG_ID_KEY);
  if (typeof stored === 'string') return stored;
  const made = randomBytes(16).toString('hex');
  await db.write([meta.put(LOG_ID_KEY, made)]);
  return made;
}

/** Every certificate stored, by fingerprint. */
export async function storedCertificates(meta: MetaSection): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for await (const [, value] of meta.withPrefix(CERTIFICATE_PREFIX)) {
    if (typeof value === 'object' && value !== null && typeof value.pem === 'string') found.set(value.fingerprint, value.pem);
  }
  return found;
}
