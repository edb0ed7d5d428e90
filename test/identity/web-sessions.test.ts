// Web sessions on a real LevelDB with a real audit trail; the clock is
// injected so idle and absolute limits can be crossed without waiting. The
// password check and the directory look-up are small in-memory stand-ins for
// interfaces identity/ owns (the real ones are exercised in
// test/e2e/web-login.test.ts against slapd).

import test from 'ava';
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openAuditTrail, type AuditEntry, type AuditTrail } from '../../src/audit/index.ts';
import { validate } from '../../src/config/schema.ts';
import { openDatabase, type Database } from '../../src/db/index.ts';
import {
  createSecondFactors, createWebSessions, MAX_FAILED_CODES, type Authenticator, type SecretKeys, type WebSessions,
} from '../../src/identity/index.ts';
import { base32Decode, hotp, totpStep } from '../../src/identity/totp.ts';
import { VellumError, type Principal, type RequestOrigin } from '../../src/kernel/index.ts';

const ADMINS = 'cn=admins,ou=groups,dc=example,dc=org';
const STAFF = 'cn=staff,ou=groups,dc=example,dc=org';
const origin: RequestOrigin = { ip: '192.0.2.7', client: 'test', protocol: 'web' };
const post = (csrfToken: string | undefined) => ({ csrfToken, stateChanging: true });
const GET = { csrfToken: undefined, stateChanging: false };

interface Harness {
  readonly dir: string;
  readonly db: Database;
  readonly audit: AuditTrail;
  readonly sessions: WebSessions;
  readonly people: Map<string, Principal>;
  readonly failures: string[];
  readonly forgotten: string[];
  readonly clock: { ms: number };
  entries(action?: string): Promise<AuditEntry[]>;
}

const person = (id: string, login: string, groups: string[]): Principal => ({ id, login, dn: `uid=${login},ou=people,dc=example,dc=org`, displayName: login.toUpperCase(), groups });

/** AES-256-GCM "wrapping" under a process key: stands in for the HSM, which is not under test here. */
function memoryKeys(): SecretKeys {
  const kek = randomBytes(32);
  return {
    async newKey() {
      const key = randomBytes(32);
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', kek, iv);
      const wrapped = Buffer.concat([iv, cipher.update(key), cipher.final(), cipher.getAuthTag()]);
      return { key, stored: { kekVersion: 1, mechanism: 'TEST', wrapped: wrapped.toString('base64') } };
    },
    async openKey(stored) {
      const bytes = Buffer.from(stored.wrapped, 'base64');
      const decipher = createDecipheriv('aes-256-gcm', kek, bytes.subarray(0, 12));
      decipher.setAuthTag(bytes.subarray(44));
      return Buffer.concat([decipher.update(bytes.subarray(12, 44)), decipher.final()]);
    },
  };
}

const harnesses: Harness[] = [];

async function harness(options: { requiredFor?: 'administrators' | 'everyone' | 'nobody'; idleMinutes?: number; absoluteHours?: number; cacheSeconds?: number } = {}): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'vellum-web-sessions-'));
  const db = await openDatabase(join(dir, 'db'));
  const clock = { ms: Date.UTC(2026, 0, 5, 9, 0, 0) };
  const clockView = { now: () => new Date(clock.ms) };
  const audit = await openAuditTrail(db, { clock: clockView });
  const people = new Map<string, Principal>([
    ['ada', person('id-ada', 'ada', [ADMINS])],
    ['sam', person('id-sam', 'sam', [STAFF])],
  ]);
  const failures: string[] = [];
  const forgotten: string[] = [];
  const authenticator: Authenticator = {
    async authenticate(login, password) {
      const found = people.get(login);
      if (found === undefined || password !== `${login}-password`) throw new VellumError('AUTH_FAILED');
      return found;
    },
    appPasswordOf: () => undefined,
    authenticateBasic: async () => {
      throw new VellumError('AUTH_REQUIRED');
    },
    async recordFailure(login, _origin, detail) {
      failures.push(`${login}: ${detail}`);
    },
    forget: (who) => void forgotten.push(who.id ?? ''),
  };
  const directory = { lookup: async (id: string) => [...people.values()].find((p) => p.id === id) ?? null };
  const secondFactors = createSecondFactors(db, audit, memoryKeys(), { issuer: 'Vellum' }, clockView);
  const sessions = createWebSessions({ db, audit, authenticator, directory, secondFactors, clock: clockView }, {
    idleMinutes: options.idleMinutes ?? 15, absoluteHours: options.absoluteHours ?? 12, cacheSeconds: options.cacheSeconds ?? 60,
    mfa: { requiredFor: options.requiredFor ?? 'administrators', administratorGroups: [ADMINS] },
  });
  const h: Harness = {
    dir, db, audit, sessions, people, failures, forgotten, clock,
    async entries(action) {
      const all: AuditEntry[] = [];
      for await (const entry of audit.entries()) if (action === undefined || entry.action === action) all.push(entry);
      return all;
    },
  };
  harnesses.push(h);
  return h;
}

