// Scrub: re-verify every blob against its record (every segment authenticates,
// the plaintext SHA-256 matches, the length is right). Damage is reported with
// the versions it affects, raised as an integrity alert in the log and the
// audit trail, and never repaired silently. One scrub at a time; started on
// request (API, `vellum scrub`) or by the configured schedule.

import type { AuditTrail } from '../audit/index.ts';
import { formatVaultPath, isoTime, isVellumError, VellumError } from '../kernel/index.ts';
import { auditBase, type Actor } from './actor.ts';
import type { BlobStore } from './blob-store.ts';
import type { DamagedBlob, ScrubStatus } from './jobs.ts';
import type { Tree } from './tree.ts';

interface ScrubParts {
  readonly tree: Tree;
  readonly blobs: BlobStore;
  readonly audit: AuditTrail;
  readonly log: (message: string, error?: unknown) => void;
}

export function createScrubber(parts: ScrubParts) {
  const { tree, audit } = parts;
  let current: ScrubStatus | null = null;
  let job: Promise<void> | null = null;
  let stopping = false;

  /** The versions whose content is in each damaged blob (one pass over the versions). */
  async function affectedVersions(blobIds: Set<string>): Promise<Map<string, DamagedBlob['versions'][number][]>> {
    const found = new Map<string, DamagedBlob['versions'][number][]>();
    for await (const [, version] of tree.versions.entries()) {
      if (!blobIds.has(version.blobId)) continue;
      const node = await tree.nodes.get(version.nodeId);
      const location = node ? await tree.locate(node) : null;
      const list = found.get(version.blobId) ?? [];
      list.push({ nodeId: version.nodeId, number: version.number, path: location ? formatVaultPath(location.path) : '(unknown)', inTrash: location?.inTrash ?? false });
      found.set(version.blobId, list);
    }
    return found;
  }

  async function run(actor: Actor | null): Promise<void> {
    const damaged: Omit<DamagedBlob, 'versions'>[] = [];
    try {
      for await (const [blobId, record] of tree.blobs.entries()) {
        if (stopping) break;
        const base = current!.bytesDone;
        try {
          // onProgress reports the bytes of this blob verified so far.
          await parts.blobs.verify({ blobId, study: record.study, size: record.size, sha256: record.sha256 }, (bytes) => {
            current = { ...current!, bytesDone: base + Math.min(bytes, record.size) };
          });
        } catch (e) {
          if (!isVellumError(e, 'INTEGRITY_FAILURE') && !isVellumError(e, 'CONTENT_SHREDDED')) throw e;
          damaged.push({ blobId, study: record.study, code: e.code, detail: e.message });
        }
        current = { ...current!, blobsDone: current!.blobsDone + 1, bytesDone: base + record.size };
      }
      const affected = await affectedVersions(new Set(damaged.map((d) => d.blobId)));
      const report: DamagedBlob[] = damaged.map((d) => ({ ...d, versions: affected.get(d.blobId) ?? [] }));
      for (const blob of report) {
        parts.log(`INTEGRITY ALERT: blob ${blob.blobId} of study ${blob.study} failed the scrub (${blob.detail}); affected: ${blob.versions.map((v) => `${v.path} v${v.number}`).join(', ') || 'no version'}.`);
        await audit.record({
          actor: null, protocol: 'system', action: 'integrity.alert', outcome: 'failed', object: { study: blob.study },
          detail: `${blob.code}: ${blob.detail}`, newValue: { blobId: blob.blobId, found: 'scrub', versions: blob.versions },
        });
      }
      const finished: ScrubStatus = { ...current!, state: stopping ? 'failed' : 'done', finishedAt: isoTime(), damaged: report, ...(stopping ? { error: 'Stopped by shutdown.' } : {}) };
      await audit.record({
        ...auditBase(actor), action: 'storage.scrub.complete', outcome: report.length === 0 && !stopping ? 'success' : 'failed',
        newValue: { blobs: finished.blobsDone, bytes: finished.bytesDone, damaged: report.length, stopped: stopping },
      });
      // Reported finished only once its audit entry is written.
      current = finished;
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      parts.log(`Scrub stopped: ${message}`, e);
      current = { ...current!, state: 'failed', finishedAt: isoTime(), error: message };
      await audit.record({ ...auditBase(actor), action: 'storage.scrub.complete', outcome: 'failed', detail: message })
        .catch((auditError: unknown) => parts.log('Could not record the failed scrub', auditError));
    }
  }

  return {
    status: (): ScrubStatus | null => current,

    async start(trigger: 'request' | 'schedule', actor: Actor | null): Promise<ScrubStatus> {
      if (job !== null) throw new VellumError('JOB_RUNNING', 'A scrub is under way; follow its progress instead.');
      let release!: () => void;
      job = new Promise<void>((resolve) => (release = resolve));
      try {
        let blobsTotal = 0;
        let bytesTotal = 0;
        for await (const [, record] of tree.blobs.entries()) {
          blobsTotal++;
          bytesTotal += record.size;
        }
        current = { state: 'running', trigger, startedAt: isoTime(), blobsTotal, blobsDone: 0, bytesTotal, bytesDone: 0, damaged: [] };
        await audit.record({ ...auditBase(actor), action: 'storage.scrub', outcome: 'success', newValue: { trigger, blobs: blobsTotal, bytes: bytesTotal } });
      } catch (e) {
        job = null;
        release();
        throw e;
      }
      const started = current;
      job = run(actor).finally(() => {
        job = null;
        release();
      });
      return started;
    },

    async stop(): Promise<void> {
      stopping = true;
      await job;
    },
  };
}
