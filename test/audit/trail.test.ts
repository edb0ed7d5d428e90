// The audit trail (DESIGN invariant 6, 21 CFR 11.10(e)): append-only, hash
// chained, group-committed, written in the same synced batch as the change it
// describes, and verifiable. Real LevelDB on disk in a temporary directory;
// tampering is done the way an intruder with file access would do it, by
// opening the LevelDB directly with `level`.

import test from 'ava';
import { Level } from 'level';
import { canonicalJson, entryBody, entryHash, GENESIS_HASH, inCanonicalOrder, openAuditTrail, type AuditEntry, type AuditEvent, type AuditTrail } from '../../src/audit/index.ts';
import type { Database, WriteOp } from '../../src/db/index.ts';
import { tempStores } from './support.ts';
import { isVellumError, type Clock } from '../../src/kernel/index.ts';

const { newLocation, openDb, cleanup } = tempStores('vellum-audit-');
test.after.always(cleanup);

/** A clock that ticks one millisecond per reading, so entries have distinct, known times. */
function tickingClock(): Clock {
  let ms = Date.UTC(2025, 0, 2, 3, 4, 5, 0);
  return { now: () => new Date(ms++) };
}

const actor = { id: 'u-1', login: 'alice', dn: 'uid=alice,ou=people,dc=example,dc=org', displayName: 'Alice Example' };

function event(n: number): AuditEvent {
  return {
    action: 'file.write', outcome: 'success', actor, roles: ['Sponsor'], ip: '192.0.2.7', protocol: 'webdav',
    object: { study: 'STUDY-1', path: `/STUDY-1/file-${n}.pdf`, nodeId: `n-${n}`, versionId: `v-${n}` },
    oldValue: null, newValue: { size: n, sha256: 'ab'.repeat(32) }, reason: 'upload',
  };
}

async function recordMany(trail: AuditTrail, count: number): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for (let i = 1; i <= count; i++) out.push(await trail.record(event(i)));
  return out;
}

async function collect(iterable: AsyncIterable<AuditEntry>): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for await (const entry of iterable) out.push(entry);
  return out;
}

/** A fresh trail with `count` entries, closed again so the LevelDB can be opened directly. */
async function closedTrailWith(count: number): Promise<{ location: string; entries: AuditEntry[] }> {
  const location = await newLocation();
  const db = await openDb(location);
  const trail = await openAuditTrail(db, { clock: tickingClock() });
  const entries = await recordMany(trail, count);
  await db.close();
  return { location, entries };
}

/** Opens the LevelDB behind the application's back: the audit section is sublevel 'audit', JSON values, 16-digit keys. */
interface RawAudit {
  get(key: string): Promise<unknown>;
  put(key: string, value: unknown): Promise<void>;
  del(key: string): Promise<void>;
  batch(ops: { type: 'put'; key: string; value: unknown }[]): Promise<void>;
}

async function tamper(location: string, change: (audit: RawAudit) => Promise<void>): Promise<void> {
  const raw = new Level<string, unknown>(location, { valueEncoding: 'json' });
  await raw.open();
  try {
    await change(raw.sublevel<string, unknown>('audit', { valueEncoding: 'json' }));
  } finally {
    await raw.close();
  }
}

const key = (seq: number) => seq.toString().padStart(16, '0');

async function verifyAt(location: string) {
  const db = await openDb(location);
  try {
    return await (await openAuditTrail(db)).verify();
  } finally {
    await db.close();
  }
}

