// `vellum audit verify` as an inspector runs it: the real bin/vellum as a
// child process, in an empty directory with no configuration, appliance or
// HSM, on exports of a real trail (21 CFR 11.10(e), 11.10(b)).

import test from 'ava';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportBytes, openFixture, signWith, STUDY_A, type Fixture } from '../audit/export-fixture.ts';

const VELLUM = fileURLToPath(new URL('../../bin/vellum', import.meta.url));

let fx: Fixture;
const file: Record<'complete' | 'filteredCsv' | 'changed' | 'forged' | 'notCert', string> = { complete: '', filteredCsv: '', changed: '', forged: '', notCert: '' };
test.before(async () => {
  fx = await openFixture();
  const complete = (await exportBytes(fx.source, { format: 'jsonl' })).toString('utf8');
  const forged = await signWith(fx.other.key, { ...fx.checkpoint });
  const contents = {
    complete,
    filteredCsv: await exportBytes(fx.source, { format: 'csv', filter: { study: STUDY_A } }),
    changed: complete.replace('"reason":"reason 9"', '"reason":"reason 8"'),
    forged: complete.replace(fx.checkpoint.signature, forged.signature),
    notCert: 'not a certificate\n',
  };
  for (const [name, content] of Object.entries(contents)) {
    file[name as keyof typeof file] = join(fx.dir, name);
    await writeFile(join(fx.dir, name), content);
  }
});
test.after.always(async () => fx?.close());

interface Outcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** bin/vellum with no VELLUM_* variables, run from the fixture's directory (no configuration anywhere). */
function vellum(args: readonly string[]): Promise<Outcome> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('VELLUM_')));
  return new Promise((resolve) => {
    const child = execFile(VELLUM, args, { env, cwd: fx.dir, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
    child.stdin?.end();
  });
}

test('11.10(e) vellum audit verify proves a complete export with the pinned certificate: exit 0, what was proven, no warning', async (t) => {
  const result = await vellum(['audit', 'verify', file.complete, '--cert', fx.signing.certificateFile]);
  t.is(result.code, 0, result.stderr);
  t.regex(result.stdout, new RegExp(`^OK \\(JSON Lines\\)\\. complete: all 40 entries of log ${fx.logId} up to checkpoint ${fx.checkpoint.time}\\.$`, 'm'));
  t.regex(result.stdout, /^Checkpoint signed by: O=Vellum, CN=appliance audit signing$/m);
  t.regex(result.stdout, /^Certificate SHA-256 fingerprint: ([0-9A-F]{2}:){31}[0-9A-F]{2} \(pinned with --cert\)$/m);
  t.is(result.stderr, '');
});

test('11.10(e) vellum audit verify proves a filtered CSV export as a subset, and warns when no certificate is pinned', async (t) => {
  const count = fx.entries.filter((e) => e.object.study === STUDY_A).length;
  const result = await vellum(['audit', 'verify', file.filteredCsv]);
  t.is(result.code, 0, result.stderr);
  t.regex(result.stdout, new RegExp(`^OK \\(CSV\\)\\. subset: ${count} entries proven to belong to the signed log of 40 entries .*a subset cannot prove that nothing was left out\\.$`, 'm'));
  t.regex(result.stdout, /\(the one inside the file\)$/m);
  t.regex(result.stderr, /^Warning: no certificate was pinned/);
});

test('11.10(e) vellum audit verify --json prints the report', async (t) => {
  const result = await vellum(['audit', 'verify', '--json', file.complete, '--cert', fx.signing.certificateFile]);
  t.is(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout) as Record<string, unknown>;
  t.like(report, { ok: true, format: 'jsonl', complete: true, entries: 40, checkpoint: { size: 40, logId: fx.logId, root: fx.checkpoint.root, time: fx.checkpoint.time }, certificate: { pinned: true } });
  const broken = await vellum(['audit', 'verify', file.changed, '--json']);
  t.is(broken.code, 1);
  t.like(JSON.parse(broken.stdout), { ok: false, firstBroken: { seq: 9, problem: 'line 11, entry 9: content does not match its hash' } });
});

test('11.10(e) vellum audit verify exits 1 naming the first broken entry: a changed byte, a signature by another key with --cert', async (t) => {
  const changed = await vellum(['audit', 'verify', file.changed, '--cert', fx.signing.certificateFile]);
  t.is(changed.code, 1);
  t.is(changed.stdout, 'BROKEN: line 11, entry 9: content does not match its hash\n');
  const forged = await vellum(['audit', 'verify', file.forged, '--cert', fx.signing.certificateFile]);
  t.is(forged.code, 1);
  t.is(forged.stdout, 'BROKEN: line 2: the checkpoint\'s signature does not verify with the pinned certificate\n');
});

test('vellum audit verify exits 2 on a missing or unreadable file, a directory, a missing FILE, an unreadable or invalid --cert', async (t) => {
  const cases: [string, string[], RegExp][] = [
    ['no such export', ['audit', 'verify', join(fx.dir, 'nope.jsonl')], /cannot read the export .*nope\.jsonl: ENOENT/],
    ['a directory', ['audit', 'verify', fx.dir], /cannot read the export .*not a regular file/],
    ['no FILE', ['audit', 'verify'], /^FILE \(an export\) or --db is needed\./],
    ['two FILEs', ['audit', 'verify', file.complete, file.complete], /Unexpected argument/],
    ['no such certificate', ['audit', 'verify', file.complete, '--cert', join(fx.dir, 'nope.pem')], /cannot read the certificate .*nope\.pem/],
    ['not a certificate', ['audit', 'verify', file.complete, '--cert', file.notCert], /not a PEM X\.509 certificate/],
  ];
  for (const [name, args, message] of cases) {
    const result = await vellum(args);
    t.is(result.code, 2, name);
    t.regex(result.stderr, message, name);
    t.is(result.stdout, '', name);
  }
});
