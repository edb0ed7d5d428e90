// Audit exports (21 CFR 11.10(e), 11.10(b): accurate and complete copies for
// inspection): JSON Lines and CSV from a real LevelDB trail, filters, the
// Auditor's study scope, inclusion proofs, and the exporter refusing to hand
// out anything it cannot prove.

import test from 'ava';
import { canonicalJson, chainHash, entryBody, type AuditEntry } from '../../src/audit/index.ts';
import { exportTrail, type AuditExportSource, type ExportFilter } from '../../src/audit/export.ts';
import { leafHash, MerkleFrontier, rootFromInclusionProof } from '../../src/audit/merkle.ts';
import { isVellumError } from '../../src/kernel/index.ts';
import {
  AWKWARD_REASON, EXPORTED_AT, exportBytes, FORMULA_REASONS, openFixture, parseCsv, signWith, STUDY_A, STUDY_B, type Fixture,
} from './export-fixture.ts';

let fx: Fixture;
test.before(async () => {
  fx = await openFixture();
});
test.after.always(async () => fx?.close());

const CSV_HEADER = 'kind,seq,time,user_id,user_login,user_name,user_dn,roles,action,outcome,study,path,node_id,version_id,old_value,new_value,reason,ip,client,protocol,session,detail,hash,prev_hash,proof,json'.split(',');

interface Lines {
  header: Record<string, unknown>;
  checkpoint: Record<string, unknown>;
  entries: { record: Record<string, unknown>; text: string }[];
  end: Record<string, unknown>;
}

function jsonLines(bytes: Buffer): Lines {
  const text = bytes.toString('utf8');
  if (!text.endsWith('\n')) throw new Error('JSON Lines end with a line end');
  const lines = text.slice(0, -1).split('\n');
  const parsed = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  return {
    header: parsed[0]!, checkpoint: parsed[1]!, end: parsed.at(-1)!,
    entries: parsed.slice(2, -1).map((record, i) => ({ record, text: lines[i + 2]! })),
  };
}

/** The body text of an entry line: what follows `"entry":` up to the closing brace. */
function bodyTextOf(line: string): string {
  return line.slice(line.indexOf('"entry":') + '"entry":'.length, -1);
}

function provesInclusion(record: Record<string, unknown>, size: number, root: string): boolean {
  const proof = (record.proof as string[]).map((h) => Buffer.from(h, 'hex'));
  return rootFromInclusionProof((record.seq as number) - 1, size, leafHash(record.hash as string), proof)?.toString('hex') === root;
}

test('11.10(e) a complete JSON Lines export carries the certificate, the signed checkpoint, every entry byte for byte with its hashes and no proofs, and the count', async (t) => {
  const lines = jsonLines(await exportBytes(fx.source, { format: 'jsonl' }));
  t.deepEqual(Object.keys(lines.header), ['kind', 'format', 'exportedAt', 'logId', 'complete', 'filter', 'certificate']);
  t.like(lines.header, { kind: 'vellum-audit-export', format: 1, exportedAt: EXPORTED_AT, logId: fx.logId, complete: true, filter: {}, certificate: fx.signing.certificatePem });
  t.deepEqual(lines.checkpoint, { kind: 'checkpoint', ...fx.checkpoint });
  t.deepEqual(Object.keys(lines.checkpoint), ['kind', 'logId', 'size', 'time', 'root', 'head', 'statement', 'signature']);
  t.deepEqual(lines.entries.map((e) => e.record.seq), fx.entries.map((e) => e.seq));
  for (const [i, { record, text }] of lines.entries.entries()) {
    const stored = fx.entries[i]!;
    t.deepEqual(Object.keys(record), ['kind', 'seq', 'hash', 'prevHash', 'entry']);
    t.is(bodyTextOf(text), canonicalJson(entryBody(stored)), `entry ${stored.seq} body is the canonical body`);
    t.is(chainHash(record.prevHash as string, bodyTextOf(text)), stored.hash);
    t.is(record.hash, stored.hash);
    t.is(record.prevHash, stored.prevHash);
  }
  t.deepEqual(lines.end, { kind: 'end', entries: fx.entries.length });
});

