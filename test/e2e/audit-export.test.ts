// Audit exports through the REST API and `vellum audit export`, checked with
// `vellum audit verify` and openssl: the real appliance (slapd, SoftHSM2,
// LevelDB, HTTPS), the checkpoint signed by the RSA key in the HSM. Who may
// export what: Administrators everything, a study's reviewers (read-audit)
// that study only.

import test from 'ava';
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GROUPS, PEOPLE } from '../env/index.ts';
import { run, send, startRunning, STUDY, type Running } from '../support/appliance.ts';

const VELLUM = fileURLToPath(new URL('../../bin/vellum', import.meta.url));
const OTHER = 'TRIAL-B';

let running: Running;
let caFile: string;
let certFile: string;

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function vellum(args: readonly string[], password?: string): Promise<Outcome> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.VELLUM_PASSWORD;
  if (password !== undefined) env.VELLUM_PASSWORD = password;
  return new Promise((resolve) => {
    const child = execFile(VELLUM, args, { env, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
    child.stdin?.end();
  });
}

interface Line {
  readonly kind: string;
  readonly [field: string]: unknown;
}

const linesOf = (text: string): Line[] => text.trimEnd().split('\n').map((line) => JSON.parse(line) as Line);
const entriesOf = (lines: readonly Line[]) => lines.filter((line) => line.kind === 'entry').map((line) => line as Line & { seq: number; proof?: string[]; entry: { action: string; outcome: string; object: { study?: string }; actor: { login: string } | null } });

async function put(path: string, content: string, user: 'sam' | 'dana' = 'sam'): Promise<void> {
  const reply = await send(running, `/dav${path}`, { method: 'PUT', user, body: content });
  if (reply.status !== 201 && reply.status !== 204) throw new Error(`PUT ${path}: ${reply.status} ${reply.text}`);
}

async function entriesSince(seq: number) {
  const out = [];
  for await (const entry of running.appliance.audit.entries(seq + 1)) out.push(entry);
  return out;
}

test.before(async () => {
  running = await startRunning();
  caFile = join(running.env.dir, 'appliance-ca.pem');
  certFile = join(running.env.dir, 'audit-signing.pem');
  await writeFile(caFile, running.ca);
  // A second study where the Auditors of DEMO-001 hold no role.
  await running.appliance.systemSession('test set-up').createStudy({ id: OTHER, title: 'Other study', bindings: [{ group: GROUPS['demo-001-sponsors'].dn, role: 'Sponsor' }] });
  await put(`/${STUDY}/protocol.txt`, 'protocol v1\n');
  await put(`/${STUDY}/protocol.txt`, 'protocol v2\n');
  await put(`/${OTHER}/secret-arm.txt`, 'unblinding list\n');
});
test.after.always(async () => running?.close());

test.serial('the signing certificate: RSA-3072 in the HSM, self-signed, its fingerprint in a header', async (t) => {
  const reply = await send(running, '/api/v1/audit/certificate', { user: 'mona' });
  t.is(reply.status, 200, reply.text);
  t.regex(String(reply.headers['content-type']), /x-pem-file/);
  const certificate = new X509Certificate(reply.text);
  t.is(reply.headers['x-certificate-sha256'], createHash('sha256').update(certificate.raw).digest('hex'));
  t.is(certificate.issuer, certificate.subject, 'self-issued');
  t.true(certificate.verify(certificate.publicKey), 'self-signed by the key it certifies');
  t.is(certificate.publicKey.asymmetricKeyDetails?.modulusLength, 3072);
  await writeFile(certFile, reply.text);
  const { stdout } = await run('openssl', ['x509', '-in', certFile, '-noout', '-text']);
  t.regex(stdout, /Signature Algorithm: sha256WithRSAEncryption/);
  t.regex(stdout, /Public-Key: \(3072 bit\)/);
  t.is((await send(running, '/api/v1/audit/certificate', { user: null })).status, 401, 'signed in only');
});

test.serial('11.10(e) an Administrator exports the whole trail; it is complete and `vellum audit verify` accepts it', async (t) => {
  const before = running.appliance.audit.head().seq;
  const reply = await send(running, '/api/v1/audit/export', { user: 'ada' });
  t.is(reply.status, 200, reply.text);
  // Exactly one entry says who exported what; the export is cut just before it (after ada's sign-in).
  const exports = (await entriesSince(before)).filter((e) => e.action === 'audit.export');
  t.is(exports.length, 1);
  t.is(exports[0]!.actor?.login, 'ada');
  t.is(exports[0]!.outcome, 'success');
  const size = exports[0]!.seq - 1;
  t.like(exports[0]!.newValue as object, { format: 'jsonl', checkpoint: { size } });
  t.regex(String(reply.headers['content-disposition']), /attachment; filename="vellum-audit-all-\d+\.jsonl"/);
  const lines = linesOf(reply.text);
  t.is(lines[0]!.kind, 'vellum-audit-export');
  t.true(lines[0]!.complete);
  const checkpoint = lines[1]!;
  t.is(checkpoint.kind, 'checkpoint');
  const entries = entriesOf(lines);
  t.is(checkpoint.size, size, 'cut at the head as it was when asked');
  t.true(size >= before);
  t.deepEqual(entries.map((e) => e.seq), Array.from({ length: size }, (_, i) => i + 1), 'every entry, none left out');
  t.true(entries.every((e) => e.proof === undefined), 'a complete export needs no proofs');
  t.true(entries.some((e) => e.entry.object.study === OTHER) && entries.some((e) => e.entry.object.study === undefined), 'every study and the study-less entries');
  t.deepEqual(lines.at(-1), { kind: 'end', entries: size });

  const file = join(running.env.dir, 'all.jsonl');
  await writeFile(file, reply.body);
  const verified = await vellum(['audit', 'verify', file, '--cert', certFile]);
  t.is(verified.code, 0, verified.stdout + verified.stderr);
  t.regex(verified.stdout, /complete/i);
});

test.serial('11.10(d) an Auditor of study A gets only study A; asking for study B is a 404, audited', async (t) => {
  const mine = await send(running, '/api/v1/audit/export', { user: 'audrey' });
  t.is(mine.status, 200, mine.text);
  const lines = linesOf(mine.text);
  t.false(lines[0]!.complete);
  const entries = entriesOf(lines);
  t.true(entries.length > 0);
  t.true(entries.every((e) => e.entry.object.study === STUDY), 'only DEMO-001: no other study, no sign-ins of other people');
  t.true(entries.every((e) => Array.isArray(e.proof)), 'each entry proves it belongs to the signed trail');
  t.true(entries.some((e) => e.entry.action === 'file.update'));
  const file = join(running.env.dir, 'audrey.jsonl');
  await writeFile(file, mine.body);
  const verified = await vellum(['audit', 'verify', file, '--cert', certFile]);
  t.is(verified.code, 0, verified.stdout + verified.stderr);
  t.regex(verified.stdout, /subset|filtered/i);

  const before = running.appliance.audit.head().seq;
  const other = await send(running, `/api/v1/audit/export?study=${OTHER}`, { user: 'audrey' });
  t.is(other.status, 404, other.text);
  t.notRegex(other.text, /unblinding|secret-arm/);
  const denied = (await entriesSince(before)).filter((e) => e.action === 'audit.export');
  t.is(denied.length, 1);
  t.is(denied[0]!.outcome, 'denied');
  t.is(denied[0]!.actor?.login, 'audrey');
  t.is(denied[0]!.object.study, OTHER);

  // A person with a role in the study but without read-audit: 403; with no role anywhere that reviews: 403.
  t.is((await send(running, `/api/v1/audit/export?study=${STUDY}`, { user: 'dana' })).status, 403);
  t.is((await send(running, '/api/v1/audit/export', { user: 'nora' })).status, 403);
});

test.serial('filters: study, action prefix, outcome, person and time; bad filters are a 400', async (t) => {
  const ask = async (query: string) => {
    const reply = await send(running, `/api/v1/audit/export?${query}`, { user: 'ada' });
    t.is(reply.status, 200, `${query}: ${reply.text}`);
    return entriesOf(linesOf(reply.text));
  };
  const writes = await ask(`study=${STUDY}&action=file.`);
  t.true(writes.length >= 2);
  t.true(writes.every((e) => e.entry.action.startsWith('file.') && e.entry.object.study === STUDY));
  const denied = await ask('outcome=denied');
  t.true(denied.length >= 1 && denied.every((e) => e.entry.outcome === 'denied'));
  const bySam = await ask('user=sam');
  t.true(bySam.length >= 3 && bySam.every((e) => e.entry.actor?.login === 'sam'));
  t.is((await ask('from=2999-01-01')).length, 0);
  for (const bad of ['format=xml', 'from=yesterday', 'outcome=maybe', 'action=FILE', 'study=../etc', 'from=2026-02-01&to=2026-01-01']) {
    const reply = await send(running, `/api/v1/audit/export?${bad}`, { user: 'ada' });
    t.is(reply.status, 400, bad);
    t.regex(reply.text, /BAD_REQUEST/, bad);
  }
});

test.serial('CSV for Excel: BOM, CRLF, and it verifies like JSON Lines', async (t) => {
  const reply = await send(running, `/api/v1/audit/export?format=csv&study=${STUDY}`, { user: 'audrey' });
  t.is(reply.status, 200, reply.text);
  t.regex(String(reply.headers['content-type']), /text\/csv/);
  t.deepEqual([...reply.body.subarray(0, 3)], [0xef, 0xbb, 0xbf]);
  t.true(reply.text.includes('\r\n'));
  t.true(reply.text.slice(1).startsWith('"kind","seq","time"') || reply.text.slice(1).startsWith('kind,seq,time'));
  const file = join(running.env.dir, 'audrey.csv');
  await writeFile(file, reply.body);
  const verified = await vellum(['audit', 'verify', file, '--cert', certFile]);
  t.is(verified.code, 0, verified.stdout + verified.stderr);
});

test.serial('`vellum audit export` downloads through the API; one changed byte fails `vellum audit verify`, naming the entry', async (t) => {
  const file = join(running.env.dir, 'cli.jsonl');
  const exported = await vellum(['audit', 'export', '--url', running.https, '--ca', caFile, '--user', 'ada', '--output', file], PEOPLE.ada.password);
  t.is(exported.code, 0, exported.stdout + exported.stderr);
  t.regex(exported.stdout, /Wrote .*cli\.jsonl/);
  const good = await vellum(['audit', 'verify', file, '--cert', certFile]);
  t.is(good.code, 0, good.stdout + good.stderr);

  const text = await readFile(file, 'utf8');
  const lines = text.split('\n');
  const target = lines.findIndex((line) => line.includes('"action":"file.update"'));
  t.true(target > 1);
  const seq = (JSON.parse(lines[target]!) as { seq: number }).seq;
  lines[target] = lines[target]!.replace('"outcome":"success"', '"outcome":"failed"');
  const bad = join(running.env.dir, 'cli-bad.jsonl');
  await writeFile(bad, lines.join('\n'));
  const broken = await vellum(['audit', 'verify', bad, '--cert', certFile]);
  t.is(broken.code, 1, broken.stdout + broken.stderr);
  t.regex(broken.stdout + broken.stderr, new RegExp(`entry ${seq}\\b`));

  const refused = await vellum(['audit', 'export', '--url', running.https, '--ca', caFile, '--user', 'nora', '--output', join(running.env.dir, 'nora.jsonl')], PEOPLE.nora.password);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /FORBIDDEN/);
});

