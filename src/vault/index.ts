// vault: studies, folders, files and their immutable versions (DESIGN.md
// invariants 2-4). Owns the metadata sections (studies, nodes, children,
// versions, trash), the encrypted blob format and the blob files on disk.
// Every change and its audit entry are written in one synced batch. Also owns
// WebDAV locks (the `locks` section): every change checks them (locks.ts).

export { createVault, type Vault, type Actor, type WriteResult, type VaultParts, type NodeView, type VersionView, type TransferResult, type LockRequest, type LockTimeoutBounds, type NewStudy } from './vault.ts';
export { DEFAULT_LOCK_TIMEOUT } from './locks.ts';
export type { JobState, RotationStatus, KeyStatus, ScrubStatus, DamagedBlob } from './jobs.ts';
export { PROPERTY_LIMITS, type PropertyMap, type PropertyOperation, type StorageUsage } from './properties.ts';
export { openBlobStore, type BlobStore, type ByteRange } from './blob-store.ts';
export type { StudyRecord, StoredAccessRules, NodeRecord, VersionRecord, RoleBinding, PersonRef, BlobRecord, VersionOrigin, LockRecord } from './records.ts';
