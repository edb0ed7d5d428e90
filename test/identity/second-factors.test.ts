// TOTP secrets at rest on a real SoftHSM2 token and a real LevelDB: sealed
// with AES-256-GCM under data keys wrapped by the identity system KEK, which
// stays in the HSM. A tampered or transplanted secret does not open.

import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openAuditTrail } from '../../src/audit/index.ts';
import { openDatabase, type Database } from '../../src/db/index.ts';
import { createSecondFactors, type SecondFactors } from '../../src/identity/index.ts';
import { base32Decode, totpCode } from '../../src/identity/totp.ts';
import { VellumError, type Principal, type RequestOrigin } from '../../src/kernel/index.ts';
import { openKeyVault, systemSecretKeys, type KeyVault, type SystemKeys } from '../../src/keys/index.ts';
import { initSoftHsm } from '../env/softhsm.ts';

let dir: string;
let db: Database;
let keys: KeyVault & SystemKeys;
let factors: SecondFactors;
const origin: RequestOrigin = { ip: '192.0.2.1', client: 'test', protocol: 'web' };
const ada: Principal = { id: 'id-ada', login: 'ada', dn: 'uid=ada', displayName: 'Ada', groups: [] };
const sam: Principal = { id: 'id-sam', login: 'sam', dn: 'uid=sam', displayName: 'Sam', groups: [] };
let adaSecret: Buffer;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vellum-second-factors-'));
  const token = await initSoftHsm({ dir });
  // No DEK cache: every open below is done by the HSM.
  keys = await openKeyVault({ library: token.library, tokenLabel: token.tokenLabel, pin: token.pin }, { dekCacheTtlMs: 0 });
  db = await openDatabase(join(dir, 'db'));
  factors = createSecondFactors(db, await openAuditTrail(db), systemSecretKeys(keys, 'identity'), { issuer: 'Vellum' });
  const enrolment = await factors.begin(ada, origin);
  adaSecret = base32Decode(enrolment.secret)!;
  if ((await factors.confirm(ada, totpCode(adaSecret, Date.now()), origin)) === null) throw new Error('enrolment did not confirm');
});

test.after.always(async () => {
  await db?.close();
  await keys?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Sealed { key: { kekVersion: number; mechanism: string; wrapped: string }; iv: string; data: string; tag: string }
interface Record { secret: Sealed | null; lastStep: number | null; recoveryHashes: string[]; pending: Sealed | null; enrolledAt: string | null }
const section = () => db.section<Record>('mfa');

test.serial('the stored secret is sealed under a data key wrapped by the HSM, not the secret itself', async (t) => {
  const record = (await section().get(ada.id))!;
  t.truthy(record.secret);
  t.is(record.pending, null);
  t.is(record.secret!.key.mechanism, 'AES_KEY_WRAP_PAD');
  t.is(Buffer.from(record.secret!.key.wrapped, 'base64').length, 40);
  t.false(Buffer.from(JSON.stringify(record)).includes(adaSecret), 'no raw secret bytes');
  t.false(JSON.stringify(record).includes(adaSecret.toString('base64')));
  t.true(await factors.isEnrolled(ada.id));
  t.false(await factors.isEnrolled(sam.id));
  const health = await keys.status();
  t.true(health.ok);
  t.regex(health.detail, /0 study keys/, 'the identity key is not counted as a study key');
});

test.serial('11.10(a) a tampered sealed secret fails its integrity check instead of verifying anything', async (t) => {
  const record = (await section().get(ada.id))!;
  const data = Buffer.from(record.secret!.data, 'base64');
  data[0]! ^= 1;
  await db.write([section().put(ada.id, { ...record, secret: { ...record.secret!, data: data.toString('base64') } })]);
  const error = await t.throwsAsync(factors.verifyCode(ada, totpCode(adaSecret, Date.now() + 30_000), origin));
  t.is((error as VellumError).code, 'INTEGRITY_FAILURE');
  await db.write([section().put(ada.id, record)]);
});

test.serial('11.10(a) a sealed secret copied into another person\'s record does not open there', async (t) => {
  const record = (await section().get(ada.id))!;
  await db.write([section().put(sam.id, record)]);
  const error = await t.throwsAsync(factors.verifyCode(sam, totpCode(adaSecret, Date.now() + 30_000), origin));
  t.is((error as VellumError).code, 'INTEGRITY_FAILURE');
});

test.serial('the sealed secret opens again through the HSM and verifies a fresh code', async (t) => {
  t.true(await factors.verifyCode(ada, totpCode(adaSecret, Date.now() + 30_000), origin));
});
