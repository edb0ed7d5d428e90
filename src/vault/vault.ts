// The vault: studies, folders, files and their immutable versions. Every change
// is one synced batch holding the new metadata and its audit entry. A file's
// bytes live in encrypted blobs; an overwrite adds a version, a delete leaves a
// tombstone that can be undone, a restore adds a version with older content,
// a move keeps the node (and so its history), a copy shares the blob within a
// study and re-encrypts it across studies.

import type { Readable } from 'node:stream';
import type { AuditTrail } from '../audit/index.ts';
import type { Database, WriteOp } from '../db/index.ts';
import {
  checkName, formatVaultPath, isoTime, newId, VellumError, type VaultPath,
} from '../kernel/index.ts';
import type { BlobStore, ByteRange, StoredBlob } from './blob-store.ts';
import type { KeyStatus, RotationStatus, ScrubStatus } from './jobs.ts';
import { auditBase, personRef, type Actor } from './actor.ts';
import { DEFAULT_LOCK_TIMEOUT, lockCovers, lockRootPath, lockSummary, LockTable, type LockRequest, type LockTimeoutBounds, type Touch } from './locks.ts';
import { KeyedMutex } from './mutex.ts';
import { openProperties, storageUsageOf, type PropertyMap, type PropertyOperation, type StorageUsage } from './properties.ts';
import { collectOrphans, type OrphanReport } from './orphans.ts';
import type { BlobRecord, LockRecord, NodeRecord, RoleBinding, StoredAccessRules, StudyRecord, VersionOrigin, VersionRecord } from './records.ts';
import { createRotation, type StudyKeys } from './rotation.ts';
import { createScrubber } from './scrub.ts';
import { childKey, openTree, trashKey, versionKey, type Location } from './tree.ts';

export type { Actor, LockRequest, LockTimeoutBounds };

export interface WriteResult {
  readonly node: NodeRecord;
  readonly version: VersionRecord;
  /** true when the file did not exist before. */
  readonly created: boolean;
}

/** A node with its path; inTrash when it or a folder above it is deleted. */
export interface NodeView extends NodeRecord {
  readonly path: string;
  readonly inTrash: boolean;
}

export interface VersionView extends VersionRecord {
  readonly current: boolean;
  /** KEK version the content's data key is wrapped under now (rotation moves it). */
  readonly keyVersion: number;
}

export interface TransferResult {
  readonly node: NodeRecord;
  /** true when something already at the destination was replaced. */
  readonly replaced: boolean;
}

/** What a new study is made with. */
export interface NewStudy {
  readonly id: string;
  readonly title: string;
  readonly bindings: readonly RoleBinding[];
  /** Folders where changes need a reason (StudyRecord.changeReasonFolders); none when absent. */
  readonly changeReasonFolders?: readonly string[];
  /** Who may do what where (StudyRecord.accessRules), already checked by access/. */
  readonly accessRules?: StoredAccessRules;
}

/** Most folder rules a study may have. */
const MAX_REASON_FOLDERS = 100;

/**
 * Folder rules in one form: "/" or "/A/B" with valid, NFC-normalised names,
 * no trailing slash, no duplicates. @throws BAD_REQUEST, PATH_INVALID
 */
export function normaliseReasonFolders(folders: readonly string[]): string[] {
  if (folders.length > MAX_REASON_FOLDERS) throw new VellumError('BAD_REQUEST', `A study may have at most ${MAX_REASON_FOLDERS} folder rules.`);
  const result = new Set<string>();
  for (const folder of folders) {
    if (typeof folder !== 'string' || !folder.startsWith('/')) throw new VellumError('BAD_REQUEST', 'A folder rule is a path in the study that starts with "/", e.g. "/Regulatory" ("/" is the whole study).');
    const names = folder.split('/').filter((name) => name !== '').map(checkName);
    result.add('/' + names.join('/'));
  }
  return [...result].sort();
}

