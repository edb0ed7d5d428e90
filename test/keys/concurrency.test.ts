// Many operations at once on a real SoftHSM2 token through a pool of 4 sessions
// (PKCS#11: one active operation per session).

import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initSoftHsm } from '../env/softhsm.ts';
import { openKeyVault } from '../../src/keys/index.ts';
import type { KeyVault } from '../../src/keys/index.ts';

let dir: string;
let vault: KeyVault;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vellum-keys-'));
  const token = await initSoftHsm({ dir });
  vault = await openKeyVault({ library: token.library, tokenLabel: token.tokenLabel, pin: token.pin, sessions: 4 }, { dekCacheTtlMs: 0 });
  await Promise.all(['STUDY-A', 'STUDY-B', 'STUDY-C'].map((s) => vault.ensureStudyKey(s)));
});

test.after.always(async () => {
  await vault?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test.serial('200 parallel newDataKey + unwrapDataKey over 3 studies with 4 sessions all succeed and match', async (t) => {
  const studies = ['STUDY-A', 'STUDY-B', 'STUDY-C'];
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: 200 }, async (_, i) => {
      const dek = await vault.newDataKey(studies[i % 3]!);
      const back = await vault.unwrapDataKey(dek.wrapped);
      return { dek, back };
    }),
  );
  const ms = performance.now() - started;
  t.log(`200 x (newDataKey + unwrapDataKey): ${ms.toFixed(1)} ms, ${(ms / 200).toFixed(3)} ms per pair`);
  t.is(results.length, 200);
  for (const { dek, back } of results) t.deepEqual(back, dek.key);
  t.is(new Set(results.map((r) => r.dek.key.toString('hex'))).size, 200);
  const status = await vault.status();
  t.true(status.ok, status.detail);
});

test.serial('measured: sequential newDataKey and unwrapDataKey latency (HSM touched once per blob)', async (t) => {
  const n = 500;
  const deks = [];
  let started = performance.now();
  for (let i = 0; i < n; i++) deks.push(await vault.newDataKey('STUDY-A'));
  const newMs = (performance.now() - started) / n;
  started = performance.now();
  for (const dek of deks) t.true((await vault.unwrapDataKey(dek.wrapped)).equals(dek.key));
  const unwrapMs = (performance.now() - started) / n;
  t.log(`newDataKey ${newMs.toFixed(3)} ms/op, unwrapDataKey ${unwrapMs.toFixed(3)} ms/op (cache off)`);
  // Generous bound: an order of magnitude above SoftHSM's ~0.1 ms, to catch a pathological slowdown only.
  t.true(newMs < 5 && unwrapMs < 5, `newDataKey ${newMs} ms, unwrap ${unwrapMs} ms`);
});
