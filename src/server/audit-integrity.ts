// What joins the audit trail to the rest of the appliance: the checkpoint
// signer (the RSA key in the HSM from keys/, its certificate from certs/, so
// audit/ needs neither), the verification of the whole trail at every start
// (a broken trail raises the integrity alert, is audited and shows in the
// health report, while the appliance goes on serving and recording), and the
// offline check of a stopped appliance's store for `vellum audit verify --db`.

import { hostname } from 'node:os';
import { brokenAt, openAuditTrail, verificationEvent, type AuditTrail, type ChainReport, type CheckpointSigner } from '../audit/index.ts';
import { issueSigningCertificate } from '../certs/index.ts';
import { openDatabase } from '../db/index.ts';
import type { SigningKeys } from '../keys/index.ts';
import type { ComponentStatus } from '../kernel/index.ts';

/** Ten years: the certificate names the key; the key, not the certificate's dates, is what checkpoints rely on. */
const CERTIFICATE_DAYS = 3650;

export function auditSigner(keys: SigningKeys, publicKeyPem: string): CheckpointSigner {
  const sign = (data: Buffer) => keys.sign('audit', data);
  return {
    publicKeyPem,
    sign,
    issueCertificate: () => issueSigningCertificate({
      publicKeyPem, commonName: `Vellum audit trail signing key (${hostname()})`.slice(0, 64), organization: 'Vellum appliance', days: CERTIFICATE_DAYS, sign,
    }),
  };
}

export interface IntegrityWatch {
  /** The trail's health: its head, the last signed checkpoint, and the last verification. */
  status(): ComponentStatus;
  /** Resolves when the verification under way (if any) has ended. */
  settled(): Promise<void>;
}

export interface IntegrityWatchParts {
  readonly audit: AuditTrail;
  /** A break was found: raise the integrity alert (log, webhook). */
  readonly onIntegrityFailure: (problem: string) => void;
  readonly log: { info(message: string): void; error(message: string, error?: unknown): void };
}

/**
 * Verifies the whole trail now, beside the serving (a large trail takes seconds),
 * and records the outcome as an `audit.verify` entry of the system.
 */
export function verifyTrailAtStart(parts: IntegrityWatchParts): IntegrityWatch {
  const { audit, log } = parts;
  let last: { report: ChainReport; at: string } | null = null;
  let failure: string | null = null;
  const started = Date.now();
  const running = (async () => {
    try {
      const report = await audit.verify();
      last = { report, at: new Date().toISOString() };
      const broken = brokenAt(report);
      if (broken) {
        log.error(`AUDIT TRAIL INTEGRITY: ${broken}`);
        parts.onIntegrityFailure(broken);
      } else {
        log.info(`audit trail verified at start: ${report.checked} entries, ${report.checkpoints} signed checkpoints (${((Date.now() - started) / 1000).toFixed(1)} s)`);
      }
      await audit.record({ protocol: 'system', ...verificationEvent(report, { when: 'start' }) });
    } catch (e) {
      failure = (e as Error).message;
      log.error('the audit trail could not be verified at start', e);
    }
  })();

  return {
    status() {
      const head = audit.head();
      const checkpoint = audit.latestCheckpoint();
      const where = `${head.seq} entries, last signed checkpoint ${checkpoint ? `${checkpoint.size} at ${checkpoint.time}` : 'none yet'}`;
      if (failure !== null) return { ok: false, detail: `${where}; verification failed to run: ${failure}` };
      if (last === null) return { ok: true, detail: `${where}; verifying the trail` };
      const { report, at } = last;
      if (!report.ok) return { ok: false, detail: `${where}; BROKEN at ${brokenAt(report)} (found ${at})` };
      return { ok: true, detail: `${where}; verified ${report.checked} entries at ${at}` };
    },
    settled: () => running,
  };
}

/**
 * `vellum audit verify --db` with the appliance stopped: opens its LevelDB
 * (STORE_UNAVAILABLE naming the lock while the appliance holds it) and checks
 * the whole trail. A trail written before the Merkle tree existed gets its tree
 * built first; nothing else is written.
 */
export async function verifyAuditStore(location: string, onProgress?: (checked: number, total: number) => void): Promise<ChainReport> {
  const db = await openDatabase(location);
  try {
    const audit = await openAuditTrail(db);
    try {
      return await audit.verify(onProgress ? { onProgress } : {});
    } finally {
      await audit.close();
    }
  } finally {
    await db.close();
  }
}
