// The audit review facade: who may read which part of the trail, for every
// front end alike (REST API and CLI now, the web UI later). A person holding
// `read-audit` at a study's root (the Auditor and Sponsor roles in the
// template) reviews that study's entries only; Administrators review the
// whole trail (it holds no file content, and keeping it whole is their job).
// Every export and every verification is itself audited, a refused one too.

import { Readable } from 'node:stream';
import { decide, decideSystem } from '../access/index.ts';
import { brokenAt, exportTrail, filterTime, verificationEvent, type AuditTrail, type ExportFilter, type SignedCheckpoint, type ChainReport } from '../audit/index.ts';
import { isStudyId, originFields, VellumError, type Principal, type RequestOrigin } from '../kernel/index.ts';
import type { Vault } from '../vault/index.ts';

export type ExportFormat = 'jsonl' | 'csv';
const FORMATS: readonly ExportFormat[] = ['jsonl', 'csv'];
const OUTCOMES = ['success', 'denied', 'failed'] as const;
const ACTION = /^[a-z][a-z0-9-]*(\.[a-z0-9-]+)*\.?$/;
const MAX_USER = 256;

/** What a person asks to export; every field optional, checked here (BAD_REQUEST). */
export interface ExportRequest {
  readonly format?: unknown;
  readonly study?: unknown;
  readonly from?: unknown;
  readonly to?: unknown;
  readonly user?: unknown;
  readonly action?: unknown;
  readonly outcome?: unknown;
}

export interface AuditExport {
  readonly body: Readable;
  readonly format: ExportFormat;
  readonly contentType: string;
  readonly filename: string;
  readonly checkpoint: SignedCheckpoint;
}

/** Which studies' entries the person may review: every entry, or those of these studies only. */
export type AuditScope = { readonly all: true } | { readonly all: false; readonly studies: readonly string[] };

export interface AuditReview {
  /** @throws FORBIDDEN (no read-audit anywhere and not an Administrator; audited) */
  scope(): Promise<AuditScope>;
  /**
   * Streams an export cut at a checkpoint covering the current head (signed now if
   * needed). Audited `audit.export` before the first byte; a stream that fails is
   * audited again as failed.
   * @throws BAD_REQUEST (filter), NOT_FOUND (a study the person holds no role in; audited),
   *   FORBIDDEN (a study they may not review, or none; audited), HSM_UNAVAILABLE
   */
  export(request: ExportRequest): Promise<AuditExport>;
  /**
   * Checks the whole live store (chain, tree, signed checkpoints). Audited
   * `audit.verify`: outcome failed when something is broken, and the integrity
   * alert is raised. @throws FORBIDDEN (as scope())
   */
  verify(onProgress?: (checked: number, total: number) => void): Promise<ChainReport>;
  /** The signing certificate, PEM. Anyone signed in. @throws NOT_FOUND before the first checkpoint key exists */
  certificate(): string;
}

export interface AuditReviewParts {
  readonly audit: AuditTrail;
  readonly vault: Pick<Vault, 'listStudies' | 'getStudy'>;
  readonly administratorGroups: readonly string[];
  /** A verification found the trail broken: raise the integrity alert (log, webhook). */
  readonly onIntegrityFailure: (problem: string) => void;
}

