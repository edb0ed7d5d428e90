// The vault: studies, folders, files and their immutable versions. Every change
// is one synced batch holding the new metadata and its audit entry. A file's
// bytes live in encrypted blobs; an overwrite adds a version, a delete leaves a
// tombstone.

import type { Readable } from 'node:stream';
import type { AuditEvent, AuditTrail } from '../audit/index.ts';
import type { Database, WriteOp } from '../db/index.ts';
import {
  formatVaultPath, isoTime, newId, VellumError, type Principal, type RequestOrigin, type StudyRole, type VaultPath,
} from '../kernel/index.ts';
import type { BlobStore, ByteRange } from './blob-store.ts';
import { KeyedMutex } from './mutex.ts';
import type { NodeRecord, PersonRef, RoleBinding, StudyRecord, VersionRecord } from './records.ts';

/** Who is making a change, from where, in which roles, and why. */
export interface Actor {
  readonly principal: Principal;
  readonly origin: RequestOrigin;
  readonly roles: readonly string[];
  readonly reason?: string;
}

export interface WriteResult {
  readonly node: NodeRecord;
  readonly version: VersionRecord;
  /** true when the file did not exist before. */
  readonly created: boolean;
}


export interface Vault {
  /** @throws VellumError STUDY_EXISTS, HSM_UNAVAILABLE, STORE_UNAVAILABLE */
  createStudy(input: { id: string; title: string; bindings: readonly RoleBinding[] }, actor: Actor): Promise<StudyRecord>;
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
   *   BODY_TOO_LARGE, HSM_UNAVAILABLE, STORE_UNAVAILABLE. On any of them no version exists.
   */
  writeFile(path: VaultPath, body: Readable, actor: Actor, options: { maxBytes: number }): Promise<WriteResult>;
  /**
   * Streams the current version of a file found with stat(), or a range of it.
   * @throws VellumError IS_A_FOLDER, INTEGRITY_FAILURE, HSM_UNAVAILABLE
   */
  readCurrent(file: NodeRecord, range?: ByteRange): Promise<Readable>;
  /** Tombstones a file or a folder (with everything below it). @throws VellumError NOT_FOUND, FORBIDDEN (study root) */
  remove(path: VaultPath, actor: Actor): Promise<NodeRecord>;
  /** Every version of a file, oldest first. */
  versions(path: VaultPath): Promise<VersionRecord[]>;
}

export interface VaultParts {
  readonly db: Database;
  readonly audit: AuditTrail;
  readonly blobs: BlobStore;
  /** Creates the study's key-encryption key; called once per new study. */
  readonly ensureStudyKey: (study: string) => Promise<{ version: number }>;
}

const childKey = (parentId: string, name: string) => `${parentId}/${name}`;
const versionKey = (nodeId: string, number: number) => `${nodeId}/${number.toString().padStart(10, '0')}`;

function personRef(principal: Principal): PersonRef {
  return { id: principal.id, login: principal.login, displayName: principal.displayName };
}

function auditBase(actor: Actor): Omit<AuditEvent, 'action' | 'outcome'> {
  return {
    actor: actor.principal,
    roles: actor.roles,
    ip: actor.origin.ip,
    client: actor.origin.client,
    protocol: actor.origin.protocol,
    ...(actor.reason === undefined ? {} : { reason: actor.reason }),
  };
}

function versionSummary(version: VersionRecord | null) {
  return version === null ? null : { versionId: version.id, number: version.number, size: version.size, sha256: version.sha256 };
}