test.after.always(async () => {
  for (const h of harnesses) {
    await h.db.close();
    await rm(h.dir, { recursive: true, force: true });
  }
});

const code = (h: Harness, secret: string, offsetSteps = 0) => hotp(base32Decode(secret)!, totpStep(h.clock.ms) + offsetSteps);

/** Signs ada in, enrols her and returns her complete session's token, csrf and secret. */
async function enrolledAda(h: Harness) {
  const { token, session } = await h.sessions.signIn('ada', 'ada-password', origin);
  const enrolment = await h.sessions.beginEnrolment(token, post(session.csrfToken), origin);
  const { recoveryCodes } = await h.sessions.confirmEnrolment(token, code(h, enrolment.secret), post(session.csrfToken), origin);
  return { token, csrf: session.csrfToken, secret: enrolment.secret, recoveryCodes };
}

test('11.10(d) a person outside the MFA policy gets a complete session from the password', async (t) => {
  const h = await harness();
  const { token, session } = await h.sessions.signIn('sam', 'sam-password', origin);
  t.is(session.state, 'complete');
  t.deepEqual(session.mfa, { required: false, enrolled: false });
  t.is((await h.sessions.authenticate(token, GET, origin)).login, 'sam');
  const [start] = await h.entries('auth.session.start');
  t.is(start?.actor?.login, 'sam');
  t.deepEqual(start?.newValue, { state: 'complete' });
});

test('11.10(d) an administrator must enrol first; until confirmed the session authenticates nothing', async (t) => {
  const h = await harness();
  const { token, session } = await h.sessions.signIn('ada', 'ada-password', origin);
  t.is(session.state, 'enrolment');
  await t.throwsAsync(h.sessions.authenticate(token, GET, origin), { message: /second sign-in step/ });
  const enrolment = await h.sessions.beginEnrolment(token, post(session.csrfToken), origin);
  t.true(enrolment.uri.startsWith('otpauth://totp/Vellum:ada?secret='));
  t.true(enrolment.qr.startsWith('<svg'));
  // Started but not confirmed: does not count as enrolled.
  t.false((await h.sessions.view(token, origin)).mfa.enrolled);
  const wrong = String((Number(code(h, enrolment.secret)) + 1) % 1_000_000).padStart(6, '0');
  const error = await t.throwsAsync(h.sessions.confirmEnrolment(token, wrong, post(session.csrfToken), origin));
  t.is((error as VellumError).code, 'MFA_CODE_INVALID');
  t.deepEqual(h.failures, ['ada: MFA_CODE_INVALID: enrolment confirmation code']);
  const { recoveryCodes, session: after } = await h.sessions.confirmEnrolment(token, code(h, enrolment.secret), post(session.csrfToken), origin);
  t.is(recoveryCodes.length, 10);
  t.is(new Set(recoveryCodes).size, 10);
  t.is(after.state, 'complete');
  t.is((await h.sessions.authenticate(token, GET, origin)).login, 'ada');
});

