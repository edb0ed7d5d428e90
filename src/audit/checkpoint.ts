// Signed checkpoints: now and then the trail states its size, the Merkle root
// over its entries, its chain head and the time, and the HSM signs that
// statement. The statement is one line of ASCII so that an inspector can
// check the signature with `openssl dgst -sha256 -verify` and read the values
// out of it with a shell.
//
//   vellum-audit-checkpoint/1 log=<logId> size=<n> time=<ISO-8601 UTC> root=<hex> head=<hex>
//
// Signature: RSASSA-PKCS1-v1_5 with SHA-256 (PKCS#11 CKM_SHA256_RSA_PKCS) by
// an RSA-3072 key held in the HSM, over the statement's bytes (no newline).

import { X509Certificate, createVerify } from 'node:crypto';

export interface CheckpointSigner {
  /** The public half of the HSM-held signing key, SPKI PEM. */
  readonly publicKeyPem: string;
  /**
   * RSASSA-PKCS1-v1_5 / SHA-256 over `data`, made inside the HSM.
   * @throws VellumError HSM_UNAVAILABLE.
   */
  sign(data: Buffer): Promise<Buffer>;
  /**
   * A new self-signed X.509 certificate for this key (PEM), signed through sign().
   * @throws VellumError HSM_UNAVAILABLE.
   */
  issueCertificate(): Promise<string>;
}

export interface SignedCheckpoint {
  readonly logId: string;
  /** Entries covered: seq 1..size. */
  readonly size: number;
  /** UTC, ISO-8601 with milliseconds. */
  readonly time: string;
  /** RFC 6962 root over the entries' hashes (hex). */
  readonly root: string;
  /** Hash of entry `size` (the genesis hash for size 0). */
  readonly head: string;
  /** The signed line, exactly. */
  readonly statement: string;
  /** base64 */
  readonly signature: string;
}

export type CheckpointFields = Omit<SignedCheckpoint, 'statement' | 'signature'>;

const STATEMENT = /^vellum-audit-checkpoint\/1 log=([0-9a-f]{32}) size=(0|[1-9][0-9]{0,15}) time=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) root=([0-9a-f]{64}) head=([0-9a-f]{64})$/;

export function checkpointStatement(fields: CheckpointFields): string {
  return `vellum-audit-checkpoint/1 log=${fields.logId} size=${fields.size} time=${fields.time} root=${fields.root} head=${fields.head}`;
}

/** The fields of a statement, or null when it is not one (the values a verifier must use are the signed ones). */
export function parseCheckpointStatement(statement: string): CheckpointFields | null {
  const match = STATEMENT.exec(statement);
  if (!match) return null;
  const size = Number(match[2]);
  if (!Number.isSafeInteger(size)) return null;
  return { logId: match[1]!, size, time: match[3]!, root: match[4]!, head: match[5]! };
}

export async function signCheckpoint(fields: CheckpointFields, signer: CheckpointSigner): Promise<SignedCheckpoint> {
  const statement = checkpointStatement(fields);
  const signature = await signer.sign(Buffer.from(statement, 'ascii'));
  return { ...fields, statement, signature: signature.toString('base64') };
}

/** Does the signature over the statement verify with the certificate's key, and do the fields match the statement? Never throws. */
export function checkpointSignatureValid(checkpoint: SignedCheckpoint, certificatePem: string): boolean {
  try {
    const parsed = parseCheckpointStatement(checkpoint.statement);
    if (parsed === null || checkpointStatement({ ...checkpoint }) !== checkpoint.statement) return false;
    const key = new X509Certificate(certificatePem).publicKey;
    return createVerify('sha256').update(checkpoint.statement, 'ascii').verify(key, Buffer.from(checkpoint.signature, 'base64'));
  } catch {
    return false;
  }
}