export function openAuditReview(parts: AuditReviewParts, principal: Principal, origin: RequestOrigin): AuditReview {
  const { audit } = parts;
  const where = { actor: principal, ...originFields(origin) };

  async function refuse(action: string, error: VellumError, study?: string): Promise<never> {
    await audit.record({ ...where, action, outcome: 'denied', ...(study ? { object: { study } } : {}), detail: `${error.code}: ${error.message}` });
    throw error;
  }

  async function scopeFor(action: string): Promise<AuditScope & { roles: readonly string[] }> {
    const system = decideSystem(principal, parts.administratorGroups);
    if (system.allowed) return { all: true, roles: system.roles };
    const studies: string[] = [];
    const roles = new Set<string>();
    for (const study of await parts.vault.listStudies()) {
      const decision = decide(principal, study, [], 'read-audit');
      if (!decision.allowed) continue;
      studies.push(study.id);
      decision.roles.forEach((role) => roles.add(role));
    }
    if (studies.length === 0) return refuse(action, new VellumError('FORBIDDEN', `${principal.login} may not review the audit trail of any study.`));
    return { all: false, studies, roles: [...roles] };
  }

  /** The one study asked for, when the person may review it; NOT_FOUND as for a missing study when they hold no role there. */
  async function checkStudy(id: string, scope: AuditScope): Promise<void> {
    if (scope.all || scope.studies.includes(id)) return;
    const study = await parts.vault.getStudy(id);
    const decision = study ? decide(principal, study, [], 'read-audit') : null;
    if (!decision || decision.roles.length === 0) return refuse('audit.export', new VellumError('NOT_FOUND', `There is no study ${id}.`), id);
    return refuse('audit.export', new VellumError('FORBIDDEN', decision.reason), id);
  }

  return {
    async scope() {
      const { roles: _roles, ...scope } = await scopeFor('audit.scope');
      return scope;
    },

    async export(request) {
      const format = parseFormat(request.format);
      const asked = parseFilter(request);
      const scope = await scopeFor('audit.export');
      if (asked.study !== undefined) await checkStudy(asked.study, scope);
      const filter: ExportFilter = { ...asked, ...(scope.all ? {} : { studies: scope.studies }) };
      const checkpoint = await audit.checkpoint();
      const object = asked.study ? { study: asked.study } : {};
      await audit.record({
        ...where, action: 'audit.export', outcome: 'success', roles: scope.roles, object,
        newValue: { format, filter, checkpoint: { size: checkpoint.size, time: checkpoint.time, root: checkpoint.root } },
      });
      const body = Readable.from(exportTrail(audit, { format, filter, checkpoint }), { objectMode: false });
      body.once('error', (e: Error) => {
        void audit.record({ ...where, action: 'audit.export', outcome: 'failed', roles: scope.roles, object, detail: e.message }).catch(() => undefined);
      });
      const named = asked.study ?? (scope.all ? 'all' : 'studies');
      return {
        body, format, checkpoint,
        contentType: format === 'csv' ? 'text/csv; charset=utf-8; header=present' : 'application/jsonl; charset=utf-8',
        filename: `vellum-audit-${named}-${checkpoint.size}.${format}`,
      };
    },

    async verify(onProgress) {
      const scope = await scopeFor('audit.verify');
      const report = await audit.verify(onProgress ? { onProgress } : {});
      await audit.record({ ...where, roles: scope.roles, ...verificationEvent(report) });
      const broken = brokenAt(report);
      if (broken) parts.onIntegrityFailure(broken);
      return report;
    },

    certificate() {
      const pem = audit.certificatePem();
      if (pem === null) throw new VellumError('NOT_FOUND', 'The appliance has no audit signing certificate yet.');
      return pem;
    },
  };
}

function parseFormat(value: unknown): ExportFormat {
  if (value === undefined) return 'jsonl';
  if (typeof value === 'string' && (FORMATS as readonly string[]).includes(value)) return value as ExportFormat;
  throw new VellumError('BAD_REQUEST', `The format is "jsonl" (JSON Lines) or "csv".`);
}

type AskedFilter = { study?: string; from?: string; to?: string; user?: string; action?: string; outcome?: (typeof OUTCOMES)[number] };

function parseFilter(request: ExportRequest): AskedFilter {
  const filter: AskedFilter = {};
  const text = (name: string, value: unknown): string | undefined => {
    if (value === undefined || value === '') return undefined;
    if (typeof value !== 'string') throw new VellumError('BAD_REQUEST', `The filter "${name}" is a text.`);
    return value;
  };
  const study = text('study', request.study);
  if (study !== undefined) {
    if (!isStudyId(study)) throw new VellumError('BAD_REQUEST', `"${study}" is not a study id.`);
    filter.study = study;
  }
  for (const name of ['from', 'to'] as const) {
    const value = text(name, request[name]);
    if (value === undefined) continue;
    filter[name] = filterTime(value, name);
  }
  if (filter.from && filter.to && filter.from >= filter.to) throw new VellumError('BAD_REQUEST', 'The filter "from" must be before "to".');
  const user = text('user', request.user);
  if (user !== undefined) {
    if (user.length > MAX_USER) throw new VellumError('BAD_REQUEST', `The filter "user" is at most ${MAX_USER} characters.`);
    filter.user = user;
  }
  const action = text('action', request.action);
  if (action !== undefined) {
    if (!ACTION.test(action) || action.length > 100) throw new VellumError('BAD_REQUEST', 'The filter "action" is an action such as "file.write", or a prefix ending in "." such as "file.".');
    filter.action = action;
  }
  const outcome = text('outcome', request.outcome);
  if (outcome !== undefined) {
    if (!(OUTCOMES as readonly string[]).includes(outcome)) throw new VellumError('BAD_REQUEST', 'The filter "outcome" is success, denied or failed.');
    filter.outcome = outcome as AskedFilter['outcome'];
  }
  return filter;
}
