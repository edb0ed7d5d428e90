import type { ComponentStatus } from '../kernel/index.ts';

export interface HsmSettings {
  /** Path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  readonly library: string;
  /** The token is found by label (slot ids move). */
  readonly tokenLabel: string;
  /** User PIN. */
  readonly pin: string;
  /** Sessions kept open for concurrent operations (one operation per session). */
  readonly sessions?: number;
}

/**
 * Keys of the appliance itself rather than of a study: one KEK per purpose,
 * named `vellum:kek:__<purpose>__:v<n>` (not a study id, so no study can collide).
 */
export const SYSTEM_KEY_PURPOSES = ['identity'] as const;
export type SystemKeyPurpose = (typeof SYSTEM_KEY_PURPOSES)[number];

/** The WrappedDataKey.study of a system key's data keys. */
export function systemKeyOwner(purpose: SystemKeyPurpose): string {
  return `__${purpose}__`;
}

/** A DEK as stored: which KEK (study + version) wrapped it, and the wrapped bytes. */
export interface WrappedDataKey {
  readonly study: string;
  readonly kekVersion: number;
  /** Wrapping mechanism name, recorded so formats can evolve (e.g. "AES_KEY_WRAP_PAD"). */
  readonly mechanism: string;
  readonly wrapped: Buffer;
}

export interface DataKey {
  /** 32 bytes of key material for AES-256-GCM. The caller must not log or persist it. */
  readonly key: Buffer;
  readonly wrapped: WrappedDataKey;
}

export interface KeyVault {
  /**
   * Makes sure the study has a KEK, creating version 1 inside the HSM if it has none.
   * Returns the current (highest) version. Idempotent.
   * @throws VellumError HSM_UNAVAILABLE when the token cannot be used.
   */
  ensureStudyKey(study: string): Promise<{ version: number }>;

  /**
   * A fresh random 256-bit DEK, wrapped by the study's current KEK.
   * @throws VellumError NOT_FOUND when the study has no KEK; HSM_UNAVAILABLE.
   */
  newDataKey(study: string): Promise<DataKey>;

  /**
   * Unwraps a stored DEK (of a study, or of a system key). The result may come from a short-lived in-memory cache.
   * @throws VellumError NOT_FOUND when the KEK version does not exist;
   *   INTEGRITY_FAILURE when the wrapped bytes do not unwrap (tampered or wrong KEK);
   *   HSM_UNAVAILABLE.
   */
  unwrapDataKey(wrapped: WrappedDataKey): Promise<Buffer>;

  /**
   * Creates the study's next KEK version inside the HSM (same template as v1:
   * sensitive, never extractable, wrap/unwrap only); newDataKey uses it from
   * then on. Older versions stay, so data keys they wrapped still unwrap.
   * Serialised with every other KEK creation: concurrent calls make one version each.
   * @throws VellumError NOT_FOUND when the study has no KEK; BAD_REQUEST for a
   *   malformed study id; HSM_UNAVAILABLE.
   */
  rotateStudyKey(study: string): Promise<{ version: number; previous: number }>;

  /**
   * The study's KEK versions present on the token, ascending ([] when none).
   * @throws VellumError BAD_REQUEST for a malformed study id; HSM_UNAVAILABLE.
   */
  studyKeyVersions(study: string): Promise<number[]>;

  /**
   * Re-wraps a stored DEK under another KEK version of the same study. The DEK
   * is unwrapped inside the HSM into a short-lived session object, wrapped
   * again there and destroyed: its bytes never reach this process. The DEK
   * cache is neither consulted nor filled.
   * @throws VellumError NOT_FOUND when the target KEK version does not exist;
   *   INTEGRITY_FAILURE when the wrapped bytes do not unwrap (tampered, another
   *   KEK, or their own KEK version does not exist, so the caller can try
   *   another copy); HSM_UNAVAILABLE.
   */
  rewrapDataKey(wrapped: WrappedDataKey, toVersion: number): Promise<WrappedDataKey>;

  /**
   * Drops (and zeroes) the cached unwrapped form of this DEK, if any, e.g.
   * when its blob is crypto-shredded. Never throws.
   */
  forgetDataKey(wrapped: WrappedDataKey): void;

  /** Token present, logged in, and a KEK round trip works. Never throws. */
  status(): Promise<ComponentStatus>;

  /** Logs out, closes sessions, finalizes the module. Idempotent. */
  close(): Promise<void>;
}

/** Data keys of the appliance's own secrets (opened again with KeyVault.unwrapDataKey). */
export interface SystemKeys {
  /**
   * A fresh random 256-bit DEK wrapped by the system KEK for this purpose
   * (created inside the HSM on first use, same template as a study KEK), e.g.
   * for the TOTP secrets of the identity module.
   * @throws VellumError HSM_UNAVAILABLE.
   */
  newSystemDataKey(purpose: SystemKeyPurpose): Promise<DataKey>;
  /** As KeyVault.unwrapDataKey. */
  unwrapDataKey(wrapped: WrappedDataKey): Promise<Buffer>;
}

/**
 * What the appliance signs with a key pair of its own: `audit` signs the audit
 * trail's checkpoints (and its own X.509 certificate).
 */
export const SIGNING_KEY_PURPOSES = ['audit'] as const;
export type SigningKeyPurpose = (typeof SIGNING_KEY_PURPOSES)[number];

/**
 * RSA-3072 signing key pairs kept in the HSM, one per purpose, labelled
 * `vellum:sign:<purpose>:v1`. The private key is sensitive, never extractable
 * and can only sign; the public key can only verify.
 */
export interface SigningKeys {
  /**
   * Finds the purpose's key pair on the token, or generates it there (RSA-3072,
   * e = 65537). Serialised with every other key creation on the token:
   * concurrent calls make one pair. `publicKeyPem` is the SPKI PEM of the key
   * that signs; `created` says whether this call generated it.
   * @throws VellumError BAD_REQUEST for an unknown purpose; HSM_UNAVAILABLE.
   */
  ensureSigningKey(purpose: SigningKeyPurpose): Promise<{ publicKeyPem: string; created: boolean; label: string }>;

  /**
   * RSASSA-PKCS1-v1_5 with SHA-256 (CKM_SHA256_RSA_PKCS) over data, computed
   * inside the HSM; data is hashed there too.
   * @throws VellumError NOT_FOUND when the purpose's key pair does not exist
   *   (ensureSigningKey first); BAD_REQUEST for an unknown purpose or data that
   *   is not a Buffer; HSM_UNAVAILABLE.
   */
  sign(purpose: SigningKeyPurpose, data: Buffer): Promise<Buffer>;
}