test('11.10(e) a filtered export gives each entry an inclusion proof that leads to the signed root, and says it is not complete', async (t) => {
  const lines = jsonLines(await exportBytes(fx.source, { format: 'jsonl', filter: { study: STUDY_A } }));
  t.is(lines.header.complete, false);
  t.deepEqual(lines.header.filter, { study: STUDY_A });
  const expected = fx.entries.filter((e) => e.object.study === STUDY_A).map((e) => e.seq);
  t.true(expected.length > 5);
  t.deepEqual(lines.entries.map((e) => e.record.seq), expected);
  for (const { record } of lines.entries) {
    t.deepEqual(Object.keys(record), ['kind', 'seq', 'hash', 'prevHash', 'proof', 'entry']);
    t.true(provesInclusion(record, fx.checkpoint.size, fx.checkpoint.root), `entry ${String(record.seq)}`);
  }
  t.deepEqual(lines.end, { kind: 'end', entries: expected.length });
});

// Each filter, with the entries it must select written out independently of the exporter.
const FILTERS: [string, ExportFilter, (e: AuditEntry) => boolean][] = [
  ['study', { study: STUDY_B }, (e) => e.object.study === STUDY_B],
  ['from (inclusive)', { from: '2025-01-02T03:04:05.010Z' }, (e) => e.seq >= 11],
  ['to (exclusive)', { to: '2025-01-02T03:04:05.010Z' }, (e) => e.seq <= 10],
  ['from and to, in another zone', { from: '2025-01-02T05:04:05.005+02:00', to: '2025-01-02T03:04:05.020Z' }, (e) => e.seq >= 6 && e.seq <= 20],
  ['user by immutable id', { user: '3f1c0a52-0002-4e6a-9d1e-bbbbbbbbbbbb' }, (e) => e.actor?.login === 'audrey'],
  ['user by login', { user: 'sam' }, (e) => e.actor?.id === '3f1c0a52-0001-4e6a-9d1e-aaaaaaaaaaaa'],
  ['action exactly', { action: 'file.read' }, (e) => e.action === 'file.read'],
  ['action prefix', { action: 'file.' }, (e) => e.action === 'file.read' || e.action === 'file.write'],
  ['action without a dot is exact, not a prefix', { action: 'file' }, () => false],
  ['outcome', { outcome: 'denied' }, (e) => e.outcome === 'denied'],
  ['several at once', { study: STUDY_A, action: 'file.', outcome: 'success' }, (e) => e.object.study === STUDY_A && e.action.startsWith('file.') && e.outcome === 'success'],
];

for (const [name, filter, selects] of FILTERS) {
  test(`11.10(e) filter by ${name}: exactly the matching entries, in seq order, each proven`, async (t) => {
    const lines = jsonLines(await exportBytes(fx.source, { format: 'jsonl', filter }));
    const expected = fx.entries.filter(selects).map((e) => e.seq);
    t.deepEqual(lines.entries.map((e) => e.record.seq), expected);
    t.is(lines.end.entries, expected.length);
    t.is(lines.header.complete, false);
    for (const { record } of lines.entries) t.true(provesInclusion(record, fx.checkpoint.size, fx.checkpoint.root));
  });
}

test('11.10(d) an Auditor bound to study A exports study A only: no entry of study B and none without a study', async (t) => {
  const lines = jsonLines(await exportBytes(fx.source, { format: 'jsonl', filter: { studies: [STUDY_A] } }));
  t.deepEqual(lines.header.filter, { studies: [STUDY_A] });
  const studies = lines.entries.map((e) => (JSON.parse(bodyTextOf(e.text)) as AuditEntry).object.study);
  t.true(studies.length > 0);
  t.true(studies.every((s) => s === STUDY_A), studies.join());
  t.true(fx.entries.some((e) => e.object.study === undefined), 'the trail has study-less entries to leave out');
  // Asking for study B inside an Auditor's scope of A gives nothing.
  const crossed = jsonLines(await exportBytes(fx.source, { format: 'jsonl', filter: { studies: [STUDY_A], study: STUDY_B } }));
  t.deepEqual(crossed.entries, []);
  t.deepEqual(crossed.end, { kind: 'end', entries: 0 });
});

