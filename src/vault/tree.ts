// The vault's metadata sections and the lookups every operation shares:
// path -> node (live nodes only), node -> path (also for tombstones), and
// the keys the sections are indexed by.

import type { Database } from '../db/index.ts';
import { formatVaultPath, VellumError, type VaultPath } from '../kernel/index.ts';
import type { BlobRecord, NodeRecord, StudyRecord, VersionRecord } from './records.ts';

export const childKey = (parentId: string, name: string) => `${parentId}/${name}`;
export const versionKey = (nodeId: string, number: number) => `${nodeId}/${number.toString().padStart(10, '0')}`;
export const trashKey = (node: NodeRecord) => `${node.study}/${node.deletedAt ?? ''}/${node.id}`;

export type Tree = ReturnType<typeof openTree>;

/** Where a node is: its path, and whether it or a folder above it is in the trash. */
export interface Location {
  readonly path: VaultPath;
  readonly inTrash: boolean;
}

export function openTree(db: Database) {
  const studies = db.section<StudyRecord>('studies');
  const nodes = db.section<NodeRecord>('nodes');
  /** `parentId/name` -> node id, live nodes only. */
  const children = db.section<string>('children');
  /** `nodeId/number` -> version. */
  const versions = db.section<VersionRecord>('versions');
  /** `study/deletedAt/nodeId` -> node id. */
  const trash = db.section<string>('trash');
  /** blob id -> what it holds and how many versions share it. */
  const blobs = db.section<BlobRecord>('blobs');
  /** `nodeId/{namespace}local` -> a dead property's serialised element (properties.ts). */
  const properties = db.section<string>('properties');
  /** node id -> the names of its dead properties, sorted. */
  const propertyNames = db.section<string[]>('property-names');

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

  /** A node by id within a study, live or not. */
  async function nodeInStudy(study: string, nodeId: string): Promise<NodeRecord> {
    const node = await nodes.get(nodeId);
    if (!node || node.study !== study) throw new VellumError('NOT_FOUND', `Study ${study} has no item with id ${nodeId}.`);
    return node;
  }

  /** Walks up to the study root. */
  async function locate(node: NodeRecord): Promise<Location> {
    const names: string[] = [];
    let inTrash = node.deletedAt !== undefined;
    let current = node;
    while (current.parentId !== null) {
      names.unshift(current.name);
      const parent = await nodes.get(current.parentId);
      if (!parent) throw new VellumError('INTERNAL', `Node ${current.id} has a missing parent ${current.parentId}.`);
      if (parent.deletedAt !== undefined) inTrash = true;
      current = parent;
    }
    return { path: { study: node.study, names }, inTrash };
  }

  async function versionOf(node: NodeRecord, number: number): Promise<VersionRecord> {
    if (node.kind !== 'file') throw new VellumError('IS_A_FOLDER', 'A folder has no versions.');
    const version = Number.isSafeInteger(number) && number > 0 ? await versions.get(versionKey(node.id, number)) : undefined;
    if (!version) throw new VellumError('VERSION_NOT_FOUND', `${node.name} has versions 1 to ${node.versionCount}.`);
    return version;
  }

  async function blobOf(blobId: string): Promise<BlobRecord> {
    const blob = await blobs.get(blobId);
    if (!blob) throw new VellumError('INTEGRITY_FAILURE', `The record of blob ${blobId} is missing.`);
    return blob;
  }

  return { studies, nodes, children, versions, trash, blobs, properties, propertyNames, studyOrThrow, resolve, resolveParent, existingChild, nodeInStudy, locate, versionOf, blobOf };
}
