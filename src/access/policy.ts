// The one decision function: may this person do this action in this study?
// Deny by default. Roles come from the study's bindings of directory groups;
// the Administrator role is system-wide and grants no study content.

import { ADMINISTRATOR, type Principal, type StudyRole } from '../kernel/index.ts';

export const ACTIONS = ['read', 'write', 'delete', 'administer'] as const;
export type Action = (typeof ACTIONS)[number];

/**
 * What each study role may do. Folder-level rules (e.g. a Data Manager writes
 * raw data but only reads regulatory documents) refine this per folder.
 */
export const ROLE_PERMISSIONS: Readonly<Record<StudyRole, readonly Action[]>> = {
  Sponsor: ['read', 'write', 'delete'],
  'Data Manager': ['read', 'write', 'delete'],
  'Clinical Monitor': ['read'],
  Auditor: ['read'],
};

export interface StudyBindings {
  readonly id: string;
  readonly bindings: readonly { readonly group: string; readonly role: StudyRole }[];
}

export interface Decision {
  readonly allowed: boolean;
  /** Roles the person holds in the study (or system-wide), allowed or not. */
  readonly roles: readonly string[];
  /** Why, in words, for the audit trail and the error message. */
  readonly reason: string;
}

const sameDn = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

export function rolesIn(principal: Principal, study: StudyBindings): StudyRole[] {
  const roles = new Set<StudyRole>();
  for (const binding of study.bindings) {
    if (principal.groups.some((group) => sameDn(group, binding.group))) roles.add(binding.role);
  }
  return [...roles];
}

export function isAdministrator(principal: Principal, administratorGroups: readonly string[]): boolean {
  return principal.groups.some((group) => administratorGroups.some((admin) => sameDn(group, admin)));
}

/** A study action: allowed when any of the person's roles in the study grants it. */
export function decide(principal: Principal, study: StudyBindings, action: Action): Decision {
  const roles = rolesIn(principal, study);
  if (roles.length === 0) return { allowed: false, roles, reason: `${principal.login} holds no role in study ${study.id}.` };
  const granting = roles.find((role) => ROLE_PERMISSIONS[role].includes(action));
  if (granting) return { allowed: true, roles, reason: `${granting} may ${action}.` };
  return { allowed: false, roles, reason: `${roles.join(', ')} may not ${action} in study ${study.id}.` };
}

/** A system action (studies, bindings, keys): only Administrators. */
export function decideSystem(principal: Principal, administratorGroups: readonly string[]): Decision {
  return isAdministrator(principal, administratorGroups)
    ? { allowed: true, roles: [ADMINISTRATOR], reason: 'Administrator.' }
    : { allowed: false, roles: [], reason: `${principal.login} is not an Administrator.` };
}
