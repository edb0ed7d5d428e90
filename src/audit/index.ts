// audit: the append-only, hash-chained audit trail (DESIGN.md invariant 6).
// Owns the entry format, its canonical encoding and hash, group-committed
// appends in the same batch as the change described, and chain verification.
// Nothing here edits or deletes an entry.

export { openAuditTrail, type AuditTrail, type ChainReport } from './trail.ts';
export { canonicalJson, entryHash, GENESIS_HASH, type AuditEntry, type AuditEvent, type AuditActor, type AuditObject, type Outcome } from './entry.ts';