test.serial('POST /audit/verification checks the live store and is audited', async (t) => {
  const before = running.appliance.audit.head().seq;
  const reply = await send(running, '/api/v1/audit/verification', { method: 'POST', user: 'audrey' });
  t.is(reply.status, 200, reply.text);
  const report = JSON.parse(reply.text) as { ok: boolean; checked: number };
  t.true(report.ok);
  t.true(report.checked >= before);
  const entries = (await entriesSince(before)).filter((e) => e.action === 'audit.verify');
  t.is(entries.length, 1);
  t.is(entries[0]!.outcome, 'success');
  t.is((await send(running, '/api/v1/audit/verification', { method: 'POST', user: 'nora' })).status, 403);
});

test.serial('`vellum audit verify --db` while the appliance runs (it holds the database) asks the appliance to verify', async (t) => {
  const without = await vellum(['audit', 'verify', '--db', '--data-dir', running.dataDir]);
  t.is(without.code, 1, without.stdout + without.stderr);
  t.regex(without.stderr, /running appliance holds the database.*--user/s);
  const through = await vellum(['audit', 'verify', '--db', '--data-dir', running.dataDir, '--url', running.https, '--ca', caFile, '--user', 'audrey'], PEOPLE.audrey.password);
  t.is(through.code, 0, through.stdout + through.stderr);
  t.regex(through.stdout, /^OK: \d+ entries and \d+ signed checkpoints verified/);
});

