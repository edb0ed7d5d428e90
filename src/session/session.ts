// The per-person facade every front end goes through: check access, call the
// vault, audit. WebDAV and the web UI get the same checks and the same audit
// entries because they share this code.

import { PassThrough, Readable } from 'node:stream';
import {
  ACCESS_TEMPLATE, ACTIONS, decide, decideSystem, decideVisible, parseAccessRules, parseBindings, permissionsAt, rulesOf,
  type AccessRules, type Action, type Binding, type Decision,
} from '../access/index.ts';
import type { AuditEvent, AuditTrail } from '../audit/index.ts';
import {
  formatVaultPath, isVellumError, originFields, VellumError, type Principal, type RequestOrigin, type VaultPath,
} from '../kernel/index.ts';
import type {
  ByteRange, KeyStatus, LockRecord, LockRequest, NewStudy, NodeRecord, NodeView, PropertyMap, PropertyOperation, StorageUsage, RotationStatus, ScrubStatus, StudyRecord, TransferResult, Vault,
  VersionRecord, VersionView, WriteResult,
} from '../vault/index.ts';

/** A file found and authorised for reading; its bytes are read (and audited) only on read(). */
export interface OpenFile {
  readonly node: NodeRecord;
  readonly version: VersionRecord;
  /** Streams the content, or a range of it, and audits the read. */
  read(range?: ByteRange): Promise<Readable>;
}

/** What the caller may do at a path (Session.permissions), for the UI and for clients. */
export interface PathPermissions {
  readonly study: string;
  /** The path inside the study ("/" for the study folder). */
  readonly path: string;
  /** The person's roles in the study, and Administrator when they are one. */
  readonly roles: readonly string[];
  /** Actions allowed there, in the order of ACTIONS (administer also for system Administrators). */
  readonly actions: readonly Action[];
  /** Not readable, but on the way to a folder that is: may be stat'ed and listed. */
  readonly passThrough: boolean;
}

/** What createStudy takes: bindings and rules may be untrusted JSON, checked here (BAD_REQUEST); rules default to the template. */
export interface StudyInput extends Omit<NewStudy, 'bindings' | 'accessRules'> {
  readonly bindings: unknown;
  readonly accessRules?: unknown;
}

/**
 * Every method checks access first and audits the change or read it makes;
 * failures after the check are audited too. A denial is audited and thrown as
 * FORBIDDEN, or as NOT_FOUND (the same answer as for a study that does not
 * exist) when the person holds no role in the study. Access depends on the
 * path only (access/), never on what exists there. Errors are VellumErrors
 * from the catalog.
 */
export interface Session {
  readonly principal: Principal;
  /** Studies where the person holds a role and may see the study folder. */
  listStudies(): Promise<StudyRecord[]>;
  /**
   * The studies this person sees or administers, with their roles there: for
   * the API and the UI. Administrators see every study (its id and title, not
   * its content), so they can manage studies they hold no role in.
   */
  studiesOverview(): Promise<StudyOverview[]>;
  /** A file or folder the person may read or pass through. @throws NOT_FOUND, FORBIDDEN */
  stat(path: VaultPath): Promise<NodeRecord>;
  /** A folder's members the person may read or pass through (the others are left out). @throws NOT_FOUND, NOT_A_FOLDER, FORBIDDEN */
  list(path: VaultPath): Promise<NodeRecord[]>;
  makeFolder(path: VaultPath): Promise<NodeRecord>;
  /**
   * A new version of the file at path. With expectedSha256 (lowercase hex) the
   * bytes must hash to it. @throws DIGEST_MISMATCH, UPLOAD_INCOMPLETE, BODY_TOO_LARGE, ...
   */
  writeFile(path: VaultPath, body: Readable, options: { maxBytes: number; expectedSha256?: string }): Promise<WriteResult>;
  /** @throws VellumError NOT_FOUND, IS_A_FOLDER, FORBIDDEN */
  openFile(path: VaultPath): Promise<OpenFile>;
  /** Tombstones a file or folder; it goes to the trash. */
  remove(path: VaultPath): Promise<NodeRecord>;