export interface Vault {
  /** @throws VellumError STUDY_EXISTS, HSM_UNAVAILABLE, STORE_UNAVAILABLE, BAD_REQUEST/PATH_INVALID (folder rules) */
  createStudy(input: NewStudy, actor: Actor): Promise<StudyRecord>;
  /** Replaces the study's folder rules for reasons for change; audited with the old and new rules. @throws NOT_FOUND, BAD_REQUEST, PATH_INVALID */
  setChangeReasonFolders(study: string, folders: readonly string[], actor: Actor): Promise<StudyRecord>;
  /** Replaces the study's role bindings; audited as `study.bindings` with the old and new bindings. @throws NOT_FOUND */
  setBindings(study: string, bindings: readonly RoleBinding[], actor: Actor): Promise<StudyRecord>;
  /**
   * Replaces the study's access rules; audited as `study.access-rules` with
   * the old and new rules (`inForce` as the old ones when the study has none
   * stored). @throws NOT_FOUND
   */
  setAccessRules(study: string, rules: StoredAccessRules, actor: Actor, inForce: StoredAccessRules): Promise<StudyRecord>;
  getStudy(id: string): Promise<StudyRecord | undefined>;
  listStudies(): Promise<StudyRecord[]>;
  /** @throws VellumError NOT_FOUND (also for the root, which is no node) */
  stat(path: VaultPath): Promise<NodeRecord>;
  /** Live children of a folder. @throws VellumError NOT_FOUND, NOT_A_FOLDER */
  list(path: VaultPath): Promise<NodeRecord[]>;
  /** @throws VellumError ALREADY_EXISTS, PARENT_MISSING, NOT_A_FOLDER */
  makeFolder(path: VaultPath, actor: Actor): Promise<NodeRecord>;
  /**
   * Stores `body` as a new version of the file at `path` (creating the file if needed).
   * @throws VellumError PARENT_MISSING, NOT_A_FOLDER, IS_A_FOLDER, UPLOAD_INCOMPLETE,
   *   BODY_TOO_LARGE, DIGEST_MISMATCH, HSM_UNAVAILABLE, STORE_UNAVAILABLE. On any of them no version exists.
   */
  writeFile(path: VaultPath, body: Readable, actor: Actor, options: { maxBytes: number; expectedSha256?: string }): Promise<WriteResult>;
  /**
   * Streams one version of a file, or a range of it.
   * @throws VellumError IS_A_FOLDER, INTEGRITY_FAILURE, CONTENT_SHREDDED, HSM_UNAVAILABLE
   */
  readVersion(version: VersionRecord, study: string, range?: ByteRange): Promise<Readable>;
  /** Tombstones a file or a folder (with everything below it). @throws VellumError NOT_FOUND, FORBIDDEN (study root) */
  remove(path: VaultPath, actor: Actor): Promise<NodeRecord>;

  /** A node by id, live or deleted. @throws NOT_FOUND */
  node(study: string, nodeId: string): Promise<NodeRecord>;
  view(node: NodeRecord): Promise<NodeView>;
  /** Where a node is (or was, for a tombstone). */
  locate(node: NodeRecord): Promise<Location>;
  /** Every version of a file, oldest first. @throws IS_A_FOLDER */
  versions(node: NodeRecord): Promise<VersionView[]>;
  /** @throws VERSION_NOT_FOUND, IS_A_FOLDER */
  version(node: NodeRecord, number: number): Promise<VersionRecord>;
  /** A new version with the content of version `number`. @throws NOT_FOUND (deleted), VERSION_NOT_FOUND */
  restoreVersion(node: NodeRecord, number: number, actor: Actor): Promise<WriteResult>;
  /** Tombstones of a study, newest first. */
  trash(study: string): Promise<NodeView[]>;
  /** @throws NOT_FOUND, NOT_DELETED, PARENT_MISSING, NAME_TAKEN, PATH_INVALID */
  undelete(study: string, nodeId: string, actor: Actor, name?: string): Promise<NodeView>;
  /** @throws NOT_FOUND, DESTINATION_EXISTS, PARENT_MISSING, NOT_A_FOLDER, FORBIDDEN */
  move(from: VaultPath, to: VaultPath, actor: Actor, options: { overwrite: boolean }): Promise<TransferResult>;
  /** @throws NOT_FOUND, DESTINATION_EXISTS, PARENT_MISSING, NOT_A_FOLDER, FORBIDDEN, HSM_UNAVAILABLE, INTEGRITY_FAILURE */
  copy(from: VaultPath, to: VaultPath, actor: Actor, options: { overwrite: boolean; depth: 0 | 'infinity' }): Promise<TransferResult>;

  /**
   * Locks an existing file or folder (RFC 4918 §9.10).
   * @throws NOT_FOUND, LOCK_CONFLICT (an overlapping exclusive lock, or any overlapping lock for an exclusive one)
   */
  lock(path: VaultPath, request: LockRequest, actor: Actor): Promise<LockRecord>;
  /**
   * New timeouts for the locks on path whose tokens the actor submitted.
   * @throws LOCK_TOKEN_MISMATCH (no such lock applies to path), LOCKED (the locks are someone else's)
   */
  refreshLock(path: VaultPath, timeout: LockRequest['timeout'], actor: Actor): Promise<LockRecord[]>;
  /** @throws LOCK_TOKEN_MISMATCH (no such active lock applies to path), FORBIDDEN (someone else's lock) */
  unlock(path: VaultPath, token: string, actor: Actor): Promise<LockRecord>;
  /** Active locks that apply to path: on it, or depth-infinity locks above it. Cheap: from memory. */
  locksOn(path: VaultPath): Promise<LockRecord[]>;
  /** Deletes the records of expired locks (one audit entry per study that had any); they stopped counting when they expired. */
  sweepExpiredLocks(): Promise<number>;
  /**
   * Dead properties of nodes of a study, in the order of nodeIds: only `names`
   * when given. A node of another study (or no node) has none.
   */
  propertiesOf(study: string, nodeIds: readonly string[], names?: readonly string[]): Promise<PropertyMap[]>;
  /**
   * Applies a PROPPATCH's operations in order, all or nothing, in one batch
   * with its audit entry (`node.properties`).
   * @throws NOT_FOUND, PROPERTIES_TOO_LARGE, STORE_UNAVAILABLE
   */
  patchProperties(path: VaultPath, operations: readonly PropertyOperation[], actor: Actor): Promise<NodeRecord>;
  /** Bytes a study stores and bytes still free, for the quota properties (the sums are cached briefly). */
  storageUsage(study: string): Promise<StorageUsage>;

