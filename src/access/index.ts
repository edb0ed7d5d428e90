// access: authorization. Owns the permissions (read, write, delete, lock,
// share, sign, read-audit, administer), a study's access rules (grants per
// role, folder rules, the RACI template) and the one decision function used
// by WebDAV, the web UI and the API alike, through session/. Pure: it reads
// no store; callers hand it the principal and the study's bindings and rules.

export {
  decide, decideVisible, decideSystem, permissionsAt, grantsAt, rulesOf, rolesIn, isAdministrator,
  type Decision, type Permissions, type StudyAccess,
} from './policy.ts';
export {
  ACCESS_TEMPLATE, ACTIONS, MAX_BINDINGS, MAX_FOLDER_RULES, isAction, parseAccessRules, parseBindings, normaliseRulePath,
  type AccessRules, type Action, type Binding, type FolderRule, type Grants,
} from './rules.ts';
