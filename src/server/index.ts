// server: the composition root. Builds every part in dependency order, serves
// one HTTPS port (TLS 1.2+; a self-signed certificate at first start when none
// is configured) and an optional plain-HTTP port on loopback, routes /dav to the
// WebDAV front end and the rest to the web app, and shuts down in reverse.
// Audits the configuration at start when it changed (config-record.ts).

export { startAppliance, SYSTEM_PRINCIPAL, PRODUCT, DAV_MOUNT, type Appliance, type Logger } from './appliance.ts';
// The shapes the REST API answers with for long-running jobs, for its clients (the CLI).
export type { KeyStatus, RotationStatus, ScrubStatus } from '../vault/index.ts';
// Offline verification of audit exports, for `vellum audit verify` (no appliance needed).
export { brokenAt, verifyExport, type ExportReport, type ChainReport as StoreReport } from '../audit/index.ts';
export { verifyAuditStore } from './audit-integrity.ts';