  /** At start, before serving: removes temporary files and blobs no version refers to, and audits it. */
  collectOrphans(): Promise<OrphanReport>;
  keyStatus(study: string): Promise<KeyStatus>;
  /** @throws NOT_FOUND, JOB_RUNNING, HSM_UNAVAILABLE */
  rotateStudyKey(study: string, actor: Actor): Promise<RotationStatus>;
  /** At start: continues rotations a stop interrupted. */
  resumeRotations(): Promise<void>;
  scrubStatus(): ScrubStatus | null;
  /** @throws JOB_RUNNING */
  startScrub(trigger: 'request' | 'schedule', actor: Actor | null): Promise<ScrubStatus>;
  /** Waits for background jobs to reach a safe point and stops them. */
  stopJobs(): Promise<void>;
}

export interface VaultParts {
  readonly db: Database;
  readonly audit: AuditTrail;
  readonly blobs: BlobStore;
  readonly keys: StudyKeys;
  /** The data directory: quota-available-bytes is the free space of its volume. */
  readonly dataDir: string;
  readonly log: (message: string, error?: unknown) => void;
  /** Lock timeouts granted; DEFAULT_LOCK_TIMEOUT when absent. */
  readonly lockTimeout?: LockTimeoutBounds;
}

function versionSummary(version: VersionRecord | null) {
  return version === null ? null : { versionId: version.id, number: version.number, size: version.size, sha256: version.sha256 };
}

/** What a new version points at: a blob just written, or one it shares. */
interface Content {
  readonly blob: StoredBlob;
  readonly shared: boolean;
}

const MAX_COPY_BYTES = Number.MAX_SAFE_INTEGER;

