// A study's access rules: grants per role for the whole study, refined by
// folder rules, and the template every new study (and every study made before
// rules existed) starts from: the RACI of a clinical trial (docs/access.md).
// Also the checks that turn untrusted input (the API's JSON) into rules and
// role bindings, with a clear BAD_REQUEST for anything unknown.

import { ADMINISTRATOR, checkName, isStudyRole, STUDY_ROLES, VellumError, type StudyRole } from '../kernel/index.ts';

export const ACTIONS = ['read', 'write', 'delete', 'lock', 'share', 'sign', 'read-audit', 'administer'] as const;
export type Action = (typeof ACTIONS)[number];

export function isAction(value: unknown): value is Action {
  return typeof value === 'string' && (ACTIONS as readonly string[]).includes(value);
}

/** What each role may do; a role left out gets nothing from this entry. */
export type Grants<A extends string = Action> = Readonly<Partial<Record<StudyRole, readonly A[]>>>;

export interface FolderRule<A extends string = Action> {
  /** A folder in the study, "/Raw Data" (names NFC, no trailing slash); it covers everything below it. */
  readonly path: string;
  readonly grants: Grants<A>;
}

/**
 * For each role, the most specific folder rule that covers a path and names
 * the role decides; a role no covering rule names gets its `defaults`.
 * Everything not granted is denied. Stored as plain strings (A = string) by
 * the vault, which does not know the actions.
 */
export interface AccessRules<A extends string = Action> {
  readonly defaults: Grants<A>;
  readonly folders: readonly FolderRule<A>[];
}

const SPONSOR: readonly Action[] = ['read', 'write', 'delete', 'lock', 'share', 'sign', 'read-audit'];

/** The RACI of DESIGN.md, as rules: the matrix in docs/access.md. */
export const ACCESS_TEMPLATE: AccessRules = Object.freeze({
  defaults: { Sponsor: SPONSOR, 'Data Manager': ['read'], 'Clinical Monitor': [], Auditor: ['read', 'read-audit'] },
  folders: [
    { path: '/Regulatory', grants: { Sponsor: SPONSOR, 'Data Manager': ['read'], 'Clinical Monitor': ['read'], Auditor: ['read'] } },
    { path: '/Source Documents', grants: { Sponsor: SPONSOR, 'Data Manager': [], 'Clinical Monitor': ['read'], Auditor: ['read'] } },
    { path: '/Raw Data', grants: { Sponsor: SPONSOR, 'Data Manager': ['read', 'write', 'delete', 'lock', 'sign'], 'Clinical Monitor': [], Auditor: ['read'] } },
    { path: '/Query Responses', grants: { Sponsor: SPONSOR, 'Data Manager': ['read'], 'Clinical Monitor': ['read', 'write', 'lock'], Auditor: ['read'] } },
  ],
} satisfies AccessRules);

/** Most folder rules a study may have. */
export const MAX_FOLDER_RULES = 200;
/** Most role bindings a study may have. */
export const MAX_BINDINGS = 100;
const MAX_DN_LENGTH = 1024;

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const bad = (message: string) => new VellumError('BAD_REQUEST', message);
const ROLE_LIST = STUDY_ROLES.map((role) => `"${role}"`).join(', ');
const ACTION_LIST = ACTIONS.map((action) => `"${action}"`).join(', ');
const show = (value: unknown) => JSON.stringify(value)?.slice(0, 80) ?? String(value);

function parseGrants(value: unknown, where: string): Grants {
  if (!isRecord(value)) throw bad(`${where} must be an object of role -> list of actions, e.g. {"Sponsor": ["read", "write"]}.`);
  const grants: Partial<Record<StudyRole, Action[]>> = {};
  for (const [role, actions] of Object.entries(value)) {
    if (role === ADMINISTRATOR) throw bad(`${where}: the Administrator is system-wide and holds no study rights; bind the administrator's group to a study role instead.`);
    if (!isStudyRole(role)) throw bad(`${where}: unknown role ${show(role)}; the roles are ${ROLE_LIST}.`);
    if (!Array.isArray(actions)) throw bad(`${where}: the actions of ${role} must be a list, e.g. ["read"] ([] grants nothing).`);
    const unknown = actions.find((action) => !isAction(action));
    if (unknown !== undefined) throw bad(`${where}: unknown action ${show(unknown)} for ${role}; the actions are ${ACTION_LIST}.`);
    // One order for storage and comparison: the order of ACTIONS.
    grants[role] = ACTIONS.filter((action) => actions.includes(action));
  }
  return grants;
}

