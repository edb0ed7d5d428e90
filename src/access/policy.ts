// The one decision function: may this person do this action at this path of
// this study? Deny by default. Roles come from the study's bindings of
// directory groups; what a role may do where comes from the study's access
// rules (the template when it has none). The Administrator role is
// system-wide and grants no study content. Decisions look at the path only,
// never at whether something exists there, so a denial tells nothing.

import { ADMINISTRATOR, type Principal, type StudyRole } from '../kernel/index.ts';
import { ACCESS_TEMPLATE, ACTIONS, type AccessRules, type Action } from './rules.ts';

/** What the policy needs of a study: its bindings and (when it has them) its rules. */
export interface StudyAccess {
  readonly id: string;
  readonly bindings: readonly { readonly group: string; readonly role: StudyRole }[];
  /** Absent in studies made before rules existed: the template applies. */
  readonly accessRules?: AccessRules<string>;
}

export interface Decision {
  readonly allowed: boolean;
  /** Roles the person holds in the study (or system-wide), allowed or not; empty: none, answer as if the study did not exist. */
  readonly roles: readonly string[];
  /** Why, in words, for the audit trail and the error message. */
  readonly reason: string;
}

/** What a person may do at one path. */
export interface Permissions {
  readonly roles: readonly StudyRole[];
  /** Actions allowed at the path, in the order of ACTIONS. */
  readonly actions: readonly Action[];
  /** May stat and list it without reading it: it is on the way to a folder the person may read. */
  readonly passThrough: boolean;
}

const sameDn = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

export function rolesIn(principal: Principal, study: Pick<StudyAccess, 'bindings'>): StudyRole[] {
  const roles = new Set<StudyRole>();
  for (const binding of study.bindings) {
    if (principal.groups.some((group) => sameDn(group, binding.group))) roles.add(binding.role);
  }
  return [...roles];
}

export function isAdministrator(principal: Principal, administratorGroups: readonly string[]): boolean {
  return principal.groups.some((group) => administratorGroups.some((admin) => sameDn(group, admin)));
}

export function rulesOf(study: StudyAccess): AccessRules<string> {
  return study.accessRules ?? ACCESS_TEMPLATE;
}

const namesOf = (rulePath: string) => rulePath.split('/').filter((name) => name !== '');
const startsWith = (names: readonly string[], prefix: readonly string[]) => prefix.length <= names.length && prefix.every((name, i) => names[i] === name);

/** A role's grants at a path: the most specific covering folder rule that names the role, else the defaults. */
export function grantsAt(rules: AccessRules<string>, role: StudyRole, names: readonly string[]): readonly string[] {
  let best: { depth: number; grants: readonly string[] } | undefined;
  for (const rule of rules.folders) {
    const grants = rule.grants[role];
    if (grants === undefined) continue;
    const ruleNames = namesOf(rule.path);
    if (startsWith(names, ruleNames) && (best === undefined || ruleNames.length > best.depth)) best = { depth: ruleNames.length, grants };
  }
  return best?.grants ?? rules.defaults[role] ?? [];
}

/** A role may pass through a path when a folder rule below it lets the role read. */
function passesThrough(rules: AccessRules<string>, role: StudyRole, names: readonly string[]): boolean {
  return rules.folders.some((rule) => {
    const ruleNames = namesOf(rule.path);
    return ruleNames.length > names.length && startsWith(ruleNames, names) && (rule.grants[role] ?? []).includes('read');
  });
}

/** Everything the person may do at a path (names below the study root). */
export function permissionsAt(principal: Principal, study: StudyAccess, names: readonly string[]): Permissions {
  const roles = rolesIn(principal, study);
  const rules = rulesOf(study);
  const granted = new Set(roles.flatMap((role) => grantsAt(rules, role, names)));
  const actions = ACTIONS.filter((action) => granted.has(action));
  return { roles, actions, passThrough: !granted.has('read') && roles.some((role) => passesThrough(rules, role, names)) };
}

function where(study: StudyAccess, names: readonly string[]): string {
  return `/${[study.id, ...names].join('/')}`;
}

/** A study action at a path: allowed when any of the person's roles in the study grants it there. */
export function decide(principal: Principal, study: StudyAccess, names: readonly string[], action: Action): Decision {
  const roles = rolesIn(principal, study);
  if (roles.length === 0) return { allowed: false, roles, reason: `${principal.login} holds no role in study ${study.id}.` };
  const rules = rulesOf(study);
  const granting = roles.find((role) => grantsAt(rules, role, names).includes(action));
  if (granting) return { allowed: true, roles, reason: `${granting} may ${action} in ${where(study, names)}.` };
  return { allowed: false, roles, reason: `${roles.join(', ')} may not ${action} in ${where(study, names)}.` };
}

/**
 * May the person see that a path is there (stat it, list it)? Yes where they
 * may read, and on the way to a folder they may read (pass through).
 */
export function decideVisible(principal: Principal, study: StudyAccess, names: readonly string[]): Decision {
  const read = decide(principal, study, names, 'read');
  if (read.allowed || read.roles.length === 0) return read;
  const rules = rulesOf(study);
  const passing = (read.roles as StudyRole[]).find((role) => passesThrough(rules, role, names));
  if (passing) return { allowed: true, roles: read.roles, reason: `${passing} may pass through ${where(study, names)}.` };
  return read;
}

/** A system action (studies, bindings, keys): only Administrators. */
export function decideSystem(principal: Principal, administratorGroups: readonly string[]): Decision {
  return isAdministrator(principal, administratorGroups)
    ? { allowed: true, roles: [ADMINISTRATOR], reason: 'Administrator.' }
    : { allowed: false, roles: [], reason: `${principal.login} is not an Administrator.` };
}
