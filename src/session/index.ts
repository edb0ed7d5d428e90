// session: the shared layer under every front end (WebDAV, web UI, API, CLI):
// the per-person facade that checks access, calls the vault and audits denials
// and failures, so every front end gets the same checks and the same audit
// entries. Who the person is was settled before, by identity/.

export { openSession, type Session, type OpenFile, type SessionParts, type SessionOptions, type StudyOverview } from './session.ts';
export { lingerThenDrop } from './http-body.ts';
export { openGroupAdmin, type GroupAdmin, type GroupAdminParts, type GroupDirectory, type GroupFacts, type MemberChangeFacts } from './groups.ts';
export { openAuditReview, type AuditReview, type AuditReviewParts, type AuditScope, type AuditExport, type ExportRequest } from './audit-review.ts';
