// Data keys of a system purpose in the JSON-safe form other modules store:
// the wrapped bytes in base64, the owner implied by the purpose. Used for the
// identity module's TOTP secrets (identity/second-factors.ts SecretKeys).

import { systemKeyOwner, type SystemKeyPurpose, type SystemKeys } from './vault.ts';

export interface StoredSystemKey {
  readonly kekVersion: number;
  readonly mechanism: string;
  /** base64 */
  readonly wrapped: string;
}

export interface SystemSecretKeys {
  newKey(): Promise<{ key: Buffer; stored: StoredSystemKey }>;
  openKey(stored: StoredSystemKey): Promise<Buffer>;
}

export function systemSecretKeys(keys: SystemKeys, purpose: SystemKeyPurpose): SystemSecretKeys {
  const study = systemKeyOwner(purpose);
  return {
    async newKey() {
      const { key, wrapped } = await keys.newSystemDataKey(purpose);
      return { key, stored: { kekVersion: wrapped.kekVersion, mechanism: wrapped.mechanism, wrapped: wrapped.wrapped.toString('base64') } };
    },
    openKey: (stored) => keys.unwrapDataKey({ study, kekVersion: stored.kekVersion, mechanism: stored.mechanism, wrapped: Buffer.from(stored.wrapped, 'base64') }),
  };
}
