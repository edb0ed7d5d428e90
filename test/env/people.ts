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
