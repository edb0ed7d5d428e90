// KEK rotation (DESIGN.md invariant 5): the HSM makes the study's next KEK
// version, new writes use it at once, and a background job re-wraps every
// older data key to it. Only the blob's key slot changes (blob-store rewrap);
// no content is re-encrypted, and every version stays readable throughout,
// because a blob keeps its previous slot until the new one is in place.
// The job's progress is in LevelDB, so a restart continues where it stopped;
// each batch of re-wrapped blobs is one audit entry in the batch that records it.

import type { AuditTrail } from '../audit/index.ts';
import type { Database, WriteOp } from '../db/index.ts';
import { isoTime, isVellumError, VellumError } from '../kernel/index.ts';
import type { BlobStore } from './blob-store.ts';
import type { KeyStatus, RotationStatus } from './jobs.ts';
import type { Tree } from './tree.ts';
import { auditBase, type Actor } from './actor.ts';

/** The part of the key vault rotation needs. */
export interface StudyKeys {
  ensureStudyKey(study: string): Promise<{ version: number }>;
  rotateStudyKey(study: string): Promise<{ version: number; previous: number }>;
  studyKeyVersions(study: string): Promise<number[]>;
}

const BATCH = 100;
const LISTED = 100;

interface RotationParts {
  readonly db: Database;
  readonly tree: Tree;
  readonly blobs: BlobStore;
  readonly audit: AuditTrail;
  readonly keys: StudyKeys;
  readonly studyLock: <T>(study: string, task: () => Promise<T>) => Promise<T>;
  readonly log: (message: string, error?: unknown) => void;
}

