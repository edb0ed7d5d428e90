// keys: the KeyVault. Owns every use of the HSM over PKCS#11 (the only importer
// of `pkcs11js`): per-study key-encryption keys (KEKs) that never leave the
// HSM, fresh data keys (DEKs) wrapped by them, and the token's health.
//
// KEKs are AES-256 token objects, CKA_SENSITIVE=true, CKA_EXTRACTABLE=false,
// usable only to wrap and unwrap. A DEK leaves this module only as plaintext
// bytes for the caller's AES-GCM and as a wrapped blob for storage; it is
// never logged and never persisted unwrapped.
//
// Signing keys: one RSA-3072 key pair per purpose (the audit trail's
// checkpoints), generated on the token; the private half signs inside the HSM
// and never leaves it.

export type { KeyVault, HsmSettings, WrappedDataKey, DataKey, SystemKeyPurpose, SystemKeys, SigningKeyPurpose, SigningKeys } from './vault.ts';
export { SYSTEM_KEY_PURPOSES, SIGNING_KEY_PURPOSES, systemKeyOwner } from './vault.ts';
export { openKeyVault, signingKeyLabel } from './pkcs11-vault.ts';
export { systemSecretKeys, type SystemSecretKeys, type StoredSystemKey } from './system-keys.ts';
export type { KeyVaultOptions } from './pkcs11-vault.ts';
