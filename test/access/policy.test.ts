// The decision function on its own (pure): the template against the matrix
// in docs/access.md, the rule semantics (most specific rule per role, fall
// back to the defaults, deny by default), pass-through, Administrator
// separation, and the checks on untrusted rules and bindings.

import test from 'ava';
import { readFileSync } from 'node:fs';
import {
  ACCESS_TEMPLATE, ACTIONS, decide, decideSystem, decideVisible, parseAccessRules, parseBindings, permissionsAt,
  type AccessRules, type StudyAccess,
} from '../../src/access/index.ts';
import { isVellumError, type Principal, type StudyRole } from '../../src/kernel/index.ts';

const G = (cn: string) => `cn=${cn},ou=groups,dc=example,dc=org`;
const person = (login: string, groups: string[]): Principal => ({ id: `id-${login}`, login, dn: `uid=${login},ou=people,dc=example,dc=org`, displayName: login, groups });
const BINDINGS = [
  { group: G('sponsors'), role: 'Sponsor' as const },
  { group: G('data-managers'), role: 'Data Manager' as const },
  { group: G('monitors'), role: 'Clinical Monitor' as const },
  { group: G('auditors'), role: 'Auditor' as const },
];
const study = (accessRules?: AccessRules): StudyAccess => ({ id: 'S-1', bindings: BINDINGS, ...(accessRules ? { accessRules } : {}) });
const ADMINS = [G('admins')];
const names = (path: string) => path.split('/').filter((name) => name !== '');

// ------------------------------------------------------------ the template is the documented matrix

/** The matrix of docs/access.md: role -> column heading -> actions. */
function documentedMatrix(): { columns: string[]; rows: Map<string, string[][]> } {
  const lines = readFileSync(new URL('../../docs/access.md', import.meta.url), 'utf8').split('\n');
  const header = lines.findIndex((line) => line.startsWith('| role | study folder and other folders |'));
  if (header === -1) throw new Error('docs/access.md has no matrix');
  const cells = (line: string) => line.replace(/^\|/, '').replace(/\|\s*$/, '').split('|').map((cell) => cell.trim());
  const columns = cells(lines[header]!).slice(1);
  const rows = new Map<string, string[][]>();
  for (let i = header + 2; lines[i]?.startsWith('|'); i++) {
    const [role, ...grants] = cells(lines[i]!);
    // "none (passes through ...)": words in parentheses are commentary.
    rows.set(role!, grants.map((cell) => cell.replace(/\(.*?\)/g, '').split(/\s+/).filter((word) => word !== '' && word !== 'none')));
  }
  return { columns, rows };
}

test('11.10(g) the template grants exactly the matrix of docs/access.md, per role and folder', (t) => {
  const { columns, rows } = documentedMatrix();
  t.deepEqual(columns, ['study folder and other folders', '/Regulatory', '/Source Documents', '/Raw Data', '/Query Responses']);
  t.deepEqual([...rows.keys()], ['Sponsor', 'Data Manager', 'Clinical Monitor', 'Auditor', 'Administrator']);
  const samples = [['', '/Other', '/Other/deep/er'], ['/Regulatory', '/Regulatory/x.pdf'], ['/Source Documents', '/Source Documents/a/b.pdf'], ['/Raw Data', '/Raw Data/site 1/data.csv'], ['/Query Responses', '/Query Responses/q.pdf']];
  for (const [role, grants] of rows) {
    const groups = role === 'Administrator' ? ADMINS : [BINDINGS.find((b) => b.role === role)!.group];
    const p = person(role, groups);
    columns.forEach((column, i) => {
      for (const path of samples[i]!) {
        for (const action of ACTIONS) {
          const expected = grants[i]!.includes(action);
          t.is(decide(p, study(), names(path), action).allowed, expected, `${role} ${action} ${path || '/'}`);
          t.is(decide(p, study(ACCESS_TEMPLATE), names(path), action).allowed, expected, `stored template: ${role} ${action} ${path || '/'}`);
        }
      }
    });
  }
});

// ------------------------------------------------------------ literal cases

const sam = person('sam', [G('sponsors')]);
const dana = person('dana', [G('data-managers')]);
const mona = person('mona', [G('monitors')]);
const audrey = person('audrey', [G('auditors')]);
const ada = person('ada', [G('admins')]);
const nora = person('nora', []);

