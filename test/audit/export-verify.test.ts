// Offline verification of audit exports (21 CFR 11.10(e): the trail cannot be
// altered unnoticed; 11.10(b): copies an inspector can check). Good exports
// from a real trail verify; every kind of edit an intruder or a careless
// spreadsheet could make is caught and named by line and entry.

import test from 'ava';
import { X509Certificate } from 'node:crypto';
import { verifyExport, type ExportReport } from '../../src/audit/export-verify.ts';
import { isVellumError } from '../../src/kernel/index.ts';
import { exportBytes, openFixture, signWith, STUDY_A, trickle, type Fixture } from './export-fixture.ts';

let fx: Fixture;
let jsonl: { complete: Buffer; filtered: Buffer };
let csv: { complete: Buffer; filtered: Buffer };
test.before(async () => {
  fx = await openFixture();
  jsonl = { complete: await exportBytes(fx.source, { format: 'jsonl' }), filtered: await exportBytes(fx.source, { format: 'jsonl', filter: { study: STUDY_A } }) };
  csv = { complete: await exportBytes(fx.source, { format: 'csv' }), filtered: await exportBytes(fx.source, { format: 'csv', filter: { study: STUDY_A } }) };
});
test.after.always(async () => fx?.close());

const studyA = () => fx.entries.filter((e) => e.object.study === STUDY_A);

/** Edits the text of one line (1-based) of a JSON Lines export. */
function editLine(bytes: Buffer, line: number, edit: (text: string) => string): Buffer {
  const lines = bytes.toString('utf8').split('\n');
  lines[line - 1] = edit(lines[line - 1]!);
  return Buffer.from(lines.join('\n'), 'utf8');
}

function lineOf(bytes: Buffer, seq: number): number {
  return bytes.toString('utf8').split('\n').findIndex((l) => l.startsWith(`{"kind":"entry","seq":${seq},`)) + 1;
}

function broken(t: import('ava').ExecutionContext, report: ExportReport, line: number, seq: number | undefined, problem: RegExp): void {
  t.false(report.ok);
  t.is(report.firstBroken?.line, line, report.firstBroken?.problem);
  t.is(report.firstBroken?.seq, seq, report.firstBroken?.problem);
  t.regex(report.firstBroken?.problem ?? '', problem);
}

for (const format of ['jsonl', 'csv'] as const) {
  test(`11.10(e) a complete ${format} export verifies: every entry, the chain, the head and the root, with the pinned certificate`, async (t) => {
    const bytes = format === 'csv' ? csv.complete : jsonl.complete;
    const report = await verifyExport(trickle(bytes), { certificatePem: fx.signing.certificatePem });
    const certificate = new X509Certificate(fx.signing.certificatePem);
    t.deepEqual(report, {
      ok: true, format, complete: true, entries: fx.entries.length,
      checkpoint: { size: fx.checkpoint.size, time: fx.checkpoint.time, root: fx.checkpoint.root, logId: fx.logId },
      certificate: { fingerprint: certificate.fingerprint256, subject: certificate.subject, pinned: true },
    });
  });

  test(`11.10(e) a filtered ${format} export verifies: each entry proven to belong to the signed log; with no pinned certificate the file's is used and reported`, async (t) => {
    const bytes = format === 'csv' ? csv.filtered : jsonl.filtered;
    const report = await verifyExport(trickle(bytes, 13));
    t.true(report.ok, report.firstBroken?.problem);
    t.is(report.complete, false);
    t.is(report.entries, studyA().length);
    t.is(report.certificate?.pinned, false);
    t.is(report.certificate?.fingerprint, new X509Certificate(fx.signing.certificatePem).fingerprint256);
    t.regex(report.certificate?.subject ?? '', /CN=appliance audit signing/);
  });
}

test('11.10(e) one byte changed in an entry\'s body fails, naming that line and entry', async (t) => {
  const line = lineOf(jsonl.complete, 9);
  const bytes = editLine(jsonl.complete, line, (text) => text.replace('"reason":"reason 9"', '"reason":"reason 8"'));
  t.not(bytes.toString(), jsonl.complete.toString());
  broken(t, await verifyExport(trickle(bytes)), line, 9, /^line \d+, entry 9: content does not match its hash$/);
  // The same in a subset.
  const seq = studyA()[3]!.seq;
  const filteredLine = lineOf(jsonl.filtered, seq);
  const filtered = editLine(jsonl.filtered, filteredLine, (text) => text.replace('"ip":"192.0.2.7"', '"ip":"192.0.2.8"'));
  broken(t, await verifyExport(trickle(filtered)), filteredLine, seq, /content does not match its hash/);
});

test('11.10(e) a removed entry line fails a complete export at the gap, and the count fails a subset', async (t) => {
  const line = lineOf(jsonl.complete, 12);
  const lines = jsonl.complete.toString().split('\n');
  lines.splice(line - 1, 1);
  broken(t, await verifyExport(trickle(Buffer.from(lines.join('\n')))), line, 13, /entries 12 to 12 are missing from a complete export/);

  const sub = jsonl.filtered.toString().split('\n');
  sub.splice(4, 1);
  const endLine = sub.length - 1;
  broken(t, await verifyExport(trickle(Buffer.from(sub.join('\n')))), endLine, undefined, /the end record counts \d+ entries, the file has \d+/);
});

test('11.10(e) two swapped entry lines fail, naming the first one out of order', async (t) => {
  const lines = jsonl.filtered.toString().split('\n');
  [lines[4], lines[5]] = [lines[5]!, lines[4]!];
  const seq = JSON.parse(lines[5]!).seq as number;
  broken(t, await verifyExport(trickle(Buffer.from(lines.join('\n')))), 6, seq, /entries are out of order/);
});

