// The people and groups seeded into the test directory, with their fixed,
// documented passwords (the README lists them). Tests and the demo log in as
// these people; nothing else in Vellum knows them.
//
// Layout under BASE_DN:
//   cn=admin            rootdn (slapd.conf rootpw; not an entry)
//   cn=vellum-service   the service account Vellum binds as to find people and groups
//   ou=people           one inetOrgPerson per person, uid = login
//   ou=groups           one groupOfNames per group, member = person DNs

export const BASE_DN = 'dc=vellum,dc=test';
export const USER_BASE = `ou=people,${BASE_DN}`;
export const GROUP_BASE = `ou=groups,${BASE_DN}`;

/** slapd's rootdn: bypasses access control. For fixtures and inspection only. */
export const ROOT_DN = `cn=admin,${BASE_DN}`;
export const ROOT_PASSWORD = 'admin-secret-2026';

/** Vellum's service account: reads people and groups, writes ou=groups. */
export const SERVICE_DN = `cn=vellum-service,${BASE_DN}`;
export const SERVICE_PASSWORD = 'service-secret-2026';

export interface Person {
  /** uid, and the key of PEOPLE. */
  readonly login: string;
  readonly password: string;
  readonly displayName: string;
  readonly mail: string;
  /** cn of each group (in GROUPS) the person is a member of. */
  readonly groups: readonly string[];
  /** What the person is for, in words. */
  readonly role: string;
}

export interface Group {
  readonly dn: string;
  /** The role the demo binds this group to. */
  readonly role: string;
}

function person(login: string, password: string, displayName: string, groups: readonly string[], role: string): Person {
  return Object.freeze({ login, password, displayName, mail: `${login}@vellum.test`, groups: Object.freeze([...groups]), role });
}

export const PEOPLE = Object.freeze({
  ada: person('ada', 'ada-Admin-2026', 'Ada Lovelace', ['vellum-administrators'], 'Administrator'),
  sam: person('sam', 'sam-Sponsor-2026', 'Sam Sponsor', ['demo-001-sponsors'], 'Sponsor of study DEMO-001'),
  dana: person('dana', 'dana-DataMgr-2026', 'Dana Data', ['demo-001-data-managers'], 'Data Manager of study DEMO-001'),
  mona: person('mona', 'mona-Monitor-2026', 'Mona Monitor', ['demo-001-monitors'], 'Clinical Monitor of study DEMO-001'),
  audrey: person('audrey', 'audrey-Auditor-2026', 'Audrey Auditor', ['demo-001-auditors'], 'Auditor of study DEMO-001'),
  // Deliberately awkward: ':' (breaks naive Basic auth parsing), '+' and '/'
  // (base64 alphabet), a space, and non-ASCII letters (UTF-8 on the wire).
  pat: person('pat', 'p:a+s/s wörd-Žluť', 'Pat Punctuation', ['demo-001-sponsors'], 'Sponsor of study DEMO-001 (password with punctuation, a space and non-ASCII)'),
  nora: person('nora', 'nora-NoGroup-2026', 'Nora Nogroup', [], 'In no group: may log in, may see nothing'),
} as const satisfies Record<string, Person>);

export type Login = keyof typeof PEOPLE;

function group(cn: string, role: string): Group {
  return Object.freeze({ dn: `cn=${cn},${GROUP_BASE}`, role });
}

export const GROUPS = Object.freeze({
  'vellum-administrators': group('vellum-administrators', 'Administrator'),
  'demo-001-sponsors': group('demo-001-sponsors', 'Sponsor'),
  'demo-001-data-managers': group('demo-001-data-managers', 'Data Manager'),
  'demo-001-monitors': group('demo-001-monitors', 'Clinical Monitor'),
  'demo-001-auditors': group('demo-001-auditors', 'Auditor'),
} as const satisfies Record<string, Group>);

/** DN of a person's entry. */
export function personDn(login: string): string {
  return `uid=${login},${USER_BASE}`;
}

/** Members (person DNs) of a group, from PEOPLE. */
export function groupMembers(cn: string): string[] {
  return Object.values(PEOPLE)
    .filter((p: Person) => p.groups.includes(cn))
    .map((p: Person) => personDn(p.login));
}

/** A second service account that may read everything the service account reads, and write nothing. */
export const READER_DN = `cn=vellum-reader,${BASE_DN}`;
export const READER_PASSWORD = 'reader-secret-2026';

// The Active Directory-shaped directory (startSlapd({ shape: 'active-directory' })):
// the same people and passwords, as AD keeps them. Entries are named by cn
// (the printed name), the login is sAMAccountName (or userPrincipalName
// login@AD_UPN_SUFFIX), the id is a fixed objectGUID, and each person's
// direct groups are stored in memberOf. One more group nests two others.

export const AD_UPN_SUFFIX = 'vellum.test';

/** Each person's objectGUID as AD tools print it (the stored bytes are in Microsoft's mixed-endian order). */
export const AD_OBJECT_GUIDS: Readonly<Record<Login, string>> = Object.freeze({
  ada: '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f1',
  sam: '3f2504e0-4f89-11d3-9a0c-0305e82c3301',
  dana: 'd4a7a1e2-51c3-4b8e-9f0d-1a2b3c4d5e60',
  mona: '8c6b2f10-7e5d-4c3b-a291-0f1e2d3c4b5a',
  audrey: 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d',
  pat: '5e4d3c2b-1a09-4f8e-b7d6-c5b4a3928170',
  nora: '01234567-89ab-4cde-8f01-23456789abcd',
});

/** A group holding other groups (not people): its members are members of DEMO-001 by nesting. */
export const AD_NESTED_GROUP = Object.freeze({
  cn: 'demo-001-study-team',
  dn: `cn=demo-001-study-team,${GROUP_BASE}`,
  memberGroups: Object.freeze(['demo-001-data-managers', 'demo-001-monitors']),
});

/** DN of a person's entry in the AD-shaped directory (named by cn, as AD names users). */
export function adPersonDn(login: Login): string {
  return `cn=${PEOPLE[login].displayName},${USER_BASE}`;
}

/** The 16 bytes AD stores for a GUID printed as `guid`. */
export function adGuidBytes(guid: string): Buffer {
  const b = Buffer.from(guid.replace(/-/g, ''), 'hex');
  return Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8)]);
}