const cases: [Principal, string, (typeof ACTIONS)[number], boolean][] = [
  [dana, '/Raw Data/x.csv', 'write', true],
  [dana, '/Regulatory/x.pdf', 'write', false],
  [dana, '/Source Documents/x.pdf', 'read', false],
  [dana, '/x.txt', 'read', true],
  [mona, '/Query Responses/q.pdf', 'write', true],
  [mona, '/Query Responses/q.pdf', 'delete', false],
  [mona, '/Raw Data/x.csv', 'read', false],
  [mona, '/x.txt', 'read', false],
  [audrey, '/Raw Data/x.csv', 'read', true],
  [audrey, '/Raw Data/x.csv', 'write', false],
  [audrey, '/', 'read-audit', true],
  [sam, '/Anything/at/all', 'sign', true],
  [sam, '/', 'administer', false],
  // Case matters in paths: "/raw data" is not "/Raw Data".
  [dana, '/raw data/x.csv', 'write', false],
  // A name that merely starts like a rule's folder is not inside it.
  [dana, '/Raw Data 2/x.csv', 'write', false],
];
for (const [who, path, action, allowed] of cases) {
  test(`11.10(g) ${who.login} ${allowed ? 'may' : 'may not'} ${action} ${path}`, (t) => {
    const decision = decide(who, study(), names(path), action);
    t.is(decision.allowed, allowed);
    t.true(decision.roles.length > 0);
    t.regex(decision.reason, new RegExp(allowed ? ' may ' : ' may not '));
  });
}

test('11.10(d) no role in the study: denied everything, with no roles (answered as if the study did not exist)', (t) => {
  for (const who of [nora, ada]) {
    for (const action of ACTIONS) {
      const decision = decide(who, study(), [], action);
      t.false(decision.allowed);
      t.deepEqual(decision.roles, []);
      t.regex(decision.reason, /holds no role in study S-1/);
    }
    t.false(decideVisible(who, study(), []).allowed);
  }
});

test('11.10(g) an Administrator gets no content and no signing by being one; bound to a role she gets exactly that role', (t) => {
  t.true(decideSystem(ada, ADMINS).allowed);
  t.false(decideSystem(sam, ADMINS).allowed);
  t.deepEqual(permissionsAt(ada, study(), names('/Raw Data')).actions, []);
  const bound: StudyAccess = { ...study(), bindings: [...BINDINGS, { group: G('admins'), role: 'Auditor' }] };
  t.deepEqual(permissionsAt(ada, bound, names('/Raw Data')).actions, ['read']);
  t.false(decide(ada, bound, names('/Raw Data/x.csv'), 'write').allowed);
  t.false(decide(ada, bound, names('/Raw Data/x.csv'), 'sign').allowed);
});

test('several roles: any role that grants it allows it', (t) => {
  const both = person('both', [G('monitors'), G('data-managers')]);
  t.true(decide(both, study(), names('/Raw Data/x'), 'write').allowed);
  t.true(decide(both, study(), names('/Source Documents/x'), 'read').allowed);
  t.true(decide(both, study(), names('/Query Responses/x'), 'lock').allowed);
  t.false(decide(both, study(), names('/Regulatory/x'), 'write').allowed);
  t.deepEqual([...permissionsAt(both, study(), []).roles].sort(), ['Clinical Monitor', 'Data Manager'] satisfies StudyRole[]);
});

test('group DNs match without regard to case', (t) => {
  t.true(decide(person('x', [G('Data-Managers').toUpperCase()]), study(), names('/Raw Data/x'), 'write').allowed);
});

test('pass through: the Monitor sees the study folder and the way to readable folders, but reads none of it', (t) => {
  t.true(decideVisible(mona, study(), []).allowed);
  t.regex(decideVisible(mona, study(), []).reason, /pass through/);
  t.false(decide(mona, study(), [], 'read').allowed);
  t.false(decideVisible(mona, study(), names('/Raw Data')).allowed);
  t.false(decideVisible(mona, study(), names('/Other')).allowed);
  t.true(decideVisible(mona, study(), names('/Regulatory')).allowed);
  t.deepEqual(permissionsAt(mona, study(), []), { roles: ['Clinical Monitor'], actions: [], passThrough: true });
  // A deeper rule opens a way through its folders above.
  const deep = parseAccessRules({ folders: [{ path: '/A/B/C', grants: { 'Clinical Monitor': ['read'] } }] });
  t.true(decideVisible(mona, study(deep), names('/A/B')).allowed);
  t.false(decideVisible(mona, study(deep), names('/A/X')).allowed);
  t.false(decide(mona, study(deep), names('/A/B/file'), 'read').allowed);
});