test('11.10(e) a changed proof hash fails, naming the entry', async (t) => {
  const seq = studyA()[2]!.seq;
  const line = lineOf(jsonl.filtered, seq);
  const bytes = editLine(jsonl.filtered, line, (text) => text.replace(/"proof":\["(.)/, (_m, c: string) => `"proof":["${c === '0' ? '1' : '0'}`));
  broken(t, await verifyExport(trickle(bytes)), line, seq, /its inclusion proof does not lead to the signed root/);
});

test('11.10(e) an edited readable CSV cell fails although the json cell is intact', async (t) => {
  const text = csv.complete.toString('utf8');
  const edited = text.replace('"reason 9"', '"reason nine"');
  t.not(edited, text);
  const line = text.slice(0, text.indexOf('"reason 9"')).split('\n').length;
  broken(t, await verifyExport(trickle(Buffer.from(edited, 'utf8'))), line, 9, /the readable cell "reason" does not match the entry's json/);
});

test('11.10(e) an edited CSV json cell fails on its hash, an edited header or checkpoint cell on its row', async (t) => {
  const text = csv.complete.toString('utf8');
  const json = text.replace('""reason"":""reason 9""', '""reason"":""reason 6""').replace('"reason 9"', '"reason 6"');
  const line = text.slice(0, text.indexOf('"reason 9"')).split('\n').length;
  broken(t, await verifyExport(trickle(Buffer.from(json, 'utf8'))), line, 9, /content does not match its hash/);
  const checkpointSeq = text.replace(`"checkpoint","${fx.checkpoint.size}"`, `"checkpoint","${fx.checkpoint.size + 1}"`);
  t.not(checkpointSeq, text);
  broken(t, await verifyExport(trickle(Buffer.from(checkpointSeq, 'utf8'))), 3, undefined, /the cell "seq" does not match the row's json/);
});

test('11.10(e) an edited checkpoint size or root fails: the values must be the signed ones', async (t) => {
  const size = editLine(jsonl.complete, 2, (text) => text.replace(`"size":${fx.checkpoint.size}`, `"size":${fx.checkpoint.size - 1}`));
  broken(t, await verifyExport(trickle(size)), 2, undefined, /fields do not match its signed statement/);
  const root = editLine(jsonl.complete, 2, (text) => text.replaceAll(fx.checkpoint.root, 'f'.repeat(64)));
  broken(t, await verifyExport(trickle(root)), 2, undefined, /signature does not verify/);
});

test('11.10(e) a checkpoint re-signed by another key fails with --cert pinned, even when the file carries the other key\'s certificate', async (t) => {
  const forged = await signWith(fx.other.key, { ...fx.checkpoint });
  const bytes = editLine(editLine(jsonl.complete, 2, (text) => text.replace(fx.checkpoint.signature, forged.signature)),
    1, (text) => text.replace(JSON.stringify(fx.signing.certificatePem), JSON.stringify(fx.other.certificatePem)));
  broken(t, await verifyExport(trickle(bytes), { certificatePem: fx.signing.certificatePem }), 2, undefined, /signature does not verify with the pinned certificate/);
  // Without pinning it verifies with the file's certificate, and the report says so: only the fingerprint tells them apart.
  const unpinned = await verifyExport(trickle(bytes));
  t.true(unpinned.ok);
  t.is(unpinned.certificate?.pinned, false);
  t.is(unpinned.certificate?.fingerprint, new X509Certificate(fx.other.certificatePem).fingerprint256);
});

test('11.10(e) a file cut off before its end record fails, and so does anything after the end record', async (t) => {
  const lines = jsonl.complete.toString().split('\n');
  const cut = lines.slice(0, 20).join('\n') + '\n';
  broken(t, await verifyExport(trickle(Buffer.from(cut))), 21, undefined, /ends before its end record: it was cut off/);
  const extra = Buffer.concat([jsonl.complete, Buffer.from('{"kind":"end","entries":40}\n')]);
  broken(t, await verifyExport(trickle(extra)), lines.length, undefined, /a record after the end record/);
  const extraEntry = Buffer.concat([jsonl.complete, Buffer.from(lines[2]! + '\n')]);
  broken(t, await verifyExport(trickle(extraEntry)), lines.length, 1, /a record after the end record/);
  const csvCut = csv.complete.subarray(0, csv.complete.length - 200);
  t.false((await verifyExport(trickle(csvCut))).ok);
});

test('11.10(e) garbage, an empty file, invalid UTF-8 and a body that is not last are refused, not thrown', async (t) => {
  broken(t, await verifyExport(trickle(Buffer.from('hello\n'))), 1, undefined, /not a Vellum audit export/);
  broken(t, await verifyExport(trickle(Buffer.alloc(0))), 1, undefined, /empty/);
  const line = lineOf(jsonl.complete, 5);
  const bad = Buffer.from(jsonl.complete);
  const at = jsonl.complete.indexOf('reason 5');
  bad[at] = 0xff;
  broken(t, await verifyExport(trickle(bad)), line, undefined, /not valid UTF-8/);
  const moved = editLine(jsonl.complete, line, (text) => text.replace('{"kind":"entry",', '{"kind":"entry","x":1,'));
  broken(t, await verifyExport(trickle(moved)), line, 5, /not laid out as the export format says/);
});

test('a pinned certificate that is not a certificate is a BAD_REQUEST', async (t) => {
  const error = await t.throwsAsync(verifyExport(trickle(jsonl.complete), { certificatePem: 'not a certificate' }));
  t.true(isVellumError(error, 'BAD_REQUEST'));
});