  /** A live node by path, with its id (for the node-id based calls below). @throws NOT_FOUND */
  nodeAt(path: VaultPath): Promise<NodeView>;
  /** A node by id, live or in the trash. @throws NOT_FOUND */
  node(study: string, nodeId: string): Promise<NodeView>;
  /** Every version of a file, oldest first. @throws NOT_FOUND, IS_A_FOLDER */
  versions(study: string, nodeId: string): Promise<VersionView[]>;
  /** Any version of a file, for download (read audited). @throws NOT_FOUND, VERSION_NOT_FOUND, CONTENT_SHREDDED */
  openVersion(study: string, nodeId: string, number: number): Promise<OpenFile>;
  /** A new version with the content of an older one. @throws NOT_FOUND, VERSION_NOT_FOUND, NOT_FOUND for a file in the trash */
  restoreVersion(study: string, nodeId: string, number: number): Promise<WriteResult>;
  /** Deleted items of a study the person may read or pass through, newest first (items inside a deleted folder come back with it). */
  trash(study: string): Promise<NodeView[]>;
  /** Undoes a delete, under the old name or `name`. @throws NOT_DELETED, NAME_TAKEN, PARENT_MISSING */
  undelete(study: string, nodeId: string, options?: { name?: string }): Promise<NodeView>;
  /**
   * Moves a file or folder within its study; the node keeps its id and history.
   * An existing destination is tombstoned when overwrite is true.
   * @throws NOT_FOUND, DESTINATION_EXISTS, PARENT_MISSING, FORBIDDEN (across studies, into itself)
   */
  move(from: VaultPath, to: VaultPath, options: { overwrite: boolean }): Promise<TransferResult>;
  /**
   * Copies a file or folder (depth 0: the folder only). Within a study the copy
   * shares the encrypted content; across studies it is re-encrypted under the
   * target study's key. A copy onto an existing file makes a new version of it.
   */
  copy(from: VaultPath, to: VaultPath, options: { overwrite: boolean; depth: 0 | 'infinity' }): Promise<TransferResult>;

  /** Dead properties of the file or folder at path (only `names` when given): Clark name -> serialised element. */
  properties(path: VaultPath, names?: readonly string[]): Promise<PropertyMap>;
  /**
   * Dead properties of nodes found by stat() or list() (each with the path it
   * was found at), in order; one batched read per study. A node the person
   * may only pass through shows none: dead properties need read.
   */
  propertiesOf(nodes: readonly { readonly path: VaultPath; readonly id: string }[], names?: readonly string[]): Promise<PropertyMap[]>;
  /**
   * PROPPATCH: sets and removes dead properties in order, all or nothing;
   * audited as `node.properties` with the old and new values.
   * @throws NOT_FOUND, FORBIDDEN, PROPERTIES_TOO_LARGE
   */
  patchProperties(path: VaultPath, operations: readonly PropertyOperation[]): Promise<NodeRecord>;
  /**
   * Audits a listing (PROPFIND, when audit.propfind is on) as `node.list` with
   * the depth asked for; the path was found with stat() first (which audits denials).
   */
  recordListing(path: VaultPath, depth: 0 | 1 | 'infinity', nodeId?: string): Promise<void>;
  /** Quota figures (RFC 4331) for the study of path. */
  storageUsage(path: VaultPath): Promise<StorageUsage>;

  /**
   * For answers a front end gives without the vault (discarded macOS
   * metadata): the folder at path must exist and the person may do action
   * there. @throws NOT_FOUND, FORBIDDEN (audited as a denial)
   */
  checkAccess(path: VaultPath, action: 'read' | 'write', auditAction: string): Promise<void>;
  /** A refusal decided by a front end's policy (e.g. dav.macMetadata "refuse"): audited as a denial, thrown as FORBIDDEN. */
  refuse(path: VaultPath, auditAction: string, detail: string): Promise<never>;

