// directory: the Directory. Owns every conversation with LDAP (the only
// importer of `ldapts`): authenticating a person by binding as them, reading
// their immutable id, printed name and groups (direct, memberOf, AD in-chain,
// nested), managing groups and their members, the pool of service
// connections, and the directory's health. Vellum keeps no passwords.

export type { Directory, DirectorySettings, GroupMembership, DirectoryPerson, GroupSummary, GroupDetail, MembershipChange } from './directory.ts';
export { openDirectory } from './ldap-directory.ts';
