// The per-person facade every front end goes through: check access, call the
// vault, audit. WebDAV and the web UI get the same checks and the same audit
// entries because they share this code.

import type { Readable } from 'node:stream';
import { decide, decideSystem, type Action } from '../access/index.ts';
import type { AuditEvent, AuditTrail } from '../audit/index.ts';
import {
  formatVaultPath, isVellumError, VellumError, type Principal, type RequestOrigin, type VaultPath,
} from '../kernel/index.ts';
import type { ByteRange, NodeRecord, RoleBinding, StudyRecord, Vault, VersionRecord, WriteResult } from '../vault/index.ts';

/** A file found and authorised for reading; its bytes are read (and audited) only on read(). */
export interface OpenFile {
  readonly node: NodeRecord;
  readonly version: VersionRecord;
  /** Streams the content, or a range of it, and audits the read. */
  read(range?: ByteRange): Promise<Readable>;
}

export interface Session {
  readonly principal: Principal;
  /** Studies where the person holds a role. */
  listStudies(): Promise<StudyRecord[]>;
  stat(path: VaultPath): Promise<NodeRecord>;
  list(path: VaultPath): Promise<NodeRecord[]>;
  makeFolder(path: VaultPath): Promise<NodeRecord>;
  writeFile(path: VaultPath, body: Readable, options: { maxBytes: number }): Promise<WriteResult>;
  /** @throws VellumError NOT_FOUND, IS_A_FOLDER, FORBIDDEN */
  openFile(path: VaultPath): Promise<OpenFile>;
  remove(path: VaultPath): Promise<NodeRecord>;
  /** System action: Administrators only. */
  createStudy(input: { id: string; title: string; bindings: readonly RoleBinding[] }): Promise<StudyRecord>;
}

export interface SessionParts {
  readonly vault: Vault;
  readonly audit: AuditTrail;
  readonly administratorGroups: readonly string[];
}

export interface SessionOptions {
  /** Reason for change, recorded with every change made in this session. */
  readonly reason?: string;
  /** Skip access checks: only for the appliance's own start-up work (demo seeding), never for a request. */
  readonly system?: boolean;
}

export function openSession(parts: SessionParts, principal: Principal, origin: RequestOrigin, options: SessionOptions = {}): Session {
  const { vault, audit } = parts;
  const where = { actor: principal, ip: origin.ip, client: origin.client, protocol: origin.protocol };

  /** Finds the study, decides, audits a denial. Returns the roles held, for the audit entry of the change. */
  async function authorize(path: VaultPath, action: Action, auditAction: string): Promise<string[]> {
    if (path.study === null) throw new VellumError('FORBIDDEN', 'The top level holds only studies.');
    const study = await vault.getStudy(path.study);
    if (!study) throw new VellumError('NOT_FOUND', `There is no study "${path.study}".`);
    if (options.system) return ['System'];
    const decision = decide(principal, study, action);
    if (!decision.allowed) {
      await audit.record({
        ...where, action: auditAction, outcome: 'denied', roles: decision.roles,
        object: { study: path.study, path: formatVaultPath(path) }, detail: decision.reason,
      });
      throw new VellumError('FORBIDDEN', decision.reason);
    }
    return [...decision.roles];
  }

  /** Runs a change; a failure after authorization is audited too, then rethrown. */
  async function change<T>(path: VaultPath, action: Action, auditAction: string, run: (roles: string[]) => Promise<T>): Promise<T> {
    const roles = await authorize(path, action, auditAction);
    try {
      return await run(roles);
    } catch (e) {
      await auditFailure({ ...where, action: auditAction, roles, object: { study: path.study ?? undefined, path: formatVaultPath(path) } }, e);
      throw e;
    }
  }

  async function auditFailure(event: Omit<AuditEvent, 'outcome'>, e: unknown): Promise<void> {
    const code = isVellumError(e) ? e.code : 'INTERNAL';
    // The store itself failing can't be recorded in it; the error still reaches the caller.
    if (code === 'STORE_UNAVAILABLE') return;
    await audit.record({ ...event, outcome: 'failed', detail: `${code}: ${(e as Error).message}` }).catch(() => undefined);
  }

  const actor = (roles: string[]) => ({ principal, origin, roles, ...(options.reason === undefined ? {} : { reason: options.reason }) });

  return {
    principal,

    async listStudies() {
      const all = await vault.listStudies();
      return options.system ? all : all.filter((study) => decide(principal, study, 'read').allowed);
    },

    async stat(path) {
      await authorize(path, 'read', 'node.stat');
      return vault.stat(path);
    },

    async list(path) {
      await authorize(path, 'read', 'folder.list');
      return vault.list(path);
    },

    makeFolder: (path) => change(path, 'write', 'folder.create', (roles) => vault.makeFolder(path, actor(roles))),

    writeFile: (path, body, writeOptions) => change(path, 'write', 'file.write', (roles) => vault.writeFile(path, body, actor(roles), writeOptions)),

    remove: (path) => change(path, 'delete', 'node.delete', (roles) => vault.remove(path, actor(roles))),

    async openFile(path) {
      const roles = await authorize(path, 'read', 'file.read');
      const node = await vault.stat(path);
      const version = node.currentVersion;
      if (node.kind !== 'file' || version === null) throw new VellumError('IS_A_FOLDER', 'A folder has no content to download.');
      const object = { study: node.study, path: formatVaultPath(path), nodeId: node.id, versionId: version.id };
      return {
        node,
        version,
        async read(range) {
          let body: Readable;
          try {
            body = await vault.readCurrent(node, range);
          } catch (e) {
            await auditFailure({ ...where, action: 'file.read', roles, object }, e);
            throw e;
          }
          await audit.record({
            ...where, action: 'file.read', outcome: 'success', roles, object,
            ...(range ? { newValue: { range: `${range.start}-${range.end}` } } : {}),
          });
          return body;
        },
      };
    },

    async createStudy(input) {
      if (options.system) return vault.createStudy(input, actor(['System']));
      const decision = decideSystem(principal, parts.administratorGroups);
      if (!decision.allowed) {
        await audit.record({ ...where, action: 'study.create', outcome: 'denied', object: { study: input.id }, detail: decision.reason });
        throw new VellumError('FORBIDDEN', decision.reason);
      }
      return vault.createStudy(input, actor([...decision.roles]));
    },
  };
}