export function createVault(parts: VaultParts): Vault {
  const { db, audit, blobs } = parts;
  const studies = db.section<StudyRecord>('studies');
  const nodes = db.section<NodeRecord>('nodes');
  const children = db.section<string>('children');
  const versions = db.section<VersionRecord>('versions');
  const trash = db.section<string>('trash');
  const mutex = new KeyedMutex();

  async function studyOrThrow(id: string): Promise<StudyRecord> {
    const study = await studies.get(id);
    if (!study) throw new VellumError('NOT_FOUND', `There is no study "${id}".`);
    return study;
  }

  /** Walks from the study root; every step must be a live folder except possibly the last. */
  async function resolve(path: VaultPath): Promise<NodeRecord> {
    if (path.study === null) throw new VellumError('NOT_FOUND', 'The root is not a file or folder.');
    const study = await studyOrThrow(path.study);
    let node = await nodes.get(study.rootId);
    if (!node) throw new VellumError('NOT_FOUND', `The study "${path.study}" has no root folder.`);
    for (const name of path.names) {
      if (node.kind !== 'folder') throw new VellumError('NOT_FOUND', `${formatVaultPath(path)} does not exist.`);
      const id: string | undefined = await children.get(childKey(node.id, name));
      const next: NodeRecord | undefined = id === undefined ? undefined : await nodes.get(id);
      if (!next) throw new VellumError('NOT_FOUND', `${formatVaultPath(path)} does not exist.`);
      node = next;
    }
    return node;
  }

  /** The parent folder of path, which must exist and be a folder. */
  async function resolveParent(path: VaultPath): Promise<{ parent: NodeRecord; name: string }> {
    const name = path.names[path.names.length - 1];
    if (name === undefined) throw new VellumError('FORBIDDEN', 'A study root cannot be changed this way.');
    let parent: NodeRecord;
    try {
      parent = await resolve({ study: path.study, names: path.names.slice(0, -1) });
    } catch (e) {
      if (e instanceof VellumError && e.code === 'NOT_FOUND') throw new VellumError('PARENT_MISSING', `Create the folder for ${formatVaultPath(path)} first.`);
      throw e;
    }
    if (parent.kind !== 'folder') throw new VellumError('NOT_A_FOLDER');
    return { parent, name };
  }

  async function existingChild(parent: NodeRecord, name: string): Promise<NodeRecord | undefined> {
    const id = await children.get(childKey(parent.id, name));
    return id === undefined ? undefined : nodes.get(id);
  }

  return {
    async createStudy(input, actor) {
      return mutex.run(`study:${input.id}`, async () => {
        if (await studies.get(input.id)) throw new VellumError('STUDY_EXISTS', `"${input.id}" is taken.`);
        const kek = await parts.ensureStudyKey(input.id);
        const now = isoTime();
        const root: NodeRecord = {
          id: newId(), study: input.id, parentId: null, name: input.id, kind: 'folder', createdAt: now,
          createdBy: personRef(actor.principal), modifiedAt: now, currentVersion: null, versionCount: 0,
        };
        const study: StudyRecord = { id: input.id, title: input.title, rootId: root.id, createdAt: now, createdBy: personRef(actor.principal), bindings: input.bindings };
        await audit.record(
          { ...auditBase(actor), action: 'study.create', outcome: 'success', object: { study: input.id, path: `/${input.id}`, nodeId: root.id }, newValue: { title: input.title, bindings: input.bindings, kekVersion: kek.version } },
          [studies.put(study.id, study), nodes.put(root.id, root)],
        );
        return study;
      });
    },

    getStudy: (id) => studies.get(id),

    async listStudies() {
      const all: StudyRecord[] = [];
      for await (const [, study] of studies.entries()) all.push(study);
      return all;
    },

    stat: resolve,

    async list(path) {
      const folder = await resolve(path);
      if (folder.kind !== 'folder') throw new VellumError('NOT_A_FOLDER');
      const found: NodeRecord[] = [];
      for await (const [, id] of children.withPrefix(`${folder.id}/`)) {
        const node = await nodes.get(id);
        if (node && node.deletedAt === undefined) found.push(node);
      }
      return found;
    },

    async makeFolder(path, actor) {
      await resolveParent(path);
      return mutex.run(`study:${path.study}`, async () => {
        const { parent, name } = await resolveParent(path);
        if (await existingChild(parent, name)) throw new VellumError('ALREADY_EXISTS', `${formatVaultPath(path)} exists.`);
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
      const first = await resolveParent(path);
      const before = await existingChild(first.parent, first.name);
      if (before?.kind === 'folder') throw new VellumError('IS_A_FOLDER');
      const stored = await blobs.write(first.parent.study, body, options.maxBytes);
      try {
        return await mutex.run(`study:${path.study}`, async () => {
          const { parent, name } = await resolveParent(path);
          const existing = await existingChild(parent, name);
          if (existing?.kind === 'folder') throw new VellumError('IS_A_FOLDER');
          const now = isoTime();
          const nodeId = existing?.id ?? newId();
          const number = (existing?.versionCount ?? 0) + 1;
          const version: VersionRecord = {
            id: newId(), nodeId, number, size: stored.size, sha256: stored.sha256, blobId: stored.blobId,
            kekVersion: stored.kekVersion, createdAt: now, createdBy: personRef(actor.principal),
          };
          const node: NodeRecord = existing
            ? { ...existing, modifiedAt: now, currentVersion: version, versionCount: number }
            : { id: nodeId, study: parent.study, parentId: parent.id, name, kind: 'file', createdAt: now, createdBy: personRef(actor.principal), modifiedAt: now, currentVersion: version, versionCount: 1 };
          const ops: WriteOp[] = [nodes.put(node.id, node), versions.put(versionKey(node.id, number), version)];
          if (!existing) ops.push(children.put(childKey(parent.id, name), node.id));
          await audit.record(
            {
              ...auditBase(actor), action: existing ? 'file.update' : 'file.create', outcome: 'success',
              object: { study: parent.study, path: formatVaultPath(path), nodeId: node.id, versionId: version.id },
              oldValue: versionSummary(existing?.currentVersion ?? null), newValue: versionSummary(version),
            },
            ops,
          );
          return { node, version, created: !existing };
        });
      } catch (e) {
        await blobs.remove(stored.blobId);
        throw e;
      }
    },

    async readCurrent(file, range) {
      const version = file.currentVersion;
      if (file.kind !== 'file' || version === null) throw new VellumError('IS_A_FOLDER');
      return blobs.read({ blobId: version.blobId, study: file.study, size: version.size }, range);
    },

    async remove(path, actor) {
      await resolveParent(path);
      return mutex.run(`study:${path.study}`, async () => {
        const { parent, name } = await resolveParent(path);
        const node = await existingChild(parent, name);
        if (!node) throw new VellumError('NOT_FOUND', `${formatVaultPath(path)} does not exist.`);
        const now = isoTime();
        const tombstone: NodeRecord = { ...node, deletedAt: now };
        await audit.record(
          {
            ...auditBase(actor), action: node.kind === 'folder' ? 'folder.delete' : 'file.delete', outcome: 'success',
            object: { study: node.study, path: formatVaultPath(path), nodeId: node.id, ...(node.currentVersion ? { versionId: node.currentVersion.id } : {}) },
            oldValue: versionSummary(node.currentVersion),
          },
          [nodes.put(node.id, tombstone), children.del(childKey(parent.id, name)), trash.put(`${node.study}/${now}/${node.id}`, node.id)],
        );
        return tombstone;
      });
    },

    async versions(path) {
      const node = await resolve(path);
      const found: VersionRecord[] = [];
      for await (const [, version] of versions.withPrefix(`${node.id}/`)) found.push(version);
      return found;
    },
  };
}