  /** Active locks that cover path: on it, or depth-infinity locks on a folder above it. None where the person may only pass through: lock discovery needs read. */
  locksOn(path: VaultPath): Promise<LockRecord[]>;
  /** locksOn for many paths (a folder listing). */
  locksOnEach(paths: readonly VaultPath[]): Promise<LockRecord[][]>;
  /**
   * Locks path; an unmapped path first becomes an empty file (created: true).
   * @throws LOCK_CONFLICT, PARENT_MISSING, LOCKED (creating the file inside a locked folder), FORBIDDEN
   */
  lock(path: VaultPath, request: LockRequest): Promise<{ lock: LockRecord; created: boolean }>;
  /** New timeouts for this person's locks on path named by the submitted tokens. @throws LOCK_TOKEN_MISMATCH, LOCKED */
  refreshLock(path: VaultPath, timeout: LockRequest['timeout']): Promise<LockRecord[]>;
  /** Removes this person's lock. @throws LOCK_TOKEN_MISMATCH, FORBIDDEN (someone else's lock) */
  unlock(path: VaultPath, token: string): Promise<LockRecord>;

  /** System action: Administrators only. Rules default to the template. @throws STUDY_EXISTS, BAD_REQUEST, PATH_INVALID */
  createStudy(input: StudyInput): Promise<StudyRecord>;
  /** The study's role bindings: for those who may administer it (Administrators, or a role granted administer). */
  bindings(study: string): Promise<readonly Binding[]>;
  /** Replaces the role bindings (audited `study.bindings`, old and new). @throws NOT_FOUND, FORBIDDEN, BAD_REQUEST */
  setBindings(study: string, bindings: unknown): Promise<StudyRecord>;
  /** The rules in force (the template for a study that has none stored): for those who may administer the study. */
  accessRules(study: string): Promise<AccessRules<string>>;
  /** Replaces the access rules (audited `study.access-rules`, old and new). @throws NOT_FOUND, FORBIDDEN, BAD_REQUEST, PATH_INVALID */
  setAccessRules(study: string, rules: unknown): Promise<StudyRecord>;
  /** What the caller may do at path (in a study). @throws NOT_FOUND (no role and not an Administrator) */
  permissions(path: VaultPath): Promise<PathPermissions>;
  /** The study's folders where changes need a reason: for Administrators and people with a role in the study. */
  changeReasonFolders(study: string): Promise<readonly string[]>;
  /** Administrators: replaces the study's folder rules for reasons for change (audited with old and new). */
  setChangeReasonFolders(study: string, folders: readonly string[]): Promise<StudyRecord>;
  /** Administrators: KEK versions, blobs per version, last rotation. */
  keyStatus(study: string): Promise<KeyStatus>;
  /** Administrators: a new KEK version now; older data keys are re-wrapped in the background. @throws JOB_RUNNING */
  rotateStudyKey(study: string): Promise<RotationStatus>;
  /** Administrators: the running or last scrub, or null. */
  scrubStatus(): Promise<ScrubStatus | null>;
  /** Administrators: re-verify every blob in the background. @throws JOB_RUNNING */
  startScrub(): Promise<ScrubStatus>;
}

export interface StudyOverview {
  readonly id: string;
  readonly title: string;
  readonly createdAt: string;
  /** The person's roles in the study ([] for an Administrator without one). */
  readonly roles: readonly string[];
  /** Whether the person may change the study's settings (bindings, rules, keys). */
  readonly administer: boolean;
}

export interface SessionParts {
  readonly vault: Vault;
  readonly audit: AuditTrail;
  readonly administratorGroups: readonly string[];
}

export interface SessionOptions {
  /** Reason for change, recorded with every change made in this session. */
  readonly reason?: string;
  /**
   * Lock tokens the client submitted with this request (WebDAV If header). A
   * change to a locked resource needs the token of every lock on it, held by
   * the same person.
   */
  readonly lockTokens?: readonly string[];
  /** Skip access checks: only for the appliance's own start-up work (demo seeding), never for a request. */
  readonly system?: boolean;
}

/**
 * The body as the front end sees it: when a segment fails to authenticate, the
 * alert is in the audit trail before the error reaches the front end (which
 * then cuts the response or answers 500).
 */
function raisingAlerts(body: Readable, raise: (e: Error) => Promise<void>): Readable {
  const out = new PassThrough();
  body.once('error', (e: Error) => {
    const raised = isVellumError(e, 'INTEGRITY_FAILURE') ? raise(e) : Promise.resolve();
    void raised.finally(() => out.destroy(e));
  });
  // The reader went away (client disconnect): stop reading the blob.
  out.once('close', () => body.destroy());
  body.pipe(out);
  return out;
}

