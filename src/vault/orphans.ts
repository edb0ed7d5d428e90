// Start-up collection (DESIGN.md invariant 2). A crash can leave an upload's
// temporary file, or a blob that was renamed into place but whose metadata
// batch never committed. Neither was acknowledged, so both go; the collection
// is audited with what was removed.

import type { AuditTrail } from '../audit/index.ts';
import type { BlobStore } from './blob-store.ts';
import type { Tree } from './tree.ts';

export interface OrphanReport {
  readonly temporary: readonly string[];
  readonly blobs: readonly string[];
}

/** Names listed in the audit entry; the count is always complete. */
const LISTED = 1000;

export async function collectOrphans(parts: { tree: Tree; blobs: BlobStore; audit: AuditTrail; log: (message: string) => void }): Promise<OrphanReport> {
  // Temporary files are never named by metadata: they go whatever happens next.
  const temporary = await parts.blobs.sweepTemporary();
  const orphans: string[] = [];
  for await (const blobId of parts.blobs.list()) {
    if ((await parts.tree.blobs.get(blobId)) === undefined) orphans.push(blobId);
  }
  if (temporary.length + orphans.length > 0) {
    parts.log(`Start-up collection removed ${temporary.length} temporary file(s) and ${orphans.length} unreferenced blob(s) left by an interrupted write.`);
    await parts.audit.record({
      action: 'storage.orphans.collect', outcome: 'success', actor: null, protocol: 'system',
      detail: 'Left by writes that were never acknowledged (the process stopped before their metadata was committed).',
      newValue: {
        temporaryFiles: temporary.length, blobs: orphans.length,
        temporaryNames: temporary.slice(0, LISTED), blobIds: orphans.slice(0, LISTED),
      },
    });
  }
  // Audited first, so no blob disappears without a record of it.
  for (const blobId of orphans) await parts.blobs.remove(blobId);
  return { temporary, blobs: orphans };
}
