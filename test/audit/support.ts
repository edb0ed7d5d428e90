// What the audit tests share: real LevelDB stores in temporary directories,
// and a CheckpointSigner with an RSA-3072 key from node:crypto and a
// self-signed certificate made by a real `openssl req -x509` (the HSM-backed
// signer is tested with the keys). The signer can be made to fail, or to block
// until released, so tests can watch retries and writers that must not wait.

import { execFile } from 'node:child_process';
import { createSign, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { CheckpointSigner } from '../../src/audit/index.ts';
import { openDatabase, type Database } from '../../src/db/index.ts';
import { VellumError } from '../../src/kernel/index.ts';

const run = promisify(execFile);

export interface TestSigner extends CheckpointSigner {
  /** sign() calls so far (failed ones included). */
  readonly signCalls: number;
  /** issueCertificate() calls so far. */
  readonly issued: number;
  /** While true, sign() throws HSM_UNAVAILABLE. */
  failing: boolean;
  /** Makes every later sign() wait until release() (the ones already started too). */
  block(): void;
  release(): void;
  /** sign() calls waiting for release(). */
  readonly waiting: number;
}

/** A key pair and its certificate, made once per test file in `dir`. */
async function makeTestSigner(dir: string, name = 'audit'): Promise<TestSigner> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 3072 });
  const keyFile = join(dir, `${name}-key.pem`);
  const certFile = join(dir, `${name}-cert.pem`);
  await writeFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  await run('openssl', ['req', '-x509', '-new', '-key', keyFile, '-sha256', '-days', '3650', '-subj', `/CN=Vellum audit ${name}`, '-out', certFile]);
  const certificate = await readFile(certFile, 'utf8');

  let signCalls = 0;
  let issued = 0;
  let gate: Promise<void> | null = null;
  let open: () => void = () => undefined;
  let waiting = 0;
  const signer: TestSigner = {
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    failing: false,
    get signCalls() {
      return signCalls;
    },
    get issued() {
      return issued;
    },
    get waiting() {
      return waiting;
    },
    async sign(data) {
      signCalls++;
      if (gate !== null) {
        waiting++;
        await gate;
        waiting--;
      }
      if (signer.failing) throw new VellumError('HSM_UNAVAILABLE', 'test signer is failing');
      return createSign('sha256').update(data).sign(privateKey);
    },
    async issueCertificate() {
      issued++;
      return certificate;
    },
    block() {
      gate ??= new Promise<void>((resolve) => {
        open = resolve;
      });
    },
    release() {
      gate = null;
      open();
    },
  };
  return signer;
}

/** Resolves once `condition` holds; fails after `seconds` (a hang guard, not a timing assertion). */
export async function eventually(condition: () => boolean | Promise<boolean>, what: string, seconds = 20): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Databases in temporary directories; cleanup() closes and removes them all. */
export function tempStores(prefix: string) {
  const dirs: string[] = [];
  const open: Database[] = [];
  return {
    async newLocation(): Promise<string> {
      const dir = await mkdtemp(join(tmpdir(), prefix));
      dirs.push(dir);
      return join(dir, 'db');
    },
    async openDb(location: string): Promise<Database> {
      const db = await openDatabase(location);
      open.push(db);
      return db;
    },
    async cleanup(): Promise<void> {
      await Promise.all(open.map((db) => db.close().catch(() => undefined)));
      await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
    },
  };
}

/** Signers whose keys live in one temporary directory, removed by cleanup(). */
export function testKeys(prefix: string) {
  let dir = '';
  return {
    async signer(name = 'audit'): Promise<TestSigner> {
      if (dir === '') dir = await mkdtemp(join(tmpdir(), prefix));
      return makeTestSigner(dir, name);
    },
    async cleanup(): Promise<void> {
      if (dir !== '') await rm(dir, { recursive: true, force: true });
    },
  };
}