export function createVault(parts: VaultParts): Vault {
  const { db, audit, blobs } = parts;
  const tree = openTree(db);
  const { studies, nodes, children, versions, trash } = tree;
  const mutex = new KeyedMutex();
  const studyLock = <T>(study: string | null, task: () => Promise<T>) => mutex.run(`study:${study}`, task);
  const rotation = createRotation({ db, tree, blobs, audit, keys: parts.keys, studyLock, log: parts.log });
  const scrubber = createScrubber({ tree, blobs, audit, log: parts.log });
  // Loaded once; every lock check and lock change awaits it (a store that can't be read fails them all).
  const lockTable = LockTable.open(db, parts.lockTimeout ?? DEFAULT_LOCK_TIMEOUT);
  lockTable.catch((e: unknown) => parts.log('The lock table could not be loaded', e));

  /** The single lock check of every change: run under the study lock, before the commit. @throws LOCKED */
  async function guard(actor: Actor, touches: readonly Touch[]): Promise<LockTable> {
    const locks = await lockTable;
    locks.assertMayChange(actor, touches);
    return locks;
  }

  /** Ops deleting the locks rooted at or below the removed paths, and what to tell the index once they are written. */
  function releaseLocks(locks: LockTable, removed: readonly VaultPath[]): { ops: WriteOp[]; released: LockRecord[]; forget: () => void } {
    const released = removed.flatMap((path) => locks.within(path));
    return { ops: locks.deleteOps(released), released, forget: () => locks.forget(released.map((lock) => lock.token)) };
  }

  const releasedValue = (released: readonly LockRecord[]) => (released.length === 0 ? {} : { locksReleased: released.map((lock) => lock.token) });
  const properties = openProperties(tree.properties, tree.propertyNames);
  const storageUsage = storageUsageOf(tree.blobs, parts.dataDir);

  async function view(node: NodeRecord): Promise<NodeView> {
    const location = await tree.locate(node);
    return { ...node, path: formatVaultPath(location.path), inTrash: location.inTrash };
  }

  /** Ops that put a node in the trash; its children stay linked under it and come back with it. */
  function tombstoneOps(node: NodeRecord, actor: Actor, now: string): { tombstone: NodeRecord; ops: WriteOp[] } {
    const tombstone: NodeRecord = { ...node, deletedAt: now, deletedBy: personRef(actor.principal) };
    const ops = [nodes.put(node.id, tombstone), trash.put(trashKey(tombstone), node.id)];
    if (node.parentId !== null) ops.push(children.del(childKey(node.parentId, node.name)));
    return { tombstone, ops };
  }

  /** Ops for the blob record: a new blob, or one more version sharing it. */
  async function blobRefOps(study: string, content: Content): Promise<WriteOp[]> {
    if (!content.shared) {
      const record: BlobRecord = { study, size: content.blob.size, sha256: content.blob.sha256, refs: 1, kekVersion: content.blob.kekVersion };
      return [tree.blobs.put(content.blob.blobId, record)];
    }
    const record = await tree.blobOf(content.blob.blobId);
    return [tree.blobs.put(content.blob.blobId, { ...record, refs: record.refs + 1 })];
  }

  /**
   * Adds a version at `path` (a new file, or the next version of the file
   * there), in one batch with its audit entry. Runs under the study lock.
   */
  async function commitVersion(
    path: VaultPath, content: Content, actor: Actor,
    action: { name: (created: boolean) => string; origin?: VersionOrigin; oldValue?: unknown; replaceFolder?: boolean; copyPropertiesFrom?: string },
  ): Promise<WriteResult & { replaced: boolean }> {
    const { parent, name } = await tree.resolveParent(path);
    let existing = await tree.existingChild(parent, name);
    const now = isoTime();
    const ops: WriteOp[] = [];
    let replaced = false;
    if (existing?.kind === 'folder' && !action.replaceFolder) throw new VellumError('IS_A_FOLDER');
    const locks = await guard(actor, [{ kind: existing === undefined ? 'create' : existing.kind === 'folder' ? 'remove' : 'modify', path }]);
    const release = releaseLocks(locks, existing?.kind === 'folder' ? [path] : []);
    ops.push(...release.ops);
    if (existing?.kind === 'folder') {
      ops.push(...tombstoneOps(existing, actor, now).ops);
      existing = undefined;
      replaced = true;
    } else if (existing) {
      replaced = true;
    }
    const nodeId = existing?.id ?? newId();
    const number = (existing?.versionCount ?? 0) + 1;
    const version: VersionRecord = {
      id: newId(), nodeId, number, size: content.blob.size, sha256: content.blob.sha256, blobId: content.blob.blobId,
      kekVersion: content.blob.kekVersion, createdAt: now, createdBy: personRef(actor.principal),
      ...(action.origin ? { origin: action.origin } : {}),
    };
    const node: NodeRecord = existing
      ? { ...existing, modifiedAt: now, currentVersion: version, versionCount: number }
      : { id: nodeId, study: parent.study, parentId: parent.id, name, kind: 'file', createdAt: now, createdBy: personRef(actor.principal), modifiedAt: now, currentVersion: version, versionCount: 1 };
    ops.push(nodes.put(node.id, node), versions.put(versionKey(node.id, number), version), ...await blobRefOps(parent.study, content));
    if (!existing) ops.push(children.put(childKey(parent.id, name), node.id));
    // A copy's destination ends up with the source's dead properties only (RFC 4918 §9.8.2).
    if (action.copyPropertiesFrom !== undefined) ops.push(...await properties.copyOps(action.copyPropertiesFrom, node.id, existing !== undefined));
    await audit.record(
      {
        ...auditBase(actor), action: action.name(!existing), outcome: 'success',
        object: { study: parent.study, path: formatVaultPath(path), nodeId: node.id, versionId: version.id },
        oldValue: action.oldValue ?? versionSummary(existing?.currentVersion ?? null),
        newValue: { ...versionSummary(version), ...(action.origin ? { origin: action.origin } : {}), ...releasedValue(release.released) },
      },
      ops,
    );
    release.forget();
    return { node, version, created: !existing, replaced };
  }

  /** Commits a blob just written; removes it again when that fails. */
  async function withNewBlob<T>(study: string, written: StoredBlob, commit: (content: Content) => Promise<T>): Promise<T> {
    try {
      let blob = written;
      // Written under a KEK that a rotation retired during the upload: bring it up to date before it counts.
      const target = rotation.staleFor(study, blob.kekVersion);
      if (target !== undefined) blob = { ...blob, kekVersion: (await blobs.rewrap({ blobId: blob.blobId, study }, target)).kekVersion };
      return await commit({ blob, shared: false });
    } catch (e) {
      await blobs.remove(written.blobId);
      throw e;
    }
  }

  function sameOrInside(candidate: VaultPath, folder: VaultPath): boolean {
    return candidate.study === folder.study && folder.names.length <= candidate.names.length
      && folder.names.every((name, i) => candidate.names[i] === name);
  }

  async function copyFile(source: NodeRecord, to: VaultPath, actor: Actor, replaceFolder: boolean): Promise<TransferResult> {
    const current = source.currentVersion;
    if (current === null) throw new VellumError('INTERNAL', `File ${source.id} has no version.`);
    const origin: VersionOrigin = { kind: 'copy', fromStudy: source.study, fromNodeId: source.id, fromVersionId: current.id };
    const from = formatVaultPath((await tree.locate(source)).path);
    const action = { name: (created: boolean) => (created ? 'file.copy' : 'file.update'), origin, oldValue: undefined as unknown, replaceFolder, copyPropertiesFrom: source.id };
    if (source.study === to.study) {
      const record = await tree.blobOf(current.blobId);
      const blob: StoredBlob = { blobId: current.blobId, size: current.size, sha256: current.sha256, kekVersion: record.kekVersion };
      return studyLock(to.study, async () => commitVersion(to, { blob, shared: true }, actor, { ...action, oldValue: { copiedFrom: from } }));
    }
    // Across studies: decrypt under the source study's key, encrypt under the target's, and check the digest on the way.
    const plain = await blobs.read({ blobId: current.blobId, study: source.study, size: current.size });
    const stored = await blobs.write(to.study!, plain, MAX_COPY_BYTES, { expectedSha256: current.sha256 });
    return withNewBlob(to.study!, stored, (content) => studyLock(to.study, () => commitVersion(to, content, actor, { ...action, oldValue: { copiedFrom: from } })));
  }

  async function copyFolder(source: NodeRecord, to: VaultPath, actor: Actor, overwrite: boolean, depth: 0 | 'infinity'): Promise<TransferResult> {
    const created = await studyLock(to.study, async () => {
      const { parent, name } = await tree.resolveParent(to);
      const existing = await tree.existingChild(parent, name);
      if (existing && !overwrite) throw new VellumError('DESTINATION_EXISTS', `${formatVaultPath(to)} exists.`);
      const locks = await guard(actor, [{ kind: existing ? 'remove' : 'create', path: to }]);
      const release = releaseLocks(locks, existing ? [to] : []);
      const now = isoTime();
      const ops: WriteOp[] = [...release.ops, ...(existing ? tombstoneOps(existing, actor, now).ops : [])];
      const folder: NodeRecord = {
        id: newId(), study: parent.study, parentId: parent.id, name, kind: 'folder', createdAt: now,
        createdBy: personRef(actor.principal), modifiedAt: now, currentVersion: null, versionCount: 0,
      };
      ops.push(nodes.put(folder.id, folder), children.put(childKey(parent.id, name), folder.id), ...await properties.copyOps(source.id, folder.id, false));
      await audit.record(
        {
          ...auditBase(actor), action: 'folder.copy', outcome: 'success', object: { study: parent.study, path: formatVaultPath(to), nodeId: folder.id },
          oldValue: { copiedFrom: formatVaultPath((await tree.locate(source)).path), replacedNodeId: existing?.id ?? null },
          ...(release.released.length === 0 ? {} : { newValue: releasedValue(release.released) }),
        },
        ops,
      );
      release.forget();
      return { node: folder, replaced: existing !== undefined };
    });
    if (depth === 'infinity') {
      for await (const [, id] of children.withPrefix(`${source.id}/`)) {
        const child = await nodes.get(id);
        if (!child || child.deletedAt !== undefined) continue;
        const target = { study: to.study, names: [...to.names, child.name] };
        if (child.kind === 'file') await copyFile(child, target, actor, false);
        else await copyFolder(child, target, actor, false, 'infinity');
      }
    }
    return created;
  }

  return {
    async createStudy(input, actor) {
      const changeReasonFolders = normaliseReasonFolders(input.changeReasonFolders ?? []);
      return studyLock(input.id, async () => {
        if (await studies.get(input.id)) throw new VellumError('STUDY_EXISTS', `"${input.id}" is taken.`);
        const kek = await parts.keys.ensureStudyKey(input.id);
        const now = isoTime();
        const root: NodeRecord = {
          id: newId(), study: input.id, parentId: null, name: input.id, kind: 'folder', createdAt: now,
          createdBy: personRef(actor.principal), modifiedAt: now, currentVersion: null, versionCount: 0,
        };
        const study: StudyRecord = {
          id: input.id, title: input.title, rootId: root.id, createdAt: now, createdBy: personRef(actor.principal), bindings: input.bindings,
          ...(changeReasonFolders.length > 0 ? { changeReasonFolders } : {}),
          ...(input.accessRules ? { accessRules: input.accessRules } : {}),
        };
        await audit.record(
          {
            ...auditBase(actor), action: 'study.create', outcome: 'success', object: { study: input.id, path: `/${input.id}`, nodeId: root.id },
            newValue: {
              title: input.title, bindings: input.bindings, kekVersion: kek.version, ...(changeReasonFolders.length > 0 ? { changeReasonFolders } : {}),
              ...(input.accessRules ? { accessRules: input.accessRules } : {}),
            },
          },
          [studies.put(study.id, study), nodes.put(root.id, root)],
        );
        return study;
      });
    },

    async setChangeReasonFolders(id, folders, actor) {
      const changeReasonFolders = normaliseReasonFolders(folders);
      return studyLock(id, async () => {
        const study = await tree.studyOrThrow(id);
        const { changeReasonFolders: _old, ...rest } = study;
        const updated: StudyRecord = { ...rest, ...(changeReasonFolders.length > 0 ? { changeReasonFolders } : {}) };
        await audit.record(
          {
            ...auditBase(actor), action: 'study.change-reason-folders', outcome: 'success', object: { study: id, path: `/${id}`, nodeId: study.rootId },
            oldValue: { changeReasonFolders: study.changeReasonFolders ?? [] }, newValue: { changeReasonFolders },
          },
          [studies.put(id, updated)],
        );
        return updated;
      });
    },

    async setBindings(id, bindings, actor) {
      return studyLock(id, async () => {
        const study = await tree.studyOrThrow(id);
        const updated: StudyRecord = { ...study, bindings };
        await audit.record(
          {
            ...auditBase(actor), action: 'study.bindings', outcome: 'success', object: { study: id, path: `/${id}`, nodeId: study.rootId },
            oldValue: { bindings: study.bindings }, newValue: { bindings },
          },
          [studies.put(id, updated)],
        );
        return updated;
      });
    },

    async setAccessRules(id, accessRules, actor, inForce) {
      return studyLock(id, async () => {
        const study = await tree.studyOrThrow(id);
        const updated: StudyRecord = { ...study, accessRules };
        await audit.record(
          {
            ...auditBase(actor), action: 'study.access-rules', outcome: 'success', object: { study: id, path: `/${id}`, nodeId: study.rootId },
            oldValue: { accessRules: study.accessRules ?? inForce }, newValue: { accessRules },
          },
          [studies.put(id, updated)],
        );
        return updated;
      });
    },

    getStudy: (id) => studies.get(id),

    async listStudies() {
      const all: StudyRecord[] = [];
      for await (const [, study] of studies.entries()) all.push(study);
      return all;
    },

    stat: tree.resolve,

    async list(path) {
      const folder = await tree.resolve(path);
      if (folder.kind !== 'folder') throw new VellumError('NOT_A_FOLDER');
      const ids: string[] = [];
      for await (const [, id] of children.withPrefix(`${folder.id}/`)) ids.push(id);
      // One batched read: a folder of 10,000 files is listed in one call, not 10,000.
      return (await nodes.getMany(ids)).filter((node): node is NodeRecord => node !== undefined && node.deletedAt === undefined);
    },

    async makeFolder(path, actor) {
      await tree.resolveParent(path);
      return studyLock(path.study, async () => {
        const { parent, name } = await tree.resolveParent(path);
        if (await tree.existingChild(parent, name)) throw new VellumError('ALREADY_EXISTS', `${formatVaultPath(path)} exists.`);
        await guard(actor, [{ kind: 'create', path }]);
        const now = isoTime();
        const folder: NodeRecord = {
          id: newId(), study: parent.study, parentId: parent.id, name, kind: 'folder', createdAt: now,
          createdBy: personRef(actor.principal), modifiedAt: now, currentVersion: null, versionCount: 0,
        };
        await audit.record(
          { ...auditBase(actor), action: 'folder.create', outcome: 'success', object: { study: parent.study, path: formatVaultPath(path), nodeId: folder.id } },
          [nodes.put(folder.id, folder), children.put(childKey(parent.id, name), folder.id)],
        );
        return folder;
      });
    },

    async writeFile(path, body, actor, options) {
      // Fail fast, before reading the body, when the upload could never be stored.
      const first = await tree.resolveParent(path);
      const present = await tree.existingChild(first.parent, first.name);
      if (present?.kind === 'folder') throw new VellumError('IS_A_FOLDER');
      // Checked again under the study lock before the commit; this only spares a refused upload its bytes.
      await guard(actor, [{ kind: present ? 'modify' : 'create', path }]);
      const stored = await blobs.write(first.parent.study, body, options.maxBytes, options.expectedSha256 === undefined ? {} : { expectedSha256: options.expectedSha256 });
      return withNewBlob(first.parent.study, stored, (content) => studyLock(path.study, async () => {
        const { node, version, created } = await commitVersion(path, content, actor, { name: (isNew) => (isNew ? 'file.create' : 'file.update') });
        return { node, version, created };
      }));
    },

    async readVersion(version, study, range) {
      return blobs.read({ blobId: version.blobId, study, size: version.size }, range);
    },

    async remove(path, actor) {
      await tree.resolveParent(path);
      return studyLock(path.study, async () => {
        const { parent, name } = await tree.resolveParent(path);
        const node = await tree.existingChild(parent, name);
        if (!node) throw new VellumError('NOT_FOUND', `${formatVaultPath(path)} does not exist.`);
        const release = releaseLocks(await guard(actor, [{ kind: 'remove', path }]), [path]);
        const { tombstone, ops } = tombstoneOps(node, actor, isoTime());
        await audit.record(
          {
            ...auditBase(actor), action: node.kind === 'folder' ? 'folder.delete' : 'file.delete', outcome: 'success',
            object: { study: node.study, path: formatVaultPath(path), nodeId: node.id, ...(node.currentVersion ? { versionId: node.currentVersion.id } : {}) },
            oldValue: versionSummary(node.currentVersion),
            ...(release.released.length === 0 ? {} : { newValue: releasedValue(release.released) }),
          },
          [...ops, ...release.ops],
        );
        release.forget();
        return tombstone;
      });
    },

    node: (study, nodeId) => tree.nodeInStudy(study, nodeId),

    view,

    locate: (node) => tree.locate(node),

    async versions(node) {
      if (node.kind !== 'file') throw new VellumError('IS_A_FOLDER', 'A folder has no versions.');
      const found: VersionView[] = [];
      for await (const [, version] of versions.withPrefix(`${node.id}/`)) {
        const blob = await tree.blobs.get(version.blobId);
        found.push({ ...version, current: version.number === node.versionCount, keyVersion: blob?.kekVersion ?? version.kekVersion });
      }
      return found;
    },

    version: (node, number) => tree.versionOf(node, number),

    async restoreVersion(node, number, actor) {
      return studyLock(node.study, async () => {
        const fresh = await tree.nodeInStudy(node.study, node.id);
        const location = await tree.locate(fresh);
        if (location.inTrash) throw new VellumError('NOT_FOUND', `${fresh.name} is in the trash; undo the delete first.`);
        const old = await tree.versionOf(fresh, number);
        const record = await tree.blobOf(old.blobId);
        const blob: StoredBlob = { blobId: old.blobId, size: old.size, sha256: old.sha256, kekVersion: record.kekVersion };
        const { version, created } = await commitVersion(location.path, { blob, shared: true }, actor, {
          name: () => 'file.restore', origin: { kind: 'restore', fromVersion: number },
        });
        return { node: { ...fresh, modifiedAt: version.createdAt, currentVersion: version, versionCount: version.number }, version, created };
      });
    },

    async trash(study) {
      await tree.studyOrThrow(study);
      const found: NodeView[] = [];
      for await (const [, id] of trash.withPrefix(`${study}/`, { reverse: true })) {
        const node = await nodes.get(id);
        if (node?.deletedAt !== undefined) found.push(await view(node));
      }
      return found;
    },

    async undelete(study, nodeId, actor, requestedName) {
      const name = requestedName === undefined ? undefined : checkName(requestedName);
      return studyLock(study, async () => {
        const node = await tree.nodeInStudy(study, nodeId);
        if (node.deletedAt === undefined) {
          const location = await tree.locate(node);
          if (location.inTrash) throw new VellumError('PARENT_MISSING', `${formatVaultPath(location.path)} was deleted with a folder above it; undo that folder's delete.`);
          throw new VellumError('NOT_DELETED', `${node.name} is not deleted.`);
        }
        if (node.parentId === null) throw new VellumError('FORBIDDEN', 'A study root cannot be restored this way.');
        const parent = await tree.nodeInStudy(study, node.parentId);
        const parentLocation = await tree.locate(parent);
        if (parentLocation.inTrash) {
          throw new VellumError('PARENT_MISSING', `The folder ${formatVaultPath(parentLocation.path)} is deleted; undo that delete first.`);
        }
        const newName = name ?? node.name;
        if (await tree.existingChild(parent, newName)) {
          throw new VellumError('NAME_TAKEN', `${formatVaultPath({ study, names: [...parentLocation.path.names, newName] })} exists; restore under another name.`);
        }
        await guard(actor, [{ kind: 'create', path: { study, names: [...parentLocation.path.names, newName] } }]);
        const { deletedAt: _deletedAt, deletedBy: _deletedBy, ...live } = node;
        const restored: NodeRecord = { ...live, name: newName };
        const path = formatVaultPath({ study, names: [...parentLocation.path.names, newName] });
        await audit.record(
          {
            ...auditBase(actor), action: node.kind === 'folder' ? 'folder.undelete' : 'file.undelete', outcome: 'success',
            object: { study, path, nodeId: node.id, ...(node.currentVersion ? { versionId: node.currentVersion.id } : {}) },
            oldValue: { deletedAt: node.deletedAt, deletedBy: node.deletedBy, name: node.name }, newValue: { name: newName },
          },
          [nodes.put(node.id, restored), children.put(childKey(parent.id, newName), node.id), trash.del(trashKey(node))],
        );
        return { ...restored, path, inTrash: false };
      });
    },

    async move(from, to, actor, options) {
      if (from.study !== to.study) {
        throw new VellumError('FORBIDDEN', 'Files and folders cannot move between studies: each study keeps its own history and keys. Copy, then delete the original.');
      }
      if (from.names.length === 0) throw new VellumError('FORBIDDEN', 'A study root cannot be moved.');
      if (sameOrInside(to, from)) throw new VellumError('FORBIDDEN', 'An item cannot be moved onto itself or into itself.');
      return studyLock(from.study, async () => {
        const node = await tree.resolve(from);
        const { parent, name } = await tree.resolveParent(to);
        const existing = await tree.existingChild(parent, name);
        if (existing && !options.overwrite) throw new VellumError('DESTINATION_EXISTS', `${formatVaultPath(to)} exists.`);
        // Locks stay with URLs: those on the source (and a replaced destination) go; the destination's folders' locks cover what arrives.
        const locks = await guard(actor, [{ kind: 'remove', path: from }, { kind: existing ? 'remove' : 'create', path: to }]);
        const release = releaseLocks(locks, existing ? [from, to] : [from]);
        const now = isoTime();
        const ops: WriteOp[] = [...release.ops, ...(existing ? tombstoneOps(existing, actor, now).ops : [])];
        const moved: NodeRecord = { ...node, parentId: parent.id, name, modifiedAt: now };
        ops.push(children.del(childKey(node.parentId!, node.name)), children.put(childKey(parent.id, name), node.id), nodes.put(node.id, moved));
        await audit.record(
          {
            ...auditBase(actor), action: node.kind === 'folder' ? 'folder.move' : 'file.move', outcome: 'success',
            object: { study: node.study, path: formatVaultPath(to), nodeId: node.id, ...(node.currentVersion ? { versionId: node.currentVersion.id } : {}) },
            oldValue: { path: formatVaultPath(from) }, newValue: { path: formatVaultPath(to), replacedNodeId: existing?.id ?? null, ...releasedValue(release.released) },
          },
          ops,
        );
        release.forget();
        return { node: moved, replaced: existing !== undefined };
      });
    },

    async copy(from, to, actor, options) {
      if (from.names.length === 0) throw new VellumError('FORBIDDEN', 'A study root cannot be copied; copy its folders.');
      if (sameOrInside(to, from)) throw new VellumError('FORBIDDEN', 'An item cannot be copied onto itself or into itself.');
      const source = await tree.resolve(from);
      const { parent, name } = await tree.resolveParent(to);
      const existing = await tree.existingChild(parent, name);
      if (existing && !options.overwrite) throw new VellumError('DESTINATION_EXISTS', `${formatVaultPath(to)} exists.`);
      if (source.kind === 'folder') return copyFolder(source, to, actor, options.overwrite, options.depth);
      const { node, replaced } = await copyFile(source, to, actor, options.overwrite);
      return { node, replaced };
    },

    async lock(path, request, actor) {
      return studyLock(path.study, async () => {
        const node = await tree.resolve(path);
        const locks = await lockTable;
        const conflicts = locks.conflicts(path, request.scope, request.depth);
        if (conflicts.length > 0) {
          const roots = [...new Set(conflicts.map((lock) => `${formatVaultPath(lockRootPath(lock))} (${lock.scope})`))];
          throw new VellumError('LOCK_CONFLICT', `Already locked: ${roots.join(', ')}.`);
        }
        const lock = locks.create({ study: node.study, names: path.names }, request, actor);
        await audit.record(
          { ...auditBase(actor), action: 'node.lock', outcome: 'success', object: { study: node.study, path: formatVaultPath(path), nodeId: node.id }, newValue: lockSummary(lock) },
          [locks.section.put(lock.token, lock)],
        );
        locks.remember(lock);
        return lock;
      });
    },

    async refreshLock(path, timeout, actor) {
      return studyLock(path.study, async () => {
        const locks = await lockTable;
        const submitted = new Set(actor.lockTokens ?? []);
        const named = locks.covering(path).filter((lock) => submitted.has(lock.token));
        if (named.length === 0) throw new VellumError('LOCK_TOKEN_MISMATCH', `No token sent applies to a lock on ${formatVaultPath(path)}.`);
        const own = named.filter((lock) => lock.createdBy.id === actor.principal.id);
        if (own.length === 0) throw new VellumError('LOCKED', 'Only the person who created a lock can refresh it.');
        const refreshed = own.map((lock) => locks.refreshed(lock, timeout));
        await audit.record(
          {
            ...auditBase(actor), action: 'node.lock.refresh', outcome: 'success', object: { study: path.study ?? undefined, path: formatVaultPath(path) },
            oldValue: own.map((lock) => ({ token: lock.token, expiresAt: lock.expiresAt })), newValue: refreshed.map(lockSummary),
          },
          refreshed.map((lock) => locks.section.put(lock.token, lock)),
        );
        refreshed.forEach((lock) => locks.remember(lock));
        return refreshed;
      });
    },

    async unlock(path, token, actor) {
      return studyLock(path.study, async () => {
        const locks = await lockTable;
        const lock = locks.byToken(token);
        if (!lock || !lockCovers(lock, path)) throw new VellumError('LOCK_TOKEN_MISMATCH', `${token} is not the token of a lock on ${formatVaultPath(path)}.`);
        if (lock.createdBy.id !== actor.principal.id) throw new VellumError('FORBIDDEN', `Only ${lock.createdBy.displayName}, who created the lock, can remove it; it expires at ${lock.expiresAt}.`);
        await audit.record(
          { ...auditBase(actor), action: 'node.unlock', outcome: 'success', object: { study: lock.study, path: formatVaultPath(lockRootPath(lock)) }, oldValue: lockSummary(lock) },
          locks.deleteOps([lock]),
        );
        locks.forget([lock.token]);
        return lock;
      });
    },

    async locksOn(path) {
      return (await lockTable).covering(path);
    },

    async sweepExpiredLocks() {
      const locks = await lockTable;
      let removed = 0;
      for (const study of locks.expired().keys()) {
        removed += await studyLock(study, async () => {
          // Looked up again under the lock: a commit may have removed some meanwhile.
          const expired = locks.expired().get(study) ?? [];
          if (expired.length === 0) return 0;
          await audit.record(
            { ...auditBase(null), action: 'lock.expire', outcome: 'success', object: { study }, oldValue: expired.map(lockSummary) },
            locks.deleteOps(expired),
          );
          locks.forget(expired.map((lock) => lock.token));
          return expired.length;
        });
      }
      return removed;
    },
    async propertiesOf(study, nodeIds, names) {
      const owners = await nodes.getMany(nodeIds);
      const found = await properties.ofNodes(nodeIds.filter((_, i) => owners[i]?.study === study), names);
      let next = 0;
      return nodeIds.map((_, i) => (owners[i]?.study === study ? found[next++]! : new Map()));
    },

    async patchProperties(path, operations, actor) {
      return studyLock(path.study, async () => {
        const node = await tree.resolve(path);
        await guard(actor, [{ kind: 'modify', path }]);
        const patch = await properties.plan(node.id, operations);
        await audit.record(
          {
            ...auditBase(actor), action: 'node.properties', outcome: 'success',
            object: { study: node.study, path: formatVaultPath(path), nodeId: node.id }, oldValue: patch.oldValue, newValue: patch.newValue,
          },
          patch.ops,
        );
        return node;
      });
    },

    storageUsage,

    collectOrphans: () => collectOrphans({ tree, blobs, audit, log: parts.log }),
    keyStatus: (study) => rotation.status(study),
    rotateStudyKey: (study, actor) => rotation.start(study, actor),
    resumeRotations: () => rotation.resume(),
    scrubStatus: () => scrubber.status(),
    startScrub: (trigger, actor) => scrubber.start(trigger, actor),
    async stopJobs() {
      await Promise.all([rotation.stop(), scrubber.stop()]);
    },
  };
}