test('11.10(d) the next sign-in of an enrolled person needs a code, which works once', async (t) => {
  const h = await harness();
  const ada = await enrolledAda(h);
  h.clock.ms += 60_000;
  const { token, session } = await h.sessions.signIn('ada', 'ada-password', origin);
  t.is(session.state, 'second-factor');
  const current = code(h, ada.secret);
  t.is((await h.sessions.secondFactor(token, { code: current }, post(session.csrfToken), origin)).state, 'complete');
  // The same code in another sign-in within its 30 s: refused.
  const again = await h.sessions.signIn('ada', 'ada-password', origin);
  const replay = await t.throwsAsync(h.sessions.secondFactor(again.token, { code: current }, post(again.session.csrfToken), origin));
  t.is((replay as VellumError).code, 'MFA_CODE_INVALID');
  t.is((await h.entries('auth.mfa.verify')).length, 1);
});

test('11.10(d) a recovery code stands in for a TOTP code once; regeneration replaces them all (audited)', async (t) => {
  const h = await harness();
  const ada = await enrolledAda(h);
  const first = await h.sessions.signIn('ada', 'ada-password', origin);
  await h.sessions.secondFactor(first.token, { recoveryCode: ada.recoveryCodes[0]!.toLowerCase() }, post(first.session.csrfToken), origin);
  const second = await h.sessions.signIn('ada', 'ada-password', origin);
  await t.throwsAsync(h.sessions.secondFactor(second.token, { recoveryCode: ada.recoveryCodes[0]! }, post(second.session.csrfToken), origin), { message: /not correct/ });
  const [used] = await h.entries('auth.mfa.recovery-code');
  t.deepEqual(used?.newValue, { recoveryCodesLeft: 9 });

  h.clock.ms += 30_000;
  const fresh = await h.sessions.regenerateRecoveryCodes(ada.token, code(h, ada.secret), post(ada.csrf), origin);
  t.is(fresh.length, 10);
  t.is((await h.entries('auth.mfa.recovery-codes.regenerate')).length, 1);
  const third = await h.sessions.signIn('ada', 'ada-password', origin);
  await t.throwsAsync(h.sessions.secondFactor(third.token, { recoveryCode: ada.recoveryCodes[1]! }, post(third.session.csrfToken), origin), { message: /not correct/ }, 'an old, unused code no longer works');
  t.is((await h.sessions.secondFactor(third.token, { recoveryCode: fresh[0]! }, post(third.session.csrfToken), origin)).state, 'complete');
});

test('11.300(d) after repeated wrong codes the pending session ends', async (t) => {
  const h = await harness();
  await enrolledAda(h);
  const { token, session } = await h.sessions.signIn('ada', 'ada-password', origin);
  for (let i = 0; i < MAX_FAILED_CODES; i++) {
    await t.throwsAsync(h.sessions.secondFactor(token, { code: '000000' }, post(session.csrfToken), origin), { message: /not correct/ });
  }
  t.is(h.failures.length, MAX_FAILED_CODES, 'each wrong code counted toward lockout');
  await t.throwsAsync(h.sessions.view(token, origin), { message: /session has ended/ });
  t.is((await h.entries('auth.session.end')).length, 1);
});

test('11.10(d) state-changing requests need the session\'s CSRF token (refusal audited); reads do not', async (t) => {
  const h = await harness();
  const { token, session } = await h.sessions.signIn('sam', 'sam-password', origin);
  for (const csrf of [undefined, 'not-the-token', session.csrfToken.slice(1)]) {
    const error = await t.throwsAsync(h.sessions.authenticate(token, post(csrf), origin));
    t.is((error as VellumError).code, 'CSRF_INVALID');
  }
  t.is((await h.sessions.authenticate(token, post(session.csrfToken), origin)).login, 'sam');
  t.is((await h.sessions.authenticate(token, GET, origin)).login, 'sam');
  const refusals = (await h.entries('auth.session')).filter((entry) => entry.detail?.startsWith('CSRF_INVALID'));
  t.is(refusals.length, 3);
  t.true(refusals.every((entry) => entry.outcome === 'denied' && entry.actor?.login === 'sam'));
});