/** A folder rule's path in one form: "/A/B", names checked and NFC-normalised. @throws BAD_REQUEST, PATH_INVALID */
export function normaliseRulePath(path: unknown): string {
  if (typeof path !== 'string' || !path.startsWith('/')) throw bad(`A folder rule's "path" is a folder in the study starting with "/", e.g. "/Raw Data"; got ${show(path)}.`);
  const names = path.split('/').filter((name) => name !== '').map(checkName);
  if (names.length === 0) throw bad('A folder rule for "/" would be the whole study: put those grants in "defaults".');
  return '/' + names.join('/');
}

/**
 * Access rules from untrusted input, in one form (folders sorted by path,
 * actions in the order of ACTIONS). @throws BAD_REQUEST, PATH_INVALID
 */
export function parseAccessRules(input: unknown): AccessRules {
  if (!isRecord(input)) throw bad('Access rules are an object {"defaults": {role: [actions]}, "folders": [{"path": "/Raw Data", "grants": {role: [actions]}}]}.');
  const extra = Object.keys(input).filter((key) => key !== 'defaults' && key !== 'folders');
  if (extra.length > 0) throw bad(`Access rules have "defaults" and "folders" only, not ${show(extra[0])}.`);
  const defaults = parseGrants(input.defaults ?? {}, '"defaults"');
  const folders = input.folders ?? [];
  if (!Array.isArray(folders)) throw bad('"folders" must be a list of {"path": "/Folder", "grants": {role: [actions]}}.');
  if (folders.length > MAX_FOLDER_RULES) throw bad(`A study may have at most ${MAX_FOLDER_RULES} folder rules.`);
  const byPath = new Map<string, FolderRule>();
  for (const [i, rule] of folders.entries()) {
    if (!isRecord(rule) || Object.keys(rule).some((key) => key !== 'path' && key !== 'grants')) throw bad(`Folder rule ${i + 1} must be {"path": "/Folder", "grants": {role: [actions]}}.`);
    const path = normaliseRulePath(rule.path);
    if (byPath.has(path)) throw bad(`Two folder rules for ${path}: merge them into one.`);
    byPath.set(path, { path, grants: parseGrants(rule.grants, `The rule for ${path}`) });
  }
  return { defaults, folders: [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)) };
}

export interface Binding {
  /** DN of a directory group. */
  readonly group: string;
  readonly role: StudyRole;
}

// attr=value, then more RDNs after unescaped commas; values may escape with '\'.
const DN_PATTERN = /^[A-Za-z][A-Za-z0-9-]*=(?:[^,\\]|\\.)+(?:,\s*[A-Za-z][A-Za-z0-9-]*=(?:[^,\\]|\\.)+)*$/;

/** Role bindings from untrusted input: known roles, group DNs, no duplicates. @throws BAD_REQUEST */
export function parseBindings(input: unknown): Binding[] {
  if (!Array.isArray(input)) throw bad('Bindings are a list of {"group": "cn=...,ou=groups,...", "role": "Sponsor"}.');
  if (input.length > MAX_BINDINGS) throw bad(`A study may have at most ${MAX_BINDINGS} role bindings.`);
  const seen = new Set<string>();
  const bindings: Binding[] = [];
  for (const [i, binding] of input.entries()) {
    if (!isRecord(binding) || Object.keys(binding).some((key) => key !== 'group' && key !== 'role')) throw bad(`Binding ${i + 1} must be {"group": "<group DN>", "role": "<role>"}.`);
    const { group, role } = binding;
    if (typeof group !== 'string' || group.length > MAX_DN_LENGTH || !DN_PATTERN.test(group.trim())) {
      throw bad(`Binding ${i + 1}: "group" must be the DN of a directory group, e.g. "cn=study-sponsors,ou=groups,dc=example,dc=org"; got ${show(group)}.`);
    }
    if (role === ADMINISTRATOR) throw bad(`Binding ${i + 1}: Administrator is system-wide (configuration access.administratorGroups), not a study role; the roles are ${ROLE_LIST}.`);
    if (typeof role !== 'string' || !isStudyRole(role)) throw bad(`Binding ${i + 1}: unknown role ${show(role)}; the roles are ${ROLE_LIST}.`);
    const key = `${group.trim().toLowerCase()}\n${role}`;
    if (seen.has(key)) continue;
    seen.add(key);
    bindings.push({ group: group.trim(), role });
  }
  return bindings;
}