test.serial('11.10(e) the inspector\'s openssl recipe accepts the appliance\'s HSM-signed exports and names the entry of a changed byte', async (t) => {
  const doc = await readFile(fileURLToPath(new URL('../../docs/audit-verification.md', import.meta.url)), 'utf8');
  const script = join(running.env.dir, 'verify-vellum-export.sh');
  await writeFile(script, [...doc.matchAll(/^```bash\n([\s\S]*?)^```$/gm)][0]![1]!);
  const recipe = (file: string) => new Promise<{ code: number; out: string }>((resolve) => {
    execFile('bash', [script, file, certFile], { timeout: 300_000 }, (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, out: stdout + stderr }));
  });
  for (const [name, user, query] of [['complete', 'ada', ''], ['filtered', 'audrey', `?study=${STUDY}`]] as const) {
    const reply = await send(running, `/api/v1/audit/export${query}`, { user });
    t.is(reply.status, 200, reply.text);
    const file = join(running.env.dir, `recipe-${name}.jsonl`);
    await writeFile(file, reply.body);
    const good = await recipe(file);
    t.is(good.code, 0, `${name}: ${good.out}`);
    t.regex(good.out, /^OK: /m, name);
    const lines = reply.text.split('\n');
    const target = lines.findIndex((line) => line.includes('"action":"file.update"'));
    const seq = (JSON.parse(lines[target]!) as { seq: number }).seq;
    lines[target] = lines[target]!.replace('"outcome":"success"', '"outcome":"denied"');
    await writeFile(file, lines.join('\n'));
    const bad = await recipe(file);
    t.not(bad.code, 0, `${name}: ${bad.out}`);
    t.regex(bad.out, new RegExp(`entry ${seq}\\b`), name);
  }
});