test('11.10(e) appends get seq 1..n, each prevHash is the previous hash, and each hash covers the entry', async (t) => {
  const db = await openDb(await newLocation());
  const trail = await openAuditTrail(db, { clock: tickingClock() });
  t.deepEqual(trail.head(), { seq: 0, hash: GENESIS_HASH });
  const written = await recordMany(trail, 10);
  t.deepEqual(written.map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  t.is(written[0]!.prevHash, GENESIS_HASH);
  for (let i = 1; i < written.length; i++) t.is(written[i]!.prevHash, written[i - 1]!.hash, `entry ${i + 1}`);
  for (const entry of written) {
    t.regex(entry.hash, /^[0-9a-f]{64}$/);
    t.is(entry.hash, entryHash(entry));
  }
  t.is(new Set(written.map((e) => e.hash)).size, 10);
  t.deepEqual(trail.head(), { seq: 10, hash: written[9]!.hash });

  // What was stored is what was returned, with every field auditors expect.
  const stored = await collect(trail.entries());
  t.deepEqual(stored, written);
  const first = stored[0]!;
  t.is(first.time, '2025-01-02T03:04:05.000Z', 'UTC ISO-8601 time from the server clock');
  t.deepEqual(first.actor, actor);
  t.deepEqual(first.object, { study: 'STUDY-1', path: '/STUDY-1/file-1.pdf', nodeId: 'n-1', versionId: 'v-1' });
  t.is(first.ip, '192.0.2.7');
  t.is(first.reason, 'upload');
  t.deepEqual(first.newValue, { size: 1, sha256: 'ab'.repeat(32) });
  t.deepEqual((await collect(trail.entries(8))).map((e) => e.seq), [8, 9, 10]);
  t.deepEqual(await trail.verify(), { ok: true, checked: 10, checkpoints: 0 });
});

test('11.10(e) 500 concurrent record() calls get distinct consecutive seqs, are group-committed, and the chain verifies', async (t) => {
  const db = await openDb(await newLocation());
  let batches = 0;
  const counting: Database = { ...db, section: (name) => db.section(name), write: (ops) => (batches++, db.write(ops)) };
  const trail = await openAuditTrail(counting);
  const entries = await Promise.all(Array.from({ length: 500 }, (_, i) => trail.record(event(i + 1))));
  const seqs = entries.map((e) => e.seq).sort((a, b) => a - b);
  t.deepEqual(seqs, Array.from({ length: 500 }, (_, i) => i + 1));
  // Every caller got back the entry for its own event.
  entries.forEach((entry, i) => t.is(entry.object.nodeId, `n-${i + 1}`));
  t.true(batches < 50, `500 appends took ${batches} synced batches; group commit should need far fewer`);
  t.true(batches >= 2);
  t.deepEqual(await trail.verify(), { ok: true, checked: 500, checkpoints: 0 });
  t.is(trail.head().seq, 500);
  const stored = await collect(trail.entries());
  for (let i = 1; i < stored.length; i++) t.is(stored[i]!.prevHash, stored[i - 1]!.hash);
});

test('DESIGN 2 ops handed to record() are written in the same batch as the entry', async (t) => {
  const db = await openDb(await newLocation());
  const trail = await openAuditTrail(db);
  const nodes = db.section<{ name: string }>('nodes');
  await trail.record(event(1), [nodes.put('n-1', { name: 'protocol.pdf' }), nodes.put('n-2', { name: 'crf.pdf' })]);
  t.deepEqual(await nodes.get('n-1'), { name: 'protocol.pdf' });
  t.deepEqual(await nodes.get('n-2'), { name: 'crf.pdf' });
  await trail.record(event(2), [nodes.del('n-2')]);
  t.is(await nodes.get('n-2'), undefined);
  t.is(trail.head().seq, 2);
});

test('DESIGN 1 when the batch cannot be written, neither the entry nor its ops are stored and the chain does not advance', async (t) => {
  const db = await openDb(await newLocation());
  const trail = await openAuditTrail(db);
  const before = await trail.record(event(1));
  const nodes = db.section<{ name: string }>('nodes');
  // A batch with an op the store refuses: all of it must be refused.
  const bad: WriteOp = { type: 'put', section: 'NOT A SECTION', key: 'x', value: 1 };
  const error = await t.throwsAsync(trail.record(event(2), [nodes.put('n-2', { name: 'half.pdf' }), bad]));
  t.true(isVellumError(error, 'STORE_UNAVAILABLE'), String(error));
  t.is(await nodes.get('n-2'), undefined, 'the change described by the failed entry was not applied');
  t.deepEqual(trail.head(), { seq: 1, hash: before.hash });
  const next = await trail.record(event(3));
  t.is(next.seq, 2, 'the failed entry used up no seq');
  t.is(next.prevHash, before.hash);
  t.deepEqual(await trail.verify(), { ok: true, checked: 2, checkpoints: 0 });
});

test('DESIGN 1 a closed store makes record() fail with STORE_UNAVAILABLE, and nothing half-written is found after reopening', async (t) => {
  const location = await newLocation();
  const db = await openDb(location);
  const trail = await openAuditTrail(db);
  const written = await recordMany(trail, 3);
  await db.close();
  const error = await t.throwsAsync(trail.record(event(4)));
  t.true(isVellumError(error, 'STORE_UNAVAILABLE'), String(error));
  const reopened = await openAuditTrail(await openDb(location));
  t.deepEqual(reopened.head(), { seq: 3, hash: written[2]!.hash });
  t.deepEqual(await reopened.verify(), { ok: true, checked: 3, checkpoints: 0 });
});

test('11.10(e) an event that cannot be encoded fails its own caller only; concurrent and later records still succeed', async (t) => {
  const db = await openDb(await newLocation());
  const trail = await openAuditTrail(db);
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  const results = await Promise.allSettled([
    trail.record(event(1)),
    trail.record({ action: 'bad', outcome: 'success', newValue: { n: 10n } }),
    trail.record({ action: 'bad', outcome: 'success', oldValue: circular }),
    trail.record(event(2)),
  ]);
  t.is(results[0]!.status, 'fulfilled');
  t.is(results[1]!.status, 'rejected');
  t.is(results[2]!.status, 'rejected');
  t.is(results[3]!.status, 'fulfilled');
  const later = await trail.record(event(3));
  t.is(later.seq, 3);
  t.deepEqual(await trail.verify(), { ok: true, checked: 3, checkpoints: 0 });
});

test('11.10(e) values that are not plain JSON (a Date, a Buffer) are hashed as stored, so the chain still verifies', async (t) => {
  const location = await newLocation();
  const db = await openDb(location);
  const trail = await openAuditTrail(db);
  const entry = await trail.record({ action: 'retention.set', outcome: 'success', oldValue: { until: new Date(Date.UTC(2030, 0, 1)) }, newValue: { tag: Buffer.from('hi') } });
  t.deepEqual(entry.oldValue, { until: '2030-01-01T00:00:00.000Z' });
  await trail.record(event(2));
  t.deepEqual(await trail.verify(), { ok: true, checked: 2, checkpoints: 0 });
  await db.close();
  t.deepEqual(await verifyAt(location), { ok: true, checked: 2, checkpoints: 0 });
});

test('11.10(e) reopening the database keeps the head and continues the chain', async (t) => {
  const location = await newLocation();
  const db = await openDb(location);
  const first = await recordMany(await openAuditTrail(db), 5);
  await db.close();

  const db2 = await openDb(location);
  const trail = await openAuditTrail(db2);
  t.deepEqual(trail.head(), { seq: 5, hash: first[4]!.hash });
  const next = await trail.record(event(6));
  t.is(next.seq, 6);
  t.is(next.prevHash, first[4]!.hash);
  t.deepEqual(await trail.verify(), { ok: true, checked: 6, checkpoints: 0 });
  t.deepEqual((await collect(trail.entries())).slice(0, 5), first);
});

test('11.10(e) verify() finds an entry edited out of band and reports its seq', async (t) => {
  const { location } = await closedTrailWith(6);
  await tamper(location, async (audit) => {
    const entry = (await audit.get(key(4))) as AuditEntry;
    await audit.put(key(4), { ...entry, actor: { ...entry.actor!, login: 'mallory' } });
  });
  const report = await verifyAt(location);
  t.false(report.ok);
  t.is(report.checked, 3);
  t.is(report.firstBroken?.seq, 4);
  t.regex(report.firstBroken?.problem ?? '', /hash/);
});

/** A trail of 6 entries in which entry `seq` was edited out of band and given a matching hash. */
async function editedWithRecomputedHash(seq: number): Promise<string> {
  const { location } = await closedTrailWith(6);
  await tamper(location, async (audit) => {
    const entry = (await audit.get(key(seq))) as AuditEntry;
    const edited = { ...entry, outcome: 'denied' as const };
    await audit.put(key(seq), { ...edited, hash: entryHash(edited) });
  });
  return location;
}

test('11.10(e) verify() finds an edited entry whose hash was recomputed: at the next entry\'s broken link, or earlier at the tree node stored over it', async (t) => {
  // Entry 3 edited: the tree node over entries 3-4 is only complete at entry 4, whose link breaks first.
  const linkReport = await verifyAt(await editedWithRecomputedHash(3));
  t.false(linkReport.ok);
  t.is(linkReport.checked, 3);
  t.is(linkReport.firstBroken?.seq, 4);
  t.regex(linkReport.firstBroken?.problem ?? '', /entry 4: does not link/);

  // Entry 2 edited: the node over entries 1-2, stored when they were written, no longer matches.
  const nodeReport = await verifyAt(await editedWithRecomputedHash(2));
  t.false(nodeReport.ok);
  t.is(nodeReport.checked, 0, 'either of entries 1-2 may be the changed one');
  t.is(nodeReport.firstBroken?.seq, 1);
  t.regex(nodeReport.firstBroken?.problem ?? '', /entries 1-2 do not match the tree node/);
});

test('11.10(e) verify() finds a deleted entry and reports its seq', async (t) => {
  const { location } = await closedTrailWith(6);
  await tamper(location, (audit) => audit.del(key(3)));
  const report = await verifyAt(location);
  t.false(report.ok);
  t.is(report.checked, 2);
  t.is(report.firstBroken?.seq, 3);
  t.regex(report.firstBroken?.problem ?? '', /missing/);
});

test('11.10(e) verify() finds two entries swapped and reports the first of them', async (t) => {
  const { location } = await closedTrailWith(6);
  await tamper(location, async (audit) => {
    const four = await audit.get(key(4));
    const five = await audit.get(key(5));
    await audit.batch([{ type: 'put', key: key(4), value: five }, { type: 'put', key: key(5), value: four }]);
  });
  const report = await verifyAt(location);
  t.false(report.ok);
  t.is(report.checked, 3);
  t.is(report.firstBroken?.seq, 4);
});

test('11.10(e) verify() finds the first entry edited (the genesis link)', async (t) => {
  const { location } = await closedTrailWith(3);
  await tamper(location, async (audit) => {
    const entry = (await audit.get(key(1))) as AuditEntry;
    const edited = { ...entry, prevHash: 'f'.repeat(64) };
    await audit.put(key(1), { ...edited, hash: entryHash(edited) });
  });
  const report = await verifyAt(location);
  t.false(report.ok);
  t.is(report.checked, 0);
  t.is(report.firstBroken?.seq, 1);
});

test('an untouched trail verifies after the same round trip through the raw LevelDB (the tamper helper itself changes nothing)', async (t) => {
  const { location } = await closedTrailWith(4);
  await tamper(location, async (audit) => {
    const entry = await audit.get(key(2));
    await audit.put(key(2), entry);
  });
  t.deepEqual(await verifyAt(location), { ok: true, checked: 4, checkpoints: 0 });
});

test('the canonical JSON an entry is hashed over: keys sorted at every level by UTF-16 code units, undefined members left out, no whitespace', (t) => {
  t.is(canonicalJson({ b: 1, a: [{ d: null, c: 'x' }, [2, undefined]], u: undefined, Z: 'é"\n' }), '{"Z":"é\\"\\n","a":[{"c":"x","d":null},[2,null]],"b":1}');
  t.is(canonicalJson({ '\u{1F600}': 1, '\uFFFF': 2 }), '{"\u{1F600}":1,"\uFFFF":2}', 'a surrogate pair sorts before U+FFFF');
  t.is(canonicalJson({}), '{}');
  t.is(canonicalJson([]), '[]');
  t.is(canonicalJson(undefined), 'null');
});

test('11.10(e) entries are stored with their keys in canonical order, so their canonical JSON is JSON.stringify\'s (the fast path)', async (t) => {
  const db = await openDb(await newLocation());
  const trail = await openAuditTrail(db);
  const written = await trail.record({ ...event(1), object: { versionId: 'v', study: 'S', path: '/S/x', nodeId: 'n' }, newValue: { z: 1, a: { y: [{ b: 2, a: 1 }], x: null } } });
  const [stored] = await collect(trail.entries());
  t.true(inCanonicalOrder(entryBody(stored!)));
  t.is(JSON.stringify(entryBody(stored!)), canonicalJson(entryBody(stored!)));
  t.deepEqual(stored, written);
  // Anything else still gets sorted: the fast path is only taken when it gives the same text.
  t.false(inCanonicalOrder({ b: 1, a: 2 }));
  t.false(inCanonicalOrder({ a: new Date(0) }));
  t.false(inCanonicalOrder({ 10: 1, 9: 2 }), 'integer-like keys come first in property order, but sort as strings');
  t.is(canonicalJson({ 10: 1, 9: 2 }), '{"10":1,"9":2}');
  t.is(canonicalJson({ a: new Date(0), b: [1, undefined] }), '{"a":{},"b":[1,null]}');
  t.is(canonicalJson({ a: 1, b: [{ c: undefined, d: 'x' }] }), '{"a":1,"b":[{"d":"x"}]}');
});
