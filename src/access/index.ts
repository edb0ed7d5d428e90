// access: authorization. Owns the role x action matrix and the one decision
// function used by WebDAV, the web UI and the API alike. Pure: it reads no
// store; callers hand it the principal and the study's bindings.

export { decide, decideSystem, rolesIn, isAdministrator, ROLE_PERMISSIONS, ACTIONS, type Action, type Decision, type StudyBindings } from './policy.ts';