test('the most specific rule naming a role decides; a role it does not name falls back; [] denies', (t) => {
  const rules = parseAccessRules({
    defaults: { 'Data Manager': ['read'] },
    folders: [
      { path: '/Data', grants: { 'Data Manager': ['read', 'write'] } },
      { path: '/Data/Locked', grants: { 'Data Manager': [] } },
      { path: '/Data/Other', grants: { Auditor: ['read'] } },
    ],
  });
  t.true(decide(dana, study(rules), names('/Data/x'), 'write').allowed);
  t.false(decide(dana, study(rules), names('/Data/Locked/x'), 'read').allowed);
  t.true(decide(dana, study(rules), names('/Data/Other/x'), 'write').allowed, 'a rule that does not name the role: the next rule up');
  t.true(decide(dana, study(rules), names('/Elsewhere'), 'read').allowed);
  t.false(decide(dana, study(rules), names('/Elsewhere'), 'write').allowed);
  t.false(decide(sam, study(rules), names('/Data/x'), 'read').allowed, 'deny by default: the Sponsor is granted nothing here');
});

test('parseAccessRules: one form (sorted folders, actions in order, NFC names) and clear refusals', (t) => {
  const rules = parseAccessRules({ folders: [{ path: '/Z/', grants: { Auditor: ['read-audit', 'read', 'read'] } }, { path: '/Cafe\u0301', grants: {} }] });
  t.deepEqual(rules, { defaults: {}, folders: [{ path: '/Café', grants: {} }, { path: '/Z', grants: { Auditor: ['read', 'read-audit'] } }] });
  const refused: [unknown, RegExp][] = [
    [null, /Access rules are an object/],
    [{ defaults: { Janitor: ['read'] } }, /unknown role "Janitor"/],
    [{ defaults: { Administrator: ['read'] } }, /Administrator is system-wide/],
    [{ defaults: { Sponsor: ['fly'] } }, /unknown action "fly"/],
    [{ defaults: { Sponsor: 'read' } }, /must be a list/],
    [{ folders: [{ path: 'Raw Data', grants: {} }] }, /starting with "\/"/],
    [{ folders: [{ path: '/', grants: {} }] }, /"defaults"/],
    [{ folders: [{ path: '/A', grants: {} }, { path: '/A/', grants: {} }] }, /Two folder rules for \/A/],
    [{ folders: [{ path: '/A', grants: {}, extra: 1 }] }, /Folder rule 1 must be/],
    [{ folders: {} }, /must be a list/],
    [{ defaults: {}, colour: 'blue' }, /not "colour"/],
  ];
  for (const [input, message] of refused) {
    const e = t.throws(() => parseAccessRules(input));
    t.true(isVellumError(e, 'BAD_REQUEST'), String(e));
    t.regex(e!.message, message);
  }
  t.true(isVellumError(t.throws(() => parseAccessRules({ folders: [{ path: '/a/../b', grants: {} }] })), 'PATH_INVALID'));
});

test('parseBindings: group DNs and known roles, duplicates merged, clear refusals', (t) => {
  t.deepEqual(parseBindings([{ group: ` ${G('a')} `, role: 'Sponsor' }, { group: G('A'), role: 'Sponsor' }, { group: G('a'), role: 'Auditor' }]), [
    { group: G('a'), role: 'Sponsor' },
    { group: G('a'), role: 'Auditor' },
  ]);
  t.deepEqual(parseBindings([{ group: 'cn=R\\, D,ou=groups,dc=x', role: 'Auditor' }]), [{ group: 'cn=R\\, D,ou=groups,dc=x', role: 'Auditor' }]);
  const refused: [unknown, RegExp][] = [
    [{}, /a list/],
    [[{ group: 'sponsors', role: 'Sponsor' }], /DN of a directory group/],
    [[{ group: '', role: 'Sponsor' }], /DN of a directory group/],
    [[{ group: G('a'), role: 'Administrator' }], /system-wide/],
    [[{ group: G('a'), role: 'Boss' }], /unknown role "Boss"/],
    [[{ group: G('a'), role: 'Sponsor', note: 1 }], /must be \{"group"/],
  ];
  for (const [input, message] of refused) {
    const e = t.throws(() => parseBindings(input));
    t.true(isVellumError(e, 'BAD_REQUEST'), String(e));
    t.regex(e!.message, message);
  }
});