test('11.10(d) idle timeout: activity keeps the session; idleness past the limit ends it (audited)', async (t) => {
  const h = await harness({ idleMinutes: 15 });
  const { token } = await h.sessions.signIn('sam', 'sam-password', origin);
  for (let i = 0; i < 4; i++) {
    h.clock.ms += 14 * 60_000;
    await h.sessions.authenticate(token, GET, origin);
  }
  h.clock.ms += 15 * 60_000;
  const error = await t.throwsAsync(h.sessions.authenticate(token, GET, origin));
  t.is((error as VellumError).code, 'SESSION_EXPIRED');
  const [expiry] = await h.entries('auth.session.expire');
  t.is(expiry?.actor?.login, 'sam');
  t.regex(expiry?.detail ?? '', /idle/);
});

test('11.10(d) absolute timeout: an active session still ends at the limit', async (t) => {
  const h = await harness({ idleMinutes: 15, absoluteHours: 1 });
  const { token } = await h.sessions.signIn('sam', 'sam-password', origin);
  for (let i = 0; i < 5; i++) {
    h.clock.ms += 10 * 60_000;
    await h.sessions.authenticate(token, GET, origin);
  }
  h.clock.ms += 10 * 60_000;
  await t.throwsAsync(h.sessions.authenticate(token, GET, origin), { message: /session has ended/ });
  t.regex((await h.entries('auth.session.expire'))[0]?.detail ?? '', /older than 1 h/);
});

test('11.10(d) sign-out ends the session at once (auth.logout)', async (t) => {
  const h = await harness();
  const { token, session } = await h.sessions.signIn('sam', 'sam-password', origin);
  await t.throwsAsync(h.sessions.signOut(token, post(undefined), origin), { message: /anti-forgery/ });
  await h.sessions.signOut(token, post(session.csrfToken), origin);
  await t.throwsAsync(h.sessions.authenticate(token, GET, origin), { message: /session has ended/ });
  t.is((await h.entries('auth.logout'))[0]?.actor?.login, 'sam');
});

test('11.300(b) an Administrator ends all of a person\'s sessions at once; others may not (audited)', async (t) => {
  const h = await harness();
  const one = await h.sessions.signIn('sam', 'sam-password', origin);
  const two = await h.sessions.signIn('sam', 'sam-password', origin);
  const ada = h.people.get('ada')!;
  const sam = h.people.get('sam')!;
  const denied = await t.throwsAsync(h.sessions.revokePerson(ada.id, sam, origin));
  t.is((denied as VellumError).code, 'FORBIDDEN');
  t.is(await h.sessions.revokePerson(sam.id, ada, origin), 2);
  for (const { token } of [one, two]) await t.throwsAsync(h.sessions.authenticate(token, GET, origin), { message: /session has ended/ });
  const revocations = await h.entries('auth.session.revoke');
  t.deepEqual(revocations.map((entry) => [entry.outcome, entry.actor?.login]), [['denied', 'sam'], ['success', 'ada']]);
  t.deepEqual(revocations[1]?.newValue, { sessionsEnded: 2 });
  t.deepEqual(h.forgotten, [sam.id], 'cached sign-ins are dropped too');
});

test('11.10(d) groups are read again after cacheSeconds; a person gone from the directory loses the session', async (t) => {
  const h = await harness({ cacheSeconds: 60 });
  const { token } = await h.sessions.signIn('sam', 'sam-password', origin);
  h.people.set('sam', { ...h.people.get('sam')!, groups: [] });
  h.clock.ms += 30_000;
  t.deepEqual((await h.sessions.authenticate(token, GET, origin)).groups, [STAFF], 'within cacheSeconds: the snapshot');
  h.clock.ms += 31_000;
  t.deepEqual((await h.sessions.authenticate(token, GET, origin)).groups, [], 'after: as the directory has it now');
  h.people.delete('sam');
  h.clock.ms += 61_000;
  await t.throwsAsync(h.sessions.authenticate(token, GET, origin), { message: /session has ended/ });
  t.regex((await h.entries('auth.session.end'))[0]?.detail ?? '', /no longer in the directory/);
});

