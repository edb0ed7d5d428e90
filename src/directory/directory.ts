import type { ComponentStatus, Principal } from '../kernel/index.ts';

export interface DirectorySettings {
  /** ldap:// or ldaps:// URL. */
  readonly url: string;
  /** Service account used to find people and groups. */
  readonly bindDn: string;
  readonly bindPassword: string;
  /** Where people live; searched with scope sub. */
  readonly userBase: string;
  /** Attribute holding the login name: `uid` (OpenLDAP) or `sAMAccountName` (AD). */
  readonly loginAttribute: string;
  /**
   * Several login attributes, any of which may match (AD: `sAMAccountName` and
   * `userPrincipalName`); the first is how the login is reported. Overrides loginAttribute.
   */
  readonly loginAttributes?: readonly string[];
  /** Immutable id attribute: `entryUUID` (OpenLDAP) or `objectGUID` (AD). */
  readonly idAttribute: string;
  /** Printed name attribute, e.g. `displayName` or `cn`. */
  readonly displayNameAttribute: string;
  /** Where groups live; searched with scope sub. */
  readonly groupBase: string;
  /** How a person's groups are found (default `member`). */
  readonly groupMembership?: GroupMembership;
  /** Object class of the groups listed and created (default `groupOfNames`). */
  readonly groupObjectClass?: string;
  /** Also the groups that contain the person's groups, walked up client-side (bounded, cycle-safe). */
  readonly nestedGroups?: boolean;
  /** Connect and operation timeout; also the longest wait for a pooled connection. */
  readonly timeoutMs: number;
  /** Bound service connections kept for reuse (default 4). */
  readonly poolSize?: number;
  /** A pooled connection unused this long is closed (default 60 s). */
  readonly poolIdleMs?: number;
  /** Group changes allowed (default false: read-only). */
  readonly groupManagement?: boolean;
  /** Receives notices worth an operator's attention (e.g. a group mode the server lacks). */
  readonly log?: (message: string) => void;
  /** PEM CA bundle for ldaps:// or StartTLS, if the directory's CA is private. */
  readonly caPem?: string;
  readonly startTls?: boolean;
}

/**
 * member: groups (groupOfNames, AD group) whose `member` is the person's DN;
 * uniqueMember: groupOfUniqueNames; memberOf: the person's own `memberOf` values;
 * in-chain: AD's LDAP_MATCHING_RULE_IN_CHAIN, nested groups resolved by the server
 * (used only where the server says it is Active Directory; elsewhere `member`
 * plus the client-side walk, with a notice in the log).
 */
export type GroupMembership = 'member' | 'uniqueMember' | 'memberOf' | 'in-chain';

export interface Directory {
  /**
   * Verifies a login name and password by binding as that person.
   * The same error, with the same message, for an unknown login and a wrong password.
   * An empty password is refused before any bind (an empty simple bind is anonymous).
   * @throws VellumError AUTH_FAILED for unknown login, wrong password, empty password,
   *   or a login that matches more than one entry;
   *   DIRECTORY_UNAVAILABLE when the directory cannot be reached or the service bind fails.
   */
  authenticate(login: string, password: string): Promise<Principal>;

  /**
   * The person with this immutable id (as Principal.id), with their groups as
   * the directory has them now, found by the service account without their
   * password: for app passwords and web sessions, which must notice a person
   * removed from a group. null when no entry has the id any more.
   * @throws VellumError DIRECTORY_UNAVAILABLE
   */
  lookup(id: string): Promise<Principal | null>;

  /**
   * A person by login name (the same matching as authenticate), without groups.
   * @throws VellumError PERSON_NOT_FOUND (unknown or ambiguous login, or one that can never be a login); DIRECTORY_UNAVAILABLE
   */
  findPerson(login: string): Promise<DirectoryPerson>;

  /** Whether group changes are allowed (ldap.groupManagement); the directory may still refuse one. */
  readonly groupsWritable: boolean;

  /** The groups of the configured object class under the group base, sorted by name (read in pages). @throws DIRECTORY_UNAVAILABLE */
  listGroups(): Promise<GroupSummary[]>;

  /** One group (by cn, matched as LDAP matches cn) with its members. @throws GROUP_NOT_FOUND (also: ambiguous), DIRECTORY_UNAVAILABLE */
  group(name: string): Promise<GroupDetail>;

  /**
   * Creates a group `cn=<name>` under the group base with these members (logins),
   * of the configured object class (AD `group`: a global security group with sAMAccountName = name).
   * A name is 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter or digit (GROUP_NAME).
   * @throws DIRECTORY_READ_ONLY (management off, or the directory refused the write), GROUP_EXISTS,
   *   PERSON_NOT_FOUND, GROUP_NEEDS_MEMBER (no members for a groupOfNames/groupOfUniqueNames),
   *   BAD_REQUEST (name, description, another refusal by the directory), DIRECTORY_UNAVAILABLE
   */
  createGroup(name: string, members: readonly string[], description?: string): Promise<GroupDetail>;

  /**
   * Adds a person (by login) to a group with an LDAP modify that adds the one value;
   * the result holds the member DNs before and after. Adding a member again is
   * idempotent: nothing is written and before equals after.
   * @throws DIRECTORY_READ_ONLY, GROUP_NOT_FOUND, PERSON_NOT_FOUND, BAD_REQUEST (refused by the directory), DIRECTORY_UNAVAILABLE
   */
  addMember(group: string, login: string): Promise<MembershipChange>;

  /**
   * Removes a person (by login) from a group with an LDAP modify that deletes the one value.
   * @throws DIRECTORY_READ_ONLY, GROUP_NOT_FOUND, PERSON_NOT_FOUND (also: not a member),
   *   GROUP_NEEDS_MEMBER (the last member of a groupOfNames/groupOfUniqueNames), DIRECTORY_UNAVAILABLE
   */
  removeMember(group: string, login: string): Promise<MembershipChange>;

  /** Service bind and a base search work. Never throws. */
  status(): Promise<ComponentStatus>;

  /** Closes pooled connections. Idempotent. */
  close(): Promise<void>;
}

/** A person as the directory holds them, without groups. */
export interface DirectoryPerson {
  readonly id: string;
  readonly login: string;
  readonly dn: string;
  readonly displayName: string;
}

export interface GroupSummary {
  /** The group's cn: what the API and UI call it. */
  readonly name: string;
  readonly dn: string;
  readonly description: string | null;
  readonly memberCount: number;
}

export interface GroupDetail extends GroupSummary {
  /** Members the directory resolves to people; others (nested groups, dangling DNs) only in memberDns. */
  readonly members: readonly DirectoryPerson[];
  readonly memberDns: readonly string[];
}

export interface MembershipChange {
  readonly group: GroupDetail;
  /** Member DNs before and after the change, for the audit trail. */
  readonly before: readonly string[];
  readonly after: readonly string[];
  /** The person added or removed. */
  readonly person: DirectoryPerson;
}