test('11.10(b) CSV: BOM, CRLF, every field quoted, the export\'s columns, the same records as JSON Lines; an independent RFC 4180 reader reads it', async (t) => {
  const bytes = await exportBytes(fx.source, { format: 'csv', filter: { study: STUDY_A } });
  t.deepEqual([...bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf]);
  const text = bytes.subarray(3).toString('utf8');
  const rows = parseCsv(text);
  t.deepEqual(rows[0], CSV_HEADER);
  // Written again with every field quoted and CRLF after each row, the reader's rows give back the file exactly.
  t.is(rows.map((row) => `${row.map((c) => `"${c.replaceAll('"', '""')}"`).join(',')}\r\n`).join(''), text);
  t.true(rows.every((row) => row.length === CSV_HEADER.length));

  const lines = jsonLines(await exportBytes(fx.source, { format: 'jsonl', filter: { study: STUDY_A } }));
  const col = (name: string) => CSV_HEADER.indexOf(name);
  t.deepEqual(rows.slice(1).map((r) => r[col('kind')]), ['vellum-audit-export', 'checkpoint', ...lines.entries.map(() => 'entry'), 'end']);
  t.deepEqual(JSON.parse(rows[1]![col('json')]!), lines.header);
  t.deepEqual(JSON.parse(rows[2]![col('json')]!), lines.checkpoint);
  t.deepEqual([rows[2]![col('seq')], rows[2]![col('time')], rows[2]![col('hash')]], [String(fx.checkpoint.size), fx.checkpoint.time, fx.checkpoint.head]);
  t.deepEqual(JSON.parse(rows.at(-1)![col('json')]!), lines.end);
  for (const [i, row] of rows.slice(3, -1).entries()) {
    const { record, text: line } = lines.entries[i]!;
    t.is(row[col('json')], bodyTextOf(line), 'json is the body exactly');
    t.is(row[col('hash')], record.hash as string);
    t.is(row[col('prev_hash')], record.prevHash as string);
    t.is(row[col('proof')], (record.proof as string[]).join(' '));
    const body = JSON.parse(row[col('json')]!) as AuditEntry;
    t.is(row[col('seq')], String(body.seq));
    t.is(row[col('user_login')], body.actor?.login ?? '');
    t.is(row[col('study')], STUDY_A);
    t.is(row[col('roles')], body.roles.join('; '));
  }
});

test('11.10(b) CSV readable cells: a value with quotes, commas, line ends and non-ASCII round-trips; formula-like values get a leading apostrophe; json is never changed', async (t) => {
  const rows = parseCsv((await exportBytes(fx.source, { format: 'csv' })).subarray(3).toString('utf8'));
  const col = (name: string) => CSV_HEADER.indexOf(name);
  const bySeq = new Map(rows.filter((r) => r[0] === 'entry').map((r) => [Number(r[col('seq')]), r]));
  t.is(bySeq.size, fx.entries.length);
  t.is(bySeq.get(2)![col('reason')], AWKWARD_REASON);
  t.is(bySeq.get(3)![col('old_value')], 'old "quoted", text', 'a string value as it is');
  t.is(bySeq.get(3)![col('new_value')], canonicalJson(fx.entries[2]!.newValue), 'anything else as canonical JSON');
  t.is(bySeq.get(1)![col('old_value')], '', 'null as empty');
  FORMULA_REASONS.forEach((reason, i) => {
    const row = bySeq.get(12 + i)!;
    t.is(row[col('reason')], `'${reason}`, `reason ${JSON.stringify(reason)}`);
    t.is((JSON.parse(row[col('json')]!) as AuditEntry).reason, reason, 'the json keeps the value as recorded');
  });
  const formulaStart = /^[=+\-@\t\r]/;
  for (const row of rows.slice(1)) {
    row.slice(0, -1).forEach((cell, i) => t.false(formulaStart.test(cell), `column ${CSV_HEADER[i]} of ${row[1]}`));
    t.true(row.at(-1)!.startsWith('{'));
  }
  t.is(bySeq.get(7)![col('user_id')], '', 'no actor: empty identity cells');
  t.is(bySeq.get(1)![col('proof')], '', 'a complete export has no proofs');
});

test('11.10(e) the export is cut at the checkpoint: entries recorded after it are not exported', async (t) => {
  const covered = fx.entries.slice(0, 30);
  const frontier = MerkleFrontier.empty();
  for (const entry of covered) frontier.append(leafHash(entry.hash));
  const checkpoint = await signWith(fx.signing.key, { logId: fx.logId, size: 30, time: '2025-01-02T03:04:06.000Z', root: frontier.root().toString('hex'), head: covered.at(-1)!.hash });
  const source: AuditExportSource = { ...fx.source, checkpoint: async () => checkpoint };
  const complete = jsonLines(await exportBytes(source, { format: 'jsonl' }));
  t.deepEqual(complete.entries.map((e) => e.record.seq), covered.map((e) => e.seq));
  const filtered = jsonLines(await exportBytes(source, { format: 'jsonl', filter: { action: 'file.' } }));
  t.true(filtered.entries.every(({ record }) => (record.seq as number) <= 30 && provesInclusion(record, 30, checkpoint.root)));
});

async function drain(source: AuditExportSource, filter?: ExportFilter): Promise<{ text: string; error: unknown }> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of exportTrail(source, { format: 'jsonl', ...(filter ? { filter } : {}) })) chunks.push(chunk);
    return { text: Buffer.concat(chunks).toString('utf8'), error: null };
  } catch (error) {
    return { text: Buffer.concat(chunks).toString('utf8'), error };
  }
}

