// A comparable picture of a study's state, read straight from the vault (not
// through WebDAV): every live path with its kind, node id, version count and
// current content digest, plus the trash. Two equal snapshots mean no request
// in between created, changed, moved or deleted anything.

import type { VaultPath } from '../../src/kernel/index.ts';
import type { Vault } from '../../src/vault/index.ts';

export interface SnapshotEntry {
  readonly path: string;
  readonly kind: 'folder' | 'file';
  readonly id: string;
  readonly versions: number;
  readonly sha256: string | null;
}

export interface StudySnapshot {
  readonly entries: readonly SnapshotEntry[];
  /** Ids of the nodes in the study's trash. */
  readonly trash: readonly string[];
}

export async function snapshotStudy(vault: Vault, study: string): Promise<StudySnapshot> {
  const entries: SnapshotEntry[] = [];
  const walk = async (path: VaultPath): Promise<void> => {
    for (const node of await vault.list(path)) {
      const child: VaultPath = { study, names: [...path.names, node.name] };
      entries.push({
        path: `/${child.names.join('/')}`,
        kind: node.kind,
        id: node.id,
        versions: node.versionCount,
        sha256: node.currentVersion?.sha256 ?? null,
      });
      if (node.kind === 'folder') await walk(child);
    }
  };
  await walk({ study, names: [] });
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const trash = (await vault.trash(study)).map((node) => node.id).sort();
  return { entries, trash };
}