export function openSession(parts: SessionParts, principal: Principal, origin: RequestOrigin, options: SessionOptions = {}): Session {
  const { vault, audit } = parts;
  const where = { actor: principal, ...originFields(origin) };

  /** The study, or NOT_FOUND. */
  async function studyOf(id: string): Promise<StudyRecord> {
    const study = await vault.getStudy(id);
    if (!study) throw noStudy(id);
    return study;
  }

  /**
   * Finds the study, decides (`see`: read or pass through), audits a denial.
   * Returns the roles held, for the audit entry of the change.
   */
  async function authorize(path: VaultPath, need: Action | 'see', auditAction: string): Promise<string[]> {
    if (path.study === null) throw new VellumError('FORBIDDEN', 'The top level holds only studies.');
    const study = await studyOf(path.study);
    if (options.system) return ['System'];
    const decision = need === 'see' ? decideVisible(principal, study, path.names) : decide(principal, study, path.names, need);
    if (!decision.allowed) await deny(path, auditAction, decision);
    return [...decision.roles];
  }

  /** Audits a denial and throws it: FORBIDDEN, or NOT_FOUND as for a missing study when the person holds no role there. */
  async function deny(path: VaultPath, auditAction: string, decision: Decision): Promise<never> {
    await audit.record({
      ...where, action: auditAction, outcome: 'denied', roles: decision.roles,
      object: { study: path.study ?? undefined, path: formatVaultPath(path) }, detail: decision.reason,
    });
    throw decision.roles.length === 0 ? noStudy(path.study!) : new VellumError('FORBIDDEN', decision.reason);
  }

  /** May the person see (read or pass through) path? For filtering listings: no audit entry. */
  const visible = (study: StudyRecord, names: readonly string[]) => options.system || decideVisible(principal, study, names).allowed;
  const readable = (study: StudyRecord, names: readonly string[]) => options.system || decide(principal, study, names, 'read').allowed;

  /**
   * A MOVE or COPY that tombstones what is at the destination deletes it:
   * the person needs delete there too. Checked before the change, like the
   * reason for change.
   */
  async function authorizeReplacing(to: VaultPath, auditAction: string, tombstones: (existing: NodeRecord) => boolean | Promise<boolean>): Promise<void> {
    const existingNode = await existing(to);
    if (existingNode !== undefined && (await tombstones(existingNode))) await authorize(to, 'delete', auditAction);
  }

  /**
   * Runs a change; a failure after authorization is audited too, then rethrown.
   * With `replaces`, the study's folder rules may require a reason for it.
   */
  async function change<T>(path: VaultPath, action: Action, auditAction: string, run: (roles: string[]) => Promise<T>, replaces?: string): Promise<T> {
    const roles = await authorize(path, action, auditAction);
    if (replaces !== undefined) await requireReason(path, auditAction, replaces);
    return audited({ action: auditAction, roles, object: { study: path.study ?? undefined, path: formatVaultPath(path) } }, () => run(roles));
  }

  /** Runs work already authorized; a failure is audited, then rethrown. */
  async function audited<T>(event: Omit<AuditEvent, 'outcome'>, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      await auditFailure({ ...where, ...event }, e);
      throw e;
    }
  }

  async function auditFailure(event: Omit<AuditEvent, 'outcome'>, e: unknown): Promise<void> {
    const code = isVellumError(e) ? e.code : 'INTERNAL';
    // The store itself failing can't be recorded in it; the error still reaches the caller.
    if (code === 'STORE_UNAVAILABLE') return;
    await audit.record({ ...event, outcome: 'failed', detail: `${code}: ${(e as Error).message}` }).catch(() => undefined);
    if (code === 'INTEGRITY_FAILURE') await integrityAlert(event.object, e as Error, 'on open');
  }

  /** Damaged stored data found while serving a person: raised in the audit trail (the front end logs it). */
  async function integrityAlert(object: AuditEvent['object'], e: Error, when: string): Promise<void> {
    await audit.record({
      action: 'integrity.alert', outcome: 'failed', actor: null, protocol: 'system', object,
      detail: `${(e as { code?: string }).code ?? 'INTEGRITY_FAILURE'}: ${e.message}`, newValue: { found: `read ${when}`, reader: principal.login },
    }).catch(() => undefined);
  }

  /**
   * Refuses (428, audited) a change that the study's folder rules say needs a
   * reason when none was given: one that removes or replaces what is at
   * `path`. `movedTo` is where a MOVE takes it (a move
   * within a rule's folder needs no reason, one out of it does). Checked
   * before the change, not in its batch: a file created by someone else in
   * between can be replaced without a reason.
   */
  async function requireReason(path: VaultPath, auditAction: string, what: string, movedTo?: VaultPath): Promise<void> {
    if (options.reason !== undefined || path.study === null) return;
    const study = await vault.getStudy(path.study);
    const rules = study?.changeReasonFolders ?? [];
    const rule = rules.find((folder) => {
      const names = folder.split('/').filter((name) => name !== '');
      const covers = isPrefix(names, path.names);
      // A folder above the rule's folder takes the rule's folder with it.
      const holds = isPrefix(path.names, names);
      return (covers || holds) && !(movedTo !== undefined && covers && isPrefix(names, movedTo.names));
    });
    // Nothing there: nothing to delete or replace (the method answers 404 or creates).
    if (rule === undefined || !(await existing(path))) return;
    const message = `Study ${path.study} requires a reason for change to ${what} ${formatVaultPath(path)} (folder rule "${rule}"). `
      + 'Send it in the header X-Change-Reason: <why>, percent-encoded as UTF-8 when it is not plain ASCII (e.g. X-Change-Reason: Corrected%20visit%20date).';
    await audit.record({ ...where, action: auditAction, outcome: 'denied', object: { study: path.study, path: formatVaultPath(path) }, detail: `REASON_REQUIRED: ${message}` });
    throw new VellumError('REASON_REQUIRED', message);
  }

  /** The node at path, or undefined when there is none. */
  async function existing(path: VaultPath): Promise<NodeRecord | undefined> {
    try {
      return await vault.stat(path);
    } catch (e) {
      if (isVellumError(e, 'NOT_FOUND')) return undefined;
      throw e;
    }
  }

  const actor = (roles: string[]) => ({
    principal, origin, roles, lockTokens: options.lockTokens ?? [], ...(options.reason === undefined ? {} : { reason: options.reason }),
  });

  /** A node by id, authorized for `action` against the path it is (or was) at. */
  async function nodeFor(study: string, nodeId: string, action: Action | 'see', auditAction: string): Promise<{ view: NodeView; roles: string[] }> {
    // The person's standing in the study first: without a role, an id tells nothing either.
    await studyStanding(study, auditAction);
    const node = await vault.node(study, nodeId);
    const location = await vault.locate(node);
    const roles = await authorize(location.path, action, auditAction);
    return { view: { ...node, path: formatVaultPath(location.path), inTrash: location.inTrash }, roles };
  }

  /** Opens one version for reading; the read itself is audited when it happens. */
  function openable(node: NodeRecord, version: VersionRecord, path: string, roles: string[]): OpenFile {
    const object = { study: node.study, path, nodeId: node.id, versionId: version.id };
    return {
      node,
      version,
      async read(range) {
        const body = await audited({ action: 'file.read', roles, object }, () => vault.readVersion(version, node.study, range));
        await audit.record({
          ...where, action: 'file.read', outcome: 'success', roles, object,
          newValue: { version: version.number, ...(range ? { range: `${range.start}-${range.end}` } : {}) },
        });
        return raisingAlerts(body, (e) => integrityAlert(object, e, 'while streaming'));
      },
    };
  }

  /** NOT_FOUND (audited as a denial) unless the person holds a role in the study. */
  async function studyStanding(id: string, auditAction: string): Promise<StudyRecord> {
    const study = await studyOf(id);
    if (!options.system) {
      const decision = decide(principal, study, [], 'read');
      if (decision.roles.length === 0) await deny({ study: id, names: [] }, auditAction, decision);
    }
    return study;
  }

  /**
   * Study settings (bindings, rules, reasons for change, keys): system
   * Administrators, or a role the study's rules grant administer; denials audited.
   */
  async function administerStudy(id: string, auditAction: string): Promise<{ study: StudyRecord; roles: string[] }> {
    const study = await studyOf(id);
    if (options.system) return { study, roles: ['System'] };
    const system = decideSystem(principal, parts.administratorGroups);
    if (system.allowed) return { study, roles: [...system.roles] };
    const decision = decide(principal, study, [], 'administer');
    if (!decision.allowed) await deny({ study: id, names: [] }, auditAction, decision);
    return { study, roles: [...decision.roles] };
  }

  async function locksOn(path: VaultPath): Promise<LockRecord[]> {
    await authorize(path, 'see', 'node.stat');
    return readable(await studyOf(path.study!), path.names) ? vault.locksOn(path) : [];
  }

  /** System actions: Administrators only; denials audited. */
  async function administrator(auditAction: string, object: AuditEvent['object']): Promise<string[]> {
    if (options.system) return ['System'];
    const decision = decideSystem(principal, parts.administratorGroups);
    if (!decision.allowed) {
      await audit.record({ ...where, action: auditAction, outcome: 'denied', object, detail: decision.reason });
      throw new VellumError('FORBIDDEN', decision.reason);
    }
    return [...decision.roles];
  }

  return {
    principal,

    async listStudies() {
      const all = await vault.listStudies();
      return all.filter((study) => visible(study, []));
    },

    async studiesOverview() {
      const administrator = options.system || decideSystem(principal, parts.administratorGroups).allowed;
      return (await vault.listStudies()).flatMap((study) => {
        const here = permissionsAt(principal, study, []);
        if (!administrator && !visible(study, [])) return [];
        return [{
          id: study.id, title: study.title, createdAt: study.createdAt, roles: here.roles,
          administer: administrator || here.actions.includes('administer'),
        }];
      });
    },

    async stat(path) {
      await authorize(path, 'see', 'node.stat');
      return vault.stat(path);
    },

    async list(path) {
      await authorize(path, 'see', 'folder.list');
      const members = await vault.list(path);
      if (options.system) return members;
      const study = await studyOf(path.study!);
      return members.filter((node) => visible(study, [...path.names, node.name]));
    },

    makeFolder: (path) => change(path, 'write', 'folder.create', (roles) => vault.makeFolder(path, actor(roles))),

    // New files never need a reason; overwriting one may. Checked before the body is read.
    writeFile: (path, body, writeOptions) => change(path, 'write', 'file.write', (roles) => vault.writeFile(path, body, actor(roles), writeOptions), 'overwrite'),

    remove: (path) => change(path, 'delete', 'node.delete', (roles) => vault.remove(path, actor(roles)), 'delete'),

    async openFile(path) {
      const roles = await authorize(path, 'read', 'file.read');
      const node = await vault.stat(path);
      const version = node.currentVersion;
      if (node.kind !== 'file' || version === null) throw new VellumError('IS_A_FOLDER', 'A folder has no content to download.');
      return openable(node, version, formatVaultPath(path), roles);
    },

    async nodeAt(path) {
      await authorize(path, 'see', 'node.stat');
      return vault.view(await vault.stat(path));
    },

    async node(study, nodeId) {
      return (await nodeFor(study, nodeId, 'see', 'node.stat')).view;
    },

    async versions(study, nodeId) {
      const { view } = await nodeFor(study, nodeId, 'read', 'file.versions');
      return vault.versions(view);
    },

    async openVersion(study, nodeId, number) {
      const { view, roles } = await nodeFor(study, nodeId, 'read', 'file.read');
      const version = await vault.version(view, number);
      return openable(view, version, view.path, roles);
    },

    async restoreVersion(study, nodeId, number) {
      const { view, roles } = await nodeFor(study, nodeId, 'write', 'file.restore');
      const path: VaultPath = { study, names: view.path.split('/').filter((name) => name !== '').slice(1) };
      await requireReason(path, 'file.restore', 'restore an older version of');
      return audited({ action: 'file.restore', roles, object: { study, path: view.path, nodeId } }, () => vault.restoreVersion(view, number, actor(roles)));
    },

    async trash(study) {
      await authorize({ study, names: [] }, 'see', 'trash.list');
      const items = await vault.trash(study);
      const record = await studyOf(study);
      // A view's path is "/STUDY/a/b".
      return items.filter((item) => visible(record, item.path.split('/').filter((name) => name !== '').slice(1)));
    },

    // Undoing a delete writes the item back: write where it goes.
    async undelete(study, nodeId, undeleteOptions = {}) {
      const { view, roles } = await nodeFor(study, nodeId, 'write', 'node.undelete');
      return audited({ action: 'node.undelete', roles, object: { study, path: view.path, nodeId } }, () => vault.undelete(study, nodeId, actor(roles), undeleteOptions.name));
    },

    async move(from, to, moveOptions) {
      const roles = await authorize(from, 'delete', 'node.move');
      await authorize(to, 'write', 'node.move');
      if (moveOptions.overwrite) await authorizeReplacing(to, 'node.move', () => true);
      await requireReason(from, 'node.move', 'move', to);
      if (moveOptions.overwrite) await requireReason(to, 'node.move', 'replace');
      return audited(
        { action: 'node.move', roles, object: { study: from.study ?? undefined, path: formatVaultPath(from) }, newValue: { path: formatVaultPath(to) } },
        () => vault.move(from, to, actor(roles), moveOptions),
      );
    },

    async copy(from, to, copyOptions) {
      await authorize(from, 'read', 'node.copy');
      const roles = await authorize(to, 'write', 'node.copy');
      // A file copied onto a file adds a version; anything else replaces what is there.
      if (copyOptions.overwrite) {
        await authorizeReplacing(to, 'node.copy', async (existingNode) => existingNode.kind === 'folder' || (await vault.stat(from)).kind === 'folder');
      }
      if (copyOptions.overwrite) await requireReason(to, 'node.copy', 'replace');
      return audited(
        { action: 'node.copy', roles, object: { study: to.study ?? undefined, path: formatVaultPath(to) }, oldValue: { path: formatVaultPath(from) } },
        () => vault.copy(from, to, actor(roles), copyOptions),
      );
    },

    async properties(path, names) {
      await authorize(path, 'read', 'node.stat');
      const node = await vault.stat(path);
      return (await vault.propertiesOf(node.study, [node.id], names))[0]!;
    },

    async propertiesOf(found, names) {
      const result: PropertyMap[] = found.map(() => new Map());
      const byStudy = new Map<string, number[]>();
      for (const [i, { path }] of found.entries()) {
        if (path.study === null) continue;
        byStudy.set(path.study, [...(byStudy.get(path.study) ?? []), i]);
      }
      for (const [id, indexes] of byStudy) {
        const study = await studyOf(id);
        for (const i of indexes) await authorize(found[i]!.path, 'see', 'node.stat');
        const wanted = indexes.filter((i) => readable(study, found[i]!.path.names));
        const properties = await vault.propertiesOf(id, wanted.map((i) => found[i]!.id), names);
        wanted.forEach((i, j) => (result[i] = properties[j]!));
      }
      return result;
    },

    patchProperties: (path, operations) => change(path, 'write', 'node.properties', (roles) => vault.patchProperties(path, operations, actor(roles))),

    async recordListing(path, depth, nodeId) {
      // The top level (the list of studies) is open to everyone signed in: no study, no roles.
      const roles = path.study === null ? [] : await authorize(path, 'see', 'node.list');
      await audit.record({
        ...where, action: 'node.list', outcome: 'success', roles,
        object: { ...(path.study === null ? {} : { study: path.study }), path: formatVaultPath(path), ...(nodeId === undefined ? {} : { nodeId }) },
        newValue: { depth },
      });
    },

    async storageUsage(path) {
      await authorize(path, 'see', 'node.stat');
      return vault.storageUsage(path.study!);
    },

    async checkAccess(path, action, auditAction) {
      await authorize(path, action, auditAction);
      if (path.names.length > 0 && (await vault.stat(path)).kind !== 'folder') throw new VellumError('NOT_A_FOLDER');
    },

    async refuse(path, auditAction, detail) {
      await audit.record({ ...where, action: auditAction, outcome: 'denied', object: { study: path.study ?? undefined, path: formatVaultPath(path) }, detail });
      throw new VellumError('FORBIDDEN', detail);
    },

    locksOn,

    locksOnEach: (paths) => Promise.all(paths.map(locksOn)),

    async lock(path, request) {
      const roles = await authorize(path, 'lock', 'node.lock');
      // RFC 4918 §7.3: a LOCK on an unmapped URL makes an empty resource (here a versioned, audited empty file): a write too.
      const creates = (await existing(path)) === undefined;
      if (creates) await authorize(path, 'write', 'node.lock');
      return audited({ action: 'node.lock', roles, object: { study: path.study ?? undefined, path: formatVaultPath(path) } }, async () => {
        if (creates) await vault.writeFile(path, Readable.from([]), actor(roles), { maxBytes: 0 });
        return { lock: await vault.lock(path, request, actor(roles)), created: creates };
      });
    },

    refreshLock: (path, timeout) => change(path, 'lock', 'node.lock.refresh', (roles) => vault.refreshLock(path, timeout, actor(roles))),

    unlock: (path, token) => change(path, 'lock', 'node.unlock', (roles) => vault.unlock(path, token, actor(roles))),

    async createStudy(input) {
      const roles = await administrator('study.create', { study: input.id });
      const bindings = parseBindings(input.bindings);
      const accessRules = input.accessRules === undefined ? ACCESS_TEMPLATE : parseAccessRules(input.accessRules);
      return vault.createStudy({ ...input, bindings, accessRules }, actor(roles));
    },

    async bindings(study) {
      return (await administerStudy(study, 'study.bindings')).study.bindings;
    },

    async setBindings(study, bindings) {
      const { roles } = await administerStudy(study, 'study.bindings');
      const checked = parseBindings(bindings);
      return audited({ action: 'study.bindings', roles, object: { study } }, () => vault.setBindings(study, checked, actor(roles)));
    },

    async accessRules(study) {
      return rulesOf((await administerStudy(study, 'study.access-rules')).study);
    },

    async setAccessRules(study, rules) {
      const { roles } = await administerStudy(study, 'study.access-rules');
      const checked = parseAccessRules(rules);
      return audited({ action: 'study.access-rules', roles, object: { study } }, () => vault.setAccessRules(study, checked, actor(roles), ACCESS_TEMPLATE));
    },

    async permissions(path) {
      if (path.study === null) throw new VellumError('BAD_REQUEST', 'Permissions are per study: name a path in a study.');
      const study = await studyOf(path.study);
      const found = permissionsAt(principal, study, path.names);
      const administrator = options.system || decideSystem(principal, parts.administratorGroups).allowed;
      if (found.roles.length === 0 && !administrator) await deny(path, 'study.permissions', decide(principal, study, path.names, 'read'));
      const actions = administrator && !found.actions.includes('administer') ? ACTIONS.filter((a) => a === 'administer' || found.actions.includes(a)) : found.actions;
      return {
        study: path.study, path: '/' + path.names.join('/'), roles: [...found.roles, ...(administrator ? ['Administrator'] : [])], actions, passThrough: found.passThrough,
      };
    },

    async changeReasonFolders(study) {
      const record = await studyOf(study);
      if (!options.system && !decideSystem(principal, parts.administratorGroups).allowed) await authorize({ study, names: [] }, 'see', 'study.change-reason-folders');
      return record.changeReasonFolders ?? [];
    },

    async setChangeReasonFolders(study, folders) {
      const { roles } = await administerStudy(study, 'study.change-reason-folders');
      return audited({ action: 'study.change-reason-folders', roles, object: { study } }, () => vault.setChangeReasonFolders(study, folders, actor(roles)));
    },

    async keyStatus(study) {
      await administerStudy(study, 'key.status');
      return vault.keyStatus(study);
    },

    async rotateStudyKey(study) {
      const { roles } = await administerStudy(study, 'key.rotate');
      return audited({ action: 'key.rotate', roles, object: { study } }, () => vault.rotateStudyKey(study, actor(roles)));
    },

    async scrubStatus() {
      await administrator('storage.scrub.status', {});
      return vault.scrubStatus();
    },

    async startScrub() {
      const roles = await administrator('storage.scrub', {});
      return audited({ action: 'storage.scrub', roles }, () => vault.startScrub('request', actor(roles)));
    },
  };
}

/** The answer for a study that does not exist, and for one where the person holds no role: the same. */
function noStudy(id: string): VellumError {
  return new VellumError('NOT_FOUND', `There is no study "${id}".`);
}

/** True when `prefix` is the start of (or all of) `names`. */
function isPrefix(prefix: readonly string[], names: readonly string[]): boolean {
  return prefix.length <= names.length && prefix.every((name, i) => names[i] === name);
}
