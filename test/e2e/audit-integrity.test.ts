// Nothing can change the trail unnoticed (issue: tamper-evident audit trail,
// 21 CFR 11.10(a), (e)). Someone with file access edits, deletes and reorders
// entries in the LevelDB behind the appliance's back (with `level`, as an
// intruder would); `vellum audit verify --db` flags each, naming the entry,
// and accepts the store again once it is put back; the appliance, started on
// a tampered store, raises the integrity alert (webhook, audit entry, health).

import test from 'ava';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Level } from 'level';
import { restartAppliance } from '../identity/restart.ts';
import { send, startRunning, STUDY, type Running } from '../support/appliance.ts';
import { startWebhook, type Webhook } from '../support/webhook.ts';

const VELLUM = fileURLToPath(new URL('../../bin/vellum', import.meta.url));
const key = (seq: number) => seq.toString().padStart(16, '0');

let running: Running;
let hook: Webhook;

function vellum(args: readonly string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(VELLUM, args, { timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: stdout + stderr });
    });
    child.stdin?.end();
  });
}

/** The audit section of a LevelDB: sublevel 'audit', JSON values, 16-digit keys. */
interface RawAudit {
  get(key: string): Promise<unknown>;
  put(key: string, value: unknown): Promise<void>;
  del(key: string): Promise<void>;
  batch(ops: { type: 'put'; key: string; value: unknown }[]): Promise<void>;
}

/** The audit section of the stopped appliance's LevelDB, opened directly. */
async function withRawAudit<T>(change: (audit: RawAudit) => Promise<T>): Promise<T> {
  const raw = new Level<string, unknown>(join(running.dataDir, 'db'), { valueEncoding: 'json' });
  await raw.open();
  try {
    return await change(raw.sublevel<string, unknown>('audit', { valueEncoding: 'json' }));
  } finally {
    await raw.close();
  }
}

const verifyDb = () => vellum(['audit', 'verify', '--db', '--data-dir', running.dataDir]);

test.before(async () => {
  hook = await startWebhook();
  running = await startRunning();
  for (let i = 1; i <= 5; i++) {
    const reply = await send(running, `/dav/${STUDY}/note-${i}.txt`, { method: 'PUT', body: `note ${i}\n` });
    if (reply.status !== 201) throw new Error(`PUT: ${reply.status} ${reply.text}`);
  }
  await running.stopAppliance();
});

test.after.always(async () => {
  await running?.close();
  hook?.close();
});

test.serial('an untouched store verifies', async (t) => {
  const { code, out } = await verifyDb();
  t.is(code, 0, out);
  t.regex(out, /\bok\b|verified/i);
});

test.serial('11.10(e) verify --db flags an edited entry, a deleted one and two reordered, each by number; put back, it passes', async (t) => {
  const target = 4;
  const original = await withRawAudit((audit) => audit.get(key(target))) as Record<string, unknown>;
  t.truthy(original);

  await withRawAudit((audit) => audit.put(key(target), { ...original, outcome: 'denied' }));
  let result = await verifyDb();
  t.is(result.code, 1, result.out);
  t.regex(result.out, new RegExp(`entry ${target}\\b`), 'the edited entry is named');

  await withRawAudit((audit) => audit.put(key(target), original));
  t.is((await verifyDb()).code, 0, 'the original value restored verifies again');

  await withRawAudit((audit) => audit.del(key(target)));
  result = await verifyDb();
  t.is(result.code, 1, result.out);
  t.regex(result.out, new RegExp(`entry ${target}\\b`), 'the missing entry is named');
  await withRawAudit((audit) => audit.put(key(target), original));

  const next = await withRawAudit((audit) => audit.get(key(target + 1))) as Record<string, unknown>;
  await withRawAudit(async (audit) => {
    await audit.batch([{ type: 'put', key: key(target), value: next }, { type: 'put', key: key(target + 1), value: original }]);
  });
  result = await verifyDb();
  t.is(result.code, 1, result.out);
  t.regex(result.out, new RegExp(`entry ${target}\\b`), 'the first of the swapped pair is named');
  await withRawAudit(async (audit) => {
    await audit.batch([{ type: 'put', key: key(target), value: original }, { type: 'put', key: key(target + 1), value: next }]);
  });
  t.is((await verifyDb()).code, 0);
});

test.serial('11.10(a) the appliance started on a tampered trail raises the integrity alert: webhook, audit entry, health', async (t) => {
  const target = 3;
  const original = await withRawAudit((audit) => audit.get(key(target))) as Record<string, unknown>;
  await withRawAudit((audit) => audit.put(key(target), { ...original, reason: 'rewritten history' }));
  running = await restartAppliance(running, (c) => ({ ...c, alerts: { webhookUrl: hook.url } }));
  for (let i = 0; i < 400 && !hook.alerts.some((a) => a.event === 'audit.integrity'); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  const alert = hook.alerts.find((a) => a.event === 'audit.integrity');
  t.truthy(alert, JSON.stringify(hook.alerts));
  t.regex(String(alert?.problem), new RegExp(`entry ${target}\\b`));

  const verifications = [];
  for await (const entry of running.appliance.audit.entries()) if (entry.action === 'audit.verify') verifications.push(entry);
  const atStart = verifications.at(-1);
  t.is(atStart?.outcome, 'failed');
  t.regex(String(atStart?.detail), new RegExp(`entry ${target}\\b`));

  const health = await send(running, '/healthz', { user: null });
  t.regex(health.text, /audit/);
  t.notRegex(JSON.stringify((JSON.parse(health.text) as { components?: { audit?: unknown } }).components?.audit ?? {}), /"ok":true/);
  t.is((await send(running, `/dav/${STUDY}/after.txt`, { method: 'PUT', body: 'still serving\n' })).status, 201, 'the appliance keeps serving (and recording) while the alert stands');
});