test('11.10(e) a subtree source that returns a wrong hash stops the export with INTEGRITY_FAILURE, and no proof that fails is written', async (t) => {
  const wrong = Buffer.alloc(32, 7);
  const broken: AuditExportSource = {
    ...fx.source,
    subtreeHash: async (level, index) => (level === 1 && index === 15 ? wrong : fx.source.subtreeHash(level, index)),
  };
  const { text, error } = await drain(broken, { action: 'file.' });
  t.true(isVellumError(error, 'INTEGRITY_FAILURE'), String(error));
  t.regex((error as Error).message, /inclusion proof of entry \d+ does not lead to the checkpoint's root/);
  t.false(text.includes('"kind":"end"'));
  for (const line of text.split('\n').filter((l) => l.startsWith('{"kind":"entry"'))) {
    t.true(provesInclusion(JSON.parse(line) as Record<string, unknown>, fx.checkpoint.size, fx.checkpoint.root));
  }
});

test('11.10(e) a stored entry that no longer matches its hash stops a complete export with INTEGRITY_FAILURE naming it, before the end record', async (t) => {
  const edited: AuditExportSource = {
    ...fx.source,
    async *entries(fromSeq) {
      for await (const entry of fx.source.entries(fromSeq)) yield entry.seq === 9 ? { ...entry, reason: 'edited afterwards' } : entry;
    },
  };
  const { text, error } = await drain(edited);
  t.true(isVellumError(error, 'INTEGRITY_FAILURE'));
  t.regex((error as Error).message, /entry 9: content does not match its hash/);
  t.false(text.includes('"kind":"end"'));
});

test('11.10(e) a checkpoint signed by another key, or for another log, is refused before anything is written', async (t) => {
  const forged = await signWith(fx.other.key, { ...fx.checkpoint });
  const results = [
    await drain({ ...fx.source, checkpoint: async () => forged }),
    await drain({ ...fx.source, logId: 'f'.repeat(32) }),
  ];
  for (const { text, error } of results) {
    t.true(isVellumError(error, 'INTEGRITY_FAILURE'), String(error));
    t.is(text, '');
  }
});

test('a filter time that is not a time is a BAD_REQUEST', async (t) => {
  const { error } = await drain(fx.source, { from: 'yesterday' });
  t.true(isVellumError(error, 'BAD_REQUEST'));
});