export function createRotation(parts: RotationParts) {
  const { tree, audit } = parts;
  const jobs = parts.db.section<RotationStatus>('rotations');
  const running = new Map<string, Promise<void>>();
  let stopping = false;

  async function blobsOf(study: string, below?: number): Promise<{ byVersion: Record<string, number>; ids: string[] }> {
    const byVersion: Record<string, number> = {};
    const ids: string[] = [];
    for await (const [blobId, blob] of tree.blobs.entries()) {
      if (blob.study !== study) continue;
      byVersion[blob.kekVersion] = (byVersion[blob.kekVersion] ?? 0) + 1;
      if (below !== undefined && blob.kekVersion < below) ids.push(blobId);
    }
    return { byVersion, ids };
  }

  async function run(initial: RotationStatus): Promise<void> {
    const { study, toVersion } = initial;
    let status = initial;
    let rewrapped = 0;
    // Damaged or shredded blobs can't be re-wrapped: each is recorded (damage as an integrity alert) and passed over.
    const skipped = new Map<string, { code: string; detail: string }>();
    const pending = async () => (await blobsOf(study, toVersion)).ids.filter((id) => !skipped.has(id));
    try {
      // Passes until none is left: a blob whose upload began before the rotation
      // can be committed, under the old KEK, after a pass has listed the study.
      for (let ids = await pending(); ids.length > 0 && !stopping; ids = await pending()) {
        if (status.blobsDone + ids.length > status.blobsTotal) status = { ...status, blobsTotal: status.blobsDone + ids.length };
        for (let i = 0; i < ids.length && !stopping; i += BATCH) {
          const batch: string[] = [];
          for (const blobId of ids.slice(i, i + BATCH)) {
            try {
              await parts.blobs.rewrap({ blobId, study }, toVersion);
              batch.push(blobId);
            } catch (e) {
              if (!isVellumError(e, 'INTEGRITY_FAILURE') && !isVellumError(e, 'CONTENT_SHREDDED')) throw e;
              skipped.set(blobId, { code: e.code, detail: e.message });
              await skip(study, toVersion, blobId, e);
            }
          }
          status = { ...status, blobsSkipped: skipped.size, skipped: [...skipped].slice(0, LISTED).map(([blobId, why]) => ({ blobId, ...why })) };
          if (batch.length === 0) continue;
          await parts.studyLock(study, async () => {
            const ops: WriteOp[] = [];
            for (const blobId of batch) {
              const record = await tree.blobs.get(blobId);
              if (record && record.kekVersion < toVersion) ops.push(tree.blobs.put(blobId, { ...record, kekVersion: toVersion }));
            }
            status = { ...status, blobsDone: Math.min(status.blobsTotal, status.blobsDone + batch.length) };
            await audit.record(
              { actor: null, protocol: 'system', action: 'key.rewrap', outcome: 'success', object: { study }, newValue: { kekVersion: toVersion, blobs: batch.length, blobIds: batch } },
              [...ops, jobs.put(study, status)],
            );
          });
          rewrapped += batch.length;
        }
      }
      if (stopping) return;
      status = { ...status, state: 'done', finishedAt: isoTime(), blobsDone: status.blobsTotal - skipped.size };
      await audit.record(
        {
          actor: null, protocol: 'system', action: 'key.rotate.complete', outcome: skipped.size === 0 ? 'success' : 'failed', object: { study },
          newValue: { kekVersion: toVersion, blobsRewrapped: rewrapped, blobsTotal: status.blobsTotal, blobsSkipped: skipped.size },
          ...(skipped.size === 0 ? {} : { detail: `${skipped.size} blob(s) could not be re-wrapped (damaged or shredded); they stay under older KEK versions.` }),
        },
        [jobs.put(study, status)],
      );
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      parts.log(`Key rotation of study ${study} to KEK v${toVersion} stopped: ${message}`, e);
      status = { ...status, state: 'failed', finishedAt: isoTime(), error: message };
      await audit.record(
        { actor: null, protocol: 'system', action: 'key.rotate.complete', outcome: 'failed', object: { study }, detail: message, newValue: { kekVersion: toVersion, blobsDone: status.blobsDone } },
        [jobs.put(study, status)],
      ).catch((auditError: unknown) => parts.log('Could not record the failed key rotation', auditError));
    }
  }

  /** The newest KEK version a rotation moved the study to, as far as this process knows. */
  const targets = new Map<string, number>();

  /** A blob the job passes over: audited, and damage raised as an integrity alert. */
  async function skip(study: string, toVersion: number, blobId: string, e: VellumError): Promise<void> {
    parts.log(`${e.code === 'INTEGRITY_FAILURE' ? 'INTEGRITY ALERT: ' : ''}key rotation of study ${study} passed over blob ${blobId}: ${e.message}`);
    await audit.record({
      actor: null, protocol: 'system', action: e.code === 'INTEGRITY_FAILURE' ? 'integrity.alert' : 'key.rewrap', outcome: 'failed', object: { study },
      detail: `${e.code}: ${e.message}`, newValue: { blobId, kekVersion: toVersion, found: 'key rotation' },
    });
  }

  function launch(status: RotationStatus): void {
    targets.set(status.study, Math.max(targets.get(status.study) ?? 0, status.toVersion));
    const job = run(status).finally(() => running.delete(status.study));
    running.set(status.study, job);
  }

  return {
    async status(study: string): Promise<KeyStatus> {
      await tree.studyOrThrow(study);
      const versions = await parts.keys.studyKeyVersions(study);
      const { byVersion } = await blobsOf(study);
      return { study, versions, current: versions[versions.length - 1] ?? 0, blobsByVersion: byVersion, rotation: (await jobs.get(study)) ?? null };
    },

    async start(study: string, actor: Actor): Promise<RotationStatus> {
      await tree.studyOrThrow(study);
      if (running.has(study)) throw new VellumError('JOB_RUNNING', `A key rotation of study ${study} is under way.`);
      // Reserve the slot before the first await that could let a second request in.
      let release!: () => void;
      running.set(study, new Promise<void>((resolve) => (release = resolve)));
      try {
        const { version, previous } = await parts.keys.rotateStudyKey(study);
        const { ids } = await blobsOf(study, version);
        const status: RotationStatus = { study, fromVersion: previous, toVersion: version, state: 'running', startedAt: isoTime(), blobsTotal: ids.length, blobsDone: 0 };
        await audit.record(
          { ...auditBase(actor), action: 'key.rotate', outcome: 'success', object: { study }, oldValue: { kekVersion: previous }, newValue: { kekVersion: version, blobsToRewrap: ids.length } },
          [jobs.put(study, status)],
        );
        running.delete(study);
        launch(status);
        return status;
      } catch (e) {
        running.delete(study);
        throw e;
      } finally {
        release();
      }
    },

    /**
     * For a blob just written: the KEK version it must be wrapped under when a
     * rotation started while it was uploading (undefined when it is current).
     */
    staleFor(study: string, kekVersion: number): number | undefined {
      const target = targets.get(study);
      return target !== undefined && kekVersion < target ? target : undefined;
    },

    async resume(): Promise<void> {
      for await (const [, status] of jobs.entries()) {
        targets.set(status.study, Math.max(targets.get(status.study) ?? 0, status.toVersion));
        if (status.state !== 'running' || running.has(status.study)) continue;
        parts.log(`Continuing the key rotation of study ${status.study} to KEK v${status.toVersion} (${status.blobsDone} of ${status.blobsTotal} re-wrapped before the stop).`);
        launch(status);
      }
    },

    async stop(): Promise<void> {
      stopping = true;
      await Promise.allSettled([...running.values()]);
    },
  };
}