test('the database holds only the token\'s SHA-256 and the TOTP secret only sealed', async (t) => {
  const h = await harness();
  const ada = await enrolledAda(h);
  const hash = createHash('sha256').update(ada.token).digest('hex');
  let found = 0;
  for await (const [key] of h.db.section('web-sessions').entries()) if (key.includes(hash)) found++;
  t.is(found, 2, 'the session and its per-person index, by hash');
  await h.db.close();
  const files = await readdir(join(h.dir, 'db'));
  const bytes = Buffer.concat(await Promise.all(files.map((file) => readFile(join(h.dir, 'db', file)))));
  // Control: a random value that is stored as it is (the CSRF token) is found this way.
  t.true(bytes.includes(Buffer.from(ada.csrf)), 'the search sees stored values');
  t.false(bytes.includes(Buffer.from(ada.token)), 'the token itself is nowhere in the store');
  t.false(bytes.includes(Buffer.from(ada.secret)), 'the base32 secret is nowhere in the store');
  t.false(bytes.includes(base32Decode(ada.secret)!), 'the raw secret is nowhere in the store');
  harnesses.splice(harnesses.indexOf(h), 1);
  await rm(h.dir, { recursive: true, force: true });
});

test('the sweep removes sessions nobody came back to, auditing each expiry', async (t) => {
  const h = await harness({ idleMinutes: 15 });
  await h.sessions.signIn('sam', 'sam-password', origin);
  const kept = await h.sessions.signIn('sam', 'sam-password', origin);
  t.is(await h.sessions.sweepExpired(), 0);
  h.clock.ms += 10 * 60_000;
  await h.sessions.authenticate(kept.token, GET, origin);
  h.clock.ms += 6 * 60_000;
  t.is(await h.sessions.sweepExpired(), 1);
  t.is((await h.sessions.authenticate(kept.token, GET, origin)).login, 'sam');
  t.is((await h.entries('auth.session.expire')).length, 1);
});

test('MFA policy "everyone" asks sam to enrol; "nobody" lets ada in, unless she enrolled of her own accord', async (t) => {
  const everyone = await harness({ requiredFor: 'everyone' });
  t.is((await everyone.sessions.signIn('sam', 'sam-password', origin)).session.state, 'enrolment');
  const nobody = await harness({ requiredFor: 'nobody' });
  const first = await nobody.sessions.signIn('ada', 'ada-password', origin);
  t.is(first.session.state, 'complete');
  const enrolment = await nobody.sessions.beginEnrolment(first.token, post(first.session.csrfToken), origin);
  await nobody.sessions.confirmEnrolment(first.token, code(nobody, enrolment.secret), post(first.session.csrfToken), origin);
  t.is((await nobody.sessions.signIn('ada', 'ada-password', origin)).session.state, 'second-factor');
});

test('11.10(d) the timeouts cannot be switched off by configuration', (t) => {
  const base = { dataDir: '/d', ldap: { url: 'ldap://l', bindDn: 'cn=s', bindPassword: { env: 'P' }, userBase: 'ou=p', groupBase: 'ou=g' }, hsm: { library: '/l.so', tokenLabel: 't', pin: { env: 'PIN' } } };
  for (const webSessions of [{ idleMinutes: 0 }, { absoluteHours: 0 }, { idleMinutes: -1 }]) {
    t.false(validate({ ...base, auth: { webSessions } }).ok, JSON.stringify(webSessions));
  }
  t.true(validate({ ...base, auth: { webSessions: { idleMinutes: 5, absoluteHours: 8 } } }).ok);
});
