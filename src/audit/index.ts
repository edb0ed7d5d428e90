// audit: the append-only, hash-chained audit trail (DESIGN.md invariant 6).
// Owns the entry format, its canonical encoding and hash, group-committed
// appends in the same batch as the change described, the Merkle tree over the
// entries, signed checkpoints, exports and their verification.
// Nothing here edits or deletes an entry.

export { openAuditTrail, CHECKPOINT_SECTION, DEFAULT_CHECKPOINTS, type AuditTrail, type AuditTrailOptions, type CheckpointSchedule, type ChainReport, type VerifyOptions } from './trail.ts';
export { TREE_SECTION, treeKey } from './tree.ts';
export { META_SECTION, certificateFacts, type StoredCertificate } from './certificates.ts';
export { brokenAt, verificationEvent, type StoredCheckpoint } from './verify-store.ts';
export { canonicalJson, chainHash, entryBody, inCanonicalOrder, entryHash, GENESIS_HASH, type AuditEntry, type AuditEntryBody, type AuditEvent, type AuditActor, type AuditObject, type Outcome } from './entry.ts';
export { checkpointSignatureValid, checkpointStatement, parseCheckpointStatement, signCheckpoint, type CheckpointFields, type CheckpointSigner, type SignedCheckpoint } from './checkpoint.ts';
export { exportTrail, filterTime, type AuditExportSource, type ExportFilter, type ExportOptions } from './export.ts';
export { verifyExport, type ExportReport, type VerifyOptions as ExportVerifyOptions } from './export-verify.ts';
export type { ExportFormat } from './export-format.ts';
