// What the vault keeps in its database sections.

import type { StudyRole } from '../kernel/index.ts';

export interface PersonRef {
  readonly id: string;
  readonly login: string;
  readonly displayName: string;
}

export interface RoleBinding {
  /** DN of the directory group. */
  readonly group: string;
  readonly role: StudyRole;
}

/**
 * A study's access rules as stored (access/ owns their meaning and checks
 * them): grants per role (role -> actions) for the study, and folder rules.
 */
export interface StoredAccessRules {
  readonly defaults: Readonly<Partial<Record<StudyRole, readonly string[]>>>;
  readonly folders: readonly { readonly path: string; readonly grants: Readonly<Partial<Record<StudyRole, readonly string[]>>> }[];
}

export interface StudyRecord {
  readonly id: string;
  readonly title: string;
  readonly rootId: string;
  readonly createdAt: string;
  readonly createdBy: PersonRef;
  readonly bindings: readonly RoleBinding[];
  /**
   * Folders (paths in the study, e.g. "/Regulatory"; "/" is the whole study)
   * where deleting, overwriting or moving out needs a reason for change. A
   * rule covers everything below its folder. Absent in studies made before it existed: none.
   */
  readonly changeReasonFolders?: readonly string[];
  /** Who may do what where (access/). Absent in studies made before it existed: the template applies. */
  readonly accessRules?: StoredAccessRules;
}

export interface NodeRecord {
  readonly id: string;
  readonly study: string;
  /** null for a study's root folder. */
  readonly parentId: string | null;
  readonly name: string;
  readonly kind: 'folder' | 'file';
  readonly createdAt: string;
  readonly createdBy: PersonRef;
  readonly modifiedAt: string;
  /** Files: the newest version; folders: null. */
  readonly currentVersion: VersionRecord | null;
  readonly versionCount: number;
  /** Set when deleted: the node is a tombstone, listed in the trash. */
  readonly deletedAt?: string;
  readonly deletedBy?: PersonRef;
}

/** Where a version's content came from when it was not uploaded. */
export type VersionOrigin =
  | { readonly kind: 'restore'; readonly fromVersion: number }
  | { readonly kind: 'copy'; readonly fromStudy: string; readonly fromNodeId: string; readonly fromVersionId: string };

/** One encrypted blob; versions that share content (restore, copy) share it. */
export interface BlobRecord {
  readonly study: string;
  readonly size: number;
  /** Hex SHA-256 of the plaintext. */
  readonly sha256: string;
  /** Versions pointing at it. */
  readonly refs: number;
  /** KEK version the blob's data key is wrapped under now (changes on rotation). */
  readonly kekVersion: number;
}

export interface VersionRecord {
  readonly id: string;
  readonly nodeId: string;
  readonly number: number;
  readonly size: number;
  /** Hex SHA-256 of the plaintext. */
  readonly sha256: string;
  readonly blobId: string;
  /** KEK version the data key was wrapped under when the version was made. */
  readonly kekVersion: number;
  readonly createdAt: string;
  readonly createdBy: PersonRef;
  /** Absent for uploads. */
  readonly origin?: VersionOrigin;
}

/** A WebDAV lock (RFC 4918 §6) on a URL of a study: kept until it expires or is unlocked. */
export interface LockRecord {
  /** `opaquelocktoken:<uuid>`, from a CSPRNG. */
  readonly token: string;
  readonly study: string;
  /** Names below the study root of the locked URL (the lock root); [] is the study root. */
  readonly root: readonly string[];
  readonly scope: 'exclusive' | 'shared';
  readonly depth: 0 | 'infinity';
  /** The client's DAV:owner element, serialised XML, or null when it sent none. */
  readonly owner: string | null;
  /** The timeout granted, in seconds. */
  readonly timeoutSeconds: number;
  readonly expiresAt: string;
  readonly createdAt: string;
  readonly createdBy: PersonRef;
}
