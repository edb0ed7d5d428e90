// Crash safety (DESIGN.md invariant 2): the appliance runs as a child process
// over a real slapd, a SoftHSM2 token and LevelDB on disk; many concurrent PUTs
// run over loopback HTTP as sam (Sponsor of DEMO-001) and the process is killed
// with SIGKILL while uploads are certainly in flight. After a restart on the
// same data directory:
//
//   - every acknowledged PUT (a 2xx was received) reads back with exactly the
//     SHA-256 of the body that was sent, and is exactly one version of its file;
//   - no half version is visible: a file whose PUT was never acknowledged is
//     either absent or holds exactly one of the bodies sent to it in full (a
//     commit may land just before the kill, before the response went out); a
//     file that only ever had uploads cut off mid-body is absent;
//   - versions are numbered 1..n without gaps, overwrites kept every
//     acknowledged version, and a chain of overwrites, each sent after the
//     previous one was acknowledged, got increasing version numbers;
//   - the audit chain verifies, and every version has exactly one
//     file.create/file.update entry naming it with its SHA-256 (and no entry
//     names a version that does not exist);
//   - the start-up collection removed what the crash left half-written (the
//     cut uploads' temporary files, blobs renamed into place whose commit never
//     happened) and audited it as storage.orphans.collect: nothing is left in
//     tmp/, and every file under blobs/ is the blob of some version.
//
// Each kill point is a test of its own; they run in order on one data
// directory, so later ones restart a store that has already crashed before.
//
// How the kill is done: at the chosen moment the process is frozen (SIGSTOP),
// the responses it had already sent are read (each 2xx among them counts as an
// acknowledgement: a dying process's connections may be reset, dropping
// responses already on the wire), then it gets the SIGKILL. What is on disk is
// what was there at the freeze.
//
// How this test fails when the server is wrong:
//   - Acknowledging before the commit (responding before the blob is renamed
//     into place or before the metadata + audit batch is written): an
//     acknowledged write that had not reached the store at the freeze is
//     missing after the restart: its GET is 404 or returns another body, and
//     "exactly one version holds this acknowledged body" fails. It is a race
//     (the window is a commit's write, well under a millisecond here), so most
//     kill points wait for an acknowledgement that follows another closely,
//     which is when commits are queueing. With the mutation "the vault does not
//     await the commit's batch" this file failed in each of 10 runs (1 to 6 of
//     its 9 kill points each); a single kill point catches it about a quarter
//     of the time.
//   - Exposing a partial version (metadata committed before the whole body was
//     stored, or a truncated body accepted as complete): the slow uploads are
//     always cut mid-body (they hold back their last chunk until the kill), so
//     such a version makes slow-a.bin/slow-b.bin visible (expected 404), or
//     shows a SHA-256 that matches no complete body, or its blob fails to
//     decrypt on GET. With the mutation "record the new file before storing
//     its body" every kill point failed.
//   - Losing or forking the audit chain, or committing a version without its
//     audit entry (or the other way round): verify() or the version <-> entry
//     matching fails.
//   What a SIGKILL cannot show is a missing fsync: the kernel keeps the page
//   cache of a killed process and writes it out later, so data that was only
//   write()n survives a SIGKILL. Only losing power (or a VM / dm-flakey style
//   harness) tells fsynced from unsynced; this test proves the ordering and
//   atomicity of the commit, not its durability against power loss.
//
// No timing assertions: the pacing only makes sure uploads are in flight.

import test, { type ExecutionContext } from 'ava';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { request, type ClientRequest } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { openAuditTrail, type AuditEntry } from '../../src/audit/index.ts';
import { openDatabase } from '../../src/db/index.ts';
import type { NodeRecord, StudyRecord, VersionRecord } from '../../src/vault/index.ts';
import { PEOPLE, startTestEnv, type TestEnv } from '../env/index.ts';
import { killApplianceProcesses, startApplianceProcess, STUDY, type ApplianceProcess } from '../support/appliance-process.ts';

const KIB = 1024;
const MIB = 1024 * KIB;
const AUTHORIZATION = `Basic ${Buffer.from(`${PEOPLE.sam.login}:${PEOPLE.sam.password}`, 'utf8').toString('base64')}`;

/** Background files written once each: empty, tiny, around the 64 KiB segment size, ~100 KiB, a few hundred KiB, 1 MiB. */
const SINGLE_SIZES = [0, 1, 4 * KIB, 64 * KIB - 1, 64 * KIB, 64 * KIB + 1, 100 * KIB, 250_000, MIB];
const SINGLES = 27;
/** One path overwritten concurrently (background and bursts). */
const SHARED = 'shared.bin';
const SHARED_SIZES = [0, 10, 5000, 64 * KIB, 100 * KIB, 100 * KIB + 1, 200 * KIB, MIB];
/** One path overwritten in sequence: each PUT is sent after the previous one was acknowledged. */
const CHAIN = 'chain.txt';
const CHAIN_MAX = 60;
/** Uploads streamed slowly that hold back their last chunk, so they are certainly mid-body at the kill. */
const SLOW = [
  { name: 'slow-a.bin', size: 4 * MIB, chunked: false },
  { name: 'slow-b.bin', size: 3 * MIB, chunked: true },
  { name: SHARED, size: 4 * MIB, chunked: false },
] as const;
const SLOW_CHUNK = 32 * KIB;
/** How many background uploads run at a time. */
const POOL = 6;
/**
 * Bursts of small PUTs sent at the same instant, one burst after the other:
 * their commits queue up behind each other, so while one of them is being
 * acknowledged others are being committed. The kills land in bursts.
 */
const BURST_SIZES = [0, 1, 100, 1000, 4 * KIB, 10_000, 30_000, 64 * KIB + 1, 2, 500];
const BURSTS = 10;

/**
 * Where the appliance is killed, one test each: at the `ack`-th
 * acknowledgement of burst `burst` (both from 1); with `seek`, from there on
 * at the first acknowledgement that comes within CLOSE_ACKS_MS of the one
 * before (commits coming out back to back: others are queued behind them), or
 * at the latest MAX_ACKS_PAST_POINT acknowledgements later.
 */
const KILL_POINTS = [
  { burst: 1, ack: 1, seek: false },
  { burst: 1, ack: 2, seek: true },
  { burst: 2, ack: 5, seek: true },
  { burst: 3, ack: 4, seek: false },
  { burst: 3, ack: 1, seek: true },
  { burst: 4, ack: 6, seek: true },
  { burst: 5, ack: 1, seek: true },
  { burst: 6, ack: 3, seek: true },
  { burst: 7, ack: 2, seek: true },
] as const;
const CLOSE_ACKS_MS = 0.5;
const MAX_ACKS_PAST_POINT = 20;
const RAN_OUT = 'the uploads ran out';

type Kind = 'single' | 'shared' | 'chain' | 'slow' | 'burst';

interface Upload {
  readonly name: string;
  readonly kind: Kind;
  readonly body: Buffer;
  readonly sha256: string;
  readonly chunked: boolean;
  /** Position in the chain of sequential overwrites. */
  readonly chainIndex: number | null;
  /** Which burst it belongs to (from 1). */
  readonly burst: number | null;
  started: boolean;
  /** Bytes handed to the socket. */
  sent: number;
  /** The whole body was handed to the socket: the server may have received all of it. */
  complete: boolean;
  status: number | null;
  error: string | null;
  errorBeforeKill: boolean;
}

interface AtKill {
  readonly why: string;
  readonly acks: number;
  readonly burstAcks: number;
  /** Fast uploads sent and not answered. */
  readonly inFlight: number;
  readonly slow: readonly { name: string; sent: number; size: number }[];
}

interface Round {
  readonly folder: string;
  readonly killAt: (typeof KILL_POINTS)[number];
  readonly uploads: Upload[];
  /** Acknowledged PUTs (all but the slow ones) and acknowledgements within the kill burst, up to the kill. */
  acks: number;
  burstAcks: number;
  /** performance.now() of the latest response. */
  lastStatusAt: number;
  killed: boolean;
  atKill: AtKill | null;
}

let env: TestEnv | undefined;
let dataDir: string;

test.before(async () => {
  env = await startTestEnv({});
  dataDir = join(env.dir, 'data');
});

test.after.always(async () => {
  await killApplianceProcesses();
  await env?.close();
});

const baseName = (file: string) => file.split('/').pop()!;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const ok = (status: number | null) => status !== null && status >= 200 && status < 300;
const davPath = (folder: string, name?: string) => `/dav/${STUDY}/${folder}/${name === undefined ? '' : encodeURIComponent(name)}`;
const vaultPath = (folder: string, name: string) => `/${STUDY}/${folder}/${name}`;

function newUpload(name: string, kind: Kind, size: number, options: { chunked?: boolean; chainIndex?: number; burst?: number } = {}): Upload {
  const body = randomBytes(size);
  return {
    name, kind, body, sha256: sha256(body), chunked: options.chunked ?? false, chainIndex: options.chainIndex ?? null, burst: options.burst ?? null,
    started: false, sent: 0, complete: false, status: null, error: null, errorBeforeKill: false,
  };
}

/** Resolves when the request is over, however it ended; never rejects (the outcome is on the upload). */
function put(app: ApplianceProcess, round: Round, upload: Upload, onStatus: (upload: Upload) => void, active: Set<ClientRequest>): Promise<void> {
  const base = new URL(app.http);
  const headers: Record<string, string> = { Authorization: AUTHORIZATION, 'Content-Type': 'application/octet-stream' };
  if (upload.chunked) headers['Transfer-Encoding'] = 'chunked';
  else headers['Content-Length'] = String(upload.body.length);
  upload.started = true;
  const req = request({ host: base.hostname, port: base.port, method: 'PUT', path: davPath(round.folder, upload.name), headers, agent: false });
  active.add(req);
  const closed = new Promise<void>((resolve) => req.once('close', () => {
    active.delete(req);
    resolve();
  }));
  req.on('response', (res) => {
    upload.status = res.statusCode ?? 0;
    round.lastStatusAt = performance.now();
    onStatus(upload);
    res.resume();
  });
  req.on('error', (e: NodeJS.ErrnoException) => {
    if (upload.error !== null) return;
    upload.error = e.code ?? e.message;
    upload.errorBeforeKill = !round.killed;
  });
  if (upload.kind === 'slow') {
    void trickle(req, round, upload, closed);
  } else if (upload.chunked) {
    const half = Math.floor(upload.body.length / 2);
    req.write(upload.body.subarray(0, half));
    req.end(upload.body.subarray(half));
    upload.sent = upload.body.length;
    upload.complete = true;
  } else {
    req.end(upload.body);
    upload.sent = upload.body.length;
    upload.complete = true;
  }
  return closed;
}

/** Streams a slow upload, holding back its last chunk until the kill: it is never complete. */
async function trickle(req: ClientRequest, round: Round, upload: Upload, closed: Promise<void>): Promise<void> {
  const holdAt = upload.body.length - SLOW_CHUNK;
  let over = false;
  void closed.then(() => (over = true));
  while (!round.killed && !over && upload.sent < holdAt) {
    const chunk = upload.body.subarray(upload.sent, Math.min(upload.sent + SLOW_CHUNK, holdAt));
    upload.sent += chunk.length;
    if (!req.write(chunk)) await Promise.race([new Promise((resolve) => req.once('drain', resolve)), closed]);
    await sleep(15);
  }
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true, withFileTypes: true }))
      .filter((entry) => entry.isFile())
      .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))
      .sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

interface Got {
  readonly status: number;
  readonly sha256: string | null;
  readonly problem: string | null;
}

/** GET over loopback HTTP: status, and the SHA-256 of a body read completely (as long as Content-Length says). */
function get(app: ApplianceProcess, path: string): Promise<Got> {
  const base = new URL(app.http);
  return new Promise((resolve) => {
    const req = request({ host: base.hostname, port: base.port, method: 'GET', path, headers: { Authorization: AUTHORIZATION }, agent: false }, (res) => {
      const hash = createHash('sha256');
      let length = 0;
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        length += chunk.length;
      });
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        const declared = Number(res.headers['content-length']);
        const problem = status === 200 && (!res.complete || length !== declared) ? `body of ${length} bytes, Content-Length ${declared}` : null;
        resolve({ status, sha256: status === 200 ? hash.digest('hex') : null, problem });
      });
      res.on('error', (e) => resolve({ status: res.statusCode ?? 0, sha256: null, problem: `response failed: ${e.message}` }));
    });
    req.on('error', (e) => resolve({ status: 0, sha256: null, problem: `request failed: ${e.message}` }));
    req.end();
  });
}

/** Names a PROPFIND Depth 1 lists in the round's folder. */
async function listed(app: ApplianceProcess, folder: string): Promise<{ status: number; names: string[] }> {
  const base = new URL(app.http);
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request({ host: base.hostname, port: base.port, method: 'PROPFIND', path: davPath(folder), headers: { Authorization: AUTHORIZATION, Depth: '1' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  const hrefs = [...text.matchAll(/<(?:[\w-]+:)?href>([^<]*)<\/(?:[\w-]+:)?href>/g)].map((m) => decodeURIComponent(m[1]!));
  const prefix = `/dav/${STUDY}/${folder}/`;
  const names = hrefs.filter((href) => href.startsWith(prefix) && href.length > prefix.length).map((href) => href.slice(prefix.length).replace(/\/$/, ''));
  return { status, names: names.sort() };
}

async function mkcol(app: ApplianceProcess, folder: string): Promise<number> {
  const base = new URL(app.http);
  return new Promise((resolve, reject) => {
    const req = request({ host: base.hostname, port: base.port, method: 'MKCOL', path: davPath(folder), headers: { Authorization: AUTHORIZATION }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Starts the uploads; from the handler of the acknowledgement chosen by
 * round.killAt, freezes the appliance at once (SIGSTOP); reads the responses
 * it had already sent; kills it (SIGKILL) and waits for every upload to end.
 */
async function uploadAndKill(t: ExecutionContext, app: ApplianceProcess, round: Round): Promise<void> {
  const active = new Set<ClientRequest>();
  let previousAck = -Infinity;
  let acksPastPoint = 0;
  const onStatus = (upload: Upload) => {
    if (upload.kind === 'slow' || !ok(upload.status) || round.killed) return;
    round.acks++;
    const now = performance.now();
    const close = now - previousAck < CLOSE_ACKS_MS;
    previousAck = now;
    if (upload.burst === round.killAt.burst) round.burstAcks++;
    if (round.burstAcks < round.killAt.ack) return;
    if (!round.killAt.seek) kill('at the kill point');
    else if (close) kill('right after another acknowledgement');
    else if (++acksPastPoint > MAX_ACKS_PAST_POINT) kill(`${MAX_ACKS_PAST_POINT} acknowledgements past the kill point`);
  };
  const kill = (why: string) => {
    if (round.killed) return;
    const started = round.uploads.filter((u) => u.kind !== 'slow' && u.started);
    round.atKill = {
      why,
      acks: round.acks,
      burstAcks: round.burstAcks,
      inFlight: started.filter((u) => u.status === null && u.error === null).length,
      slow: round.uploads.filter((u) => u.kind === 'slow').map((u) => ({ name: u.name, sent: u.sent, size: u.body.length })),
    };
    // Frozen first: every response it had sent by now still reaches us (a
    // killed process's connections may be reset, dropping responses on the
    // wire), and the state on disk is the state of this instant.
    app.kill('SIGSTOP');
    round.killed = true;
    frozen();
  };
  let frozen!: () => void;
  const whenFrozen = new Promise<void>((resolve) => (frozen = resolve));
  const send = (upload: Upload) => {
    round.uploads.push(upload);
    return put(app, round, upload, onStatus, active);
  };

  // Slow uploads first; the rest start once each slow one is well under way.
  const slow = SLOW.map((s) => newUpload(s.name, 'slow', s.size, { chunked: s.chunked }));
  const running: Promise<void>[] = slow.map(send);
  while (slow.some((u) => u.sent < 8 * SLOW_CHUNK && u.error === null)) await sleep(5);

  // Background: single files and concurrent overwrites of one path, shuffled, POOL at a time.
  const pooled = [
    ...Array.from({ length: SINGLES }, (_, i) => newUpload(`single-${String(i).padStart(2, '0')}.bin`, 'single', SINGLE_SIZES[i % SINGLE_SIZES.length]!, { chunked: i % 7 === 3 })),
    ...SHARED_SIZES.map((size, i) => newUpload(SHARED, 'shared', size, { chunked: i === 4 })),
  ];
  for (let i = pooled.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [pooled[i], pooled[j]] = [pooled[j]!, pooled[i]!];
  }
  let next = 0;
  const worker = async () => {
    while (!round.killed && next < pooled.length) await send(pooled[next++]!);
  };
  // Background: sequential overwrites of one path.
  const chained = Array.from({ length: CHAIN_MAX }, (_, i) => newUpload(CHAIN, 'chain', randomInt(1, 150 * KIB), { chainIndex: i }));
  const chain = async () => {
    for (const upload of chained) {
      if (round.killed) break;
      await send(upload);
      if (!ok(upload.status)) break;
    }
  };
  // Bursts of small PUTs, each sent all at once; one of each overwrites the shared path.
  // (Every body is made before the first is sent: nothing slows down the reaction to a response.)
  const burstList = Array.from({ length: BURSTS }, (_, b) => [
    newUpload(SHARED, 'burst', 2001 + b, { burst: b + 1 }),
    ...BURST_SIZES.map((size, i) => newUpload(`burst-${b + 1}-${i}.bin`, 'burst', size, { burst: b + 1, chunked: i === 5 })),
  ]);
  const bursts = async () => {
    for (const burst of burstList) {
      if (round.killed) break;
      await Promise.all(burst.map(send));
    }
  };
  const fast = Promise.all([...Array.from({ length: POOL }, worker), chain(), bursts()]);
  // If the bursts ran out without reaching the kill point (they should not),
  // kill anyway; the assertions on round.atKill say so.
  await Promise.race([fast, whenFrozen]);
  kill(RAN_OUT);

  // Read the responses the frozen process had already sent (each counts as
  // an acknowledgement), until none has come for a while; then the SIGKILL.
  const drainStart = performance.now();
  while (performance.now() - Math.max(round.lastStatusAt, drainStart) < 300 && performance.now() - drainStart < 5000) await sleep(50);
  app.kill('SIGKILL');
  const exit = await app.waitForExit();
  t.is(exit.signal, 'SIGKILL', 'the appliance died of the SIGKILL');
  // The kernel resets or closes every connection of the dead process.
  const settled = Promise.all([...running, fast]);
  const deadline = sleep(15_000, undefined, { ref: false }).then(() => 'late' as const);
  if ((await Promise.race([settled.then(() => 'done' as const), deadline])) === 'late') {
    t.log(`${active.size} request(s) still open 15 s after the kill; destroying them`);
    for (const req of active) req.destroy();
  }
  await Promise.all([...running, fast]);
}

interface Expected {
  readonly name: string;
  readonly uploads: readonly Upload[];
  readonly acked: readonly Upload[];
  /** Bodies the server may have received in full: acknowledged, or handed over completely before the kill. */
  readonly eligible: ReadonlySet<string>;
}

function expectations(round: Round): Expected[] {
  const names = [...new Set(round.uploads.filter((u) => u.started).map((u) => u.name))].sort();
  return names.map((name) => {
    const uploads = round.uploads.filter((u) => u.started && u.name === name);
    // The checks tell bodies apart by their SHA-256: each body sent to a path must be unique.
    if (new Set(uploads.map((u) => u.sha256)).size !== uploads.length) throw new Error(`${name}: the test sent the same body twice`);
    return {
      name, uploads,
      acked: uploads.filter((u) => ok(u.status)),
      eligible: new Set(uploads.filter((u) => u.complete).map((u) => u.sha256)),
    };
  });
}

/** After the restart, over HTTP: GET of every path and the folder listing. Returns the current SHA-256 per visible name. */
async function checkOverHttp(t: ExecutionContext, app: ApplianceProcess, round: Round, expected: readonly Expected[]): Promise<Map<string, string>> {
  const problems: string[] = [];
  const current = new Map<string, string>();
  const got = await Promise.all(expected.map((e) => get(app, davPath(round.folder, e.name))));
  expected.forEach((e, i) => {
    const reply = got[i]!;
    if (reply.problem !== null) problems.push(`${e.name}: ${reply.problem}`);
    if (reply.status === 200 && reply.sha256 !== null) {
      current.set(e.name, reply.sha256);
      if (!e.eligible.has(reply.sha256)) problems.push(`${e.name}: reads back with SHA-256 ${reply.sha256}, which is no complete body sent to it (a half or mixed version)`);
    } else if (reply.status === 404) {
      if (e.acked.length > 0) problems.push(`${e.name}: ${e.acked.length} acknowledged PUT(s), but GET is 404 (an acknowledged write was lost)`);
    } else {
      problems.push(`${e.name}: GET answered ${reply.status}`);
    }
    if (e.eligible.size === 0 && reply.status !== 404) problems.push(`${e.name}: only uploads cut mid-body, yet GET answered ${reply.status} (expected 404)`);
  });
  t.deepEqual(problems, [], 'every acknowledged PUT reads back with its SHA-256; nothing partial is visible');

  const listing = await listed(app, round.folder);
  t.is(listing.status, 207);
  t.deepEqual(listing.names, [...current.keys()].sort(), 'the folder lists exactly the files that read back (no temporary or half file shows)');
  return current;
}

interface StoreFindings {
  /** Blob ids that some version refers to. */
  readonly referenced: ReadonlySet<string>;
  /** Versions whose PUT was never answered (committed just before the kill). */
  readonly unansweredCommitted: number;
  /** storage.orphans.collect entries written by the restart after the kill. */
  readonly collected: readonly AuditEntry[];
}

/** After a graceful stop, in the database itself: versions, audit entries, the chain, blob references. */
async function checkStore(t: ExecutionContext, round: Round, expected: readonly Expected[], current: ReadonlyMap<string, string>): Promise<StoreFindings> {
  const db = await openDatabase(join(dataDir, 'db'));
  try {
    const audit = await openAuditTrail(db);
    const report = await audit.verify();
    t.true(report.ok, `the audit chain verifies: ${JSON.stringify(report.firstBroken)}`);
    t.true(report.checked > 0);

    const studies = db.section<StudyRecord>('studies');
    const nodes = db.section<NodeRecord>('nodes');
    const children = db.section<string>('children');
    const versions = db.section<VersionRecord>('versions');

    const referenced = new Set<string>();
    const allVersions: VersionRecord[] = [];
    for await (const [, version] of versions.entries()) {
      referenced.add(version.blobId);
      allVersions.push(version);
    }
    const blobFiles = new Set((await listDir(join(dataDir, 'blobs'))).map(baseName));
    t.deepEqual(allVersions.filter((v) => !blobFiles.has(v.blobId)).map((v) => `${v.nodeId}/${v.number}`), [], 'every version\'s blob is on disk');

    const writes: AuditEntry[] = [];
    const starts: number[] = [];
    const collects: AuditEntry[] = [];
    for await (const entry of audit.entries()) {
      if ((entry.action === 'file.create' || entry.action === 'file.update') && entry.outcome === 'success' && entry.object.path?.startsWith(`/${STUDY}/${round.folder}/`)) writes.push(entry);
      if (entry.action === 'system.start') starts.push(entry.seq);
      if (entry.action === 'storage.orphans.collect') collects.push(entry);
    }
    // The collection runs before system.start is recorded: the restart's comes
    // after this round's first start and before the restart's own start.
    const [roundStart, restart] = starts.slice(-2);
    const collected = collects.filter((entry) => entry.seq > (roundStart ?? 0) && entry.seq < (restart ?? 0));
    const summary = (entry: AuditEntry) => entry.newValue as { versionId?: string; number?: number; sha256?: string } | null;

    const problems: string[] = [];
    const study = await studies.get(STUDY);
    const folderId = study ? await children.get(`${study.rootId}/${round.folder}`) : undefined;
    if (folderId === undefined) throw new Error(`folder ${round.folder} is missing from the database`);
    const seenVersionIds = new Set<string>();
    let unansweredCommitted = 0;
    for (const e of expected) {
      const path = vaultPath(round.folder, e.name);
      const nodeId = await children.get(`${folderId}/${e.name}`);
      const node = nodeId === undefined ? undefined : await nodes.get(nodeId);
      const list: VersionRecord[] = [];
      if (node) for await (const [, version] of versions.withPrefix(`${node.id}/`)) list.push(version);
      for (const v of list) seenVersionIds.add(v.id);

      if (!node) {
        if (current.has(e.name)) problems.push(`${e.name}: served over HTTP but has no node`);
        if (e.acked.length > 0) problems.push(`${e.name}: acknowledged but has no node`);
        continue;
      }
      if (current.get(e.name) !== node.currentVersion?.sha256) problems.push(`${e.name}: GET served ${current.get(e.name)}, the node's current version is ${node.currentVersion?.sha256}`);
      const numbers = list.map((v) => v.number);
      if (numbers.join() !== numbers.map((_, i) => i + 1).join()) problems.push(`${e.name}: version numbers ${numbers.join()} are not 1..n`);
      if (node.versionCount !== list.length) problems.push(`${e.name}: versionCount ${node.versionCount}, ${list.length} version records`);
      if (list.length > 0 && node.currentVersion?.id !== list[list.length - 1]!.id) problems.push(`${e.name}: the current version is not the newest one`);
      if (list.length < e.acked.length) problems.push(`${e.name}: ${list.length} versions for ${e.acked.length} acknowledged PUTs`);
      for (const v of list) {
        if (!e.acked.some((u) => u.sha256 === v.sha256)) unansweredCommitted++;
        if (!e.eligible.has(v.sha256)) problems.push(`${e.name}: version ${v.number} has SHA-256 ${v.sha256}, no complete body sent to it`);
        if (v.size !== e.uploads.find((u) => u.sha256 === v.sha256)?.body.length) problems.push(`${e.name}: version ${v.number} records size ${v.size}`);
        const entries = writes.filter((entry) => entry.object.versionId === v.id);
        if (entries.length !== 1) {
          problems.push(`${e.name}: version ${v.number} has ${entries.length} audit entries`);
          continue;
        }
        const entry = entries[0]!;
        const value = summary(entry);
        const action = v.number === 1 ? 'file.create' : 'file.update';
        if (entry.action !== action || entry.object.path !== path || entry.object.nodeId !== node.id || value?.sha256 !== v.sha256 || value?.number !== v.number || value?.versionId !== v.id) {
          problems.push(`${e.name}: the audit entry of version ${v.number} says ${entry.action} ${entry.object.path} ${JSON.stringify(value)}`);
        }
      }
      for (const upload of e.acked) {
        const holding = list.filter((v) => v.sha256 === upload.sha256);
        if (holding.length !== 1) problems.push(`${e.name}: an acknowledged body (${upload.body.length} bytes) is in ${holding.length} versions`);
        const entries = writes.filter((entry) => entry.object.path === path && summary(entry)?.sha256 === upload.sha256);
        if (entries.length !== 1) problems.push(`${e.name}: an acknowledged body (${upload.body.length} bytes) has ${entries.length} audit entries`);
      }
      // Sequential overwrites: each was sent after the one before was acknowledged, so their versions are in chain order.
      const chained = list.map((v) => e.uploads.find((u) => u.sha256 === v.sha256)?.chainIndex ?? null).filter((i): i is number => i !== null);
      if (chained.join() !== [...chained].sort((a, b) => a - b).join()) problems.push(`${e.name}: chain positions in version order: ${chained.join()}`);
    }
    const stray = writes.filter((entry) => entry.object.versionId === undefined || !seenVersionIds.has(entry.object.versionId));
    for (const entry of stray) problems.push(`audit entry ${entry.seq} (${entry.action} ${entry.object.path}) names a version that does not exist`);
    t.deepEqual(problems, [], 'versions, their numbers and their audit entries match what was acknowledged');
    return { referenced, unansweredCommitted, collected };
  } finally {
    await db.close();
  }
}

for (const [index, killAt] of KILL_POINTS.entries()) {
  const where = `${killAt.seek ? 'from' : 'at'} acknowledgement ${killAt.ack} of burst ${killAt.burst}${killAt.seek ? ' on' : ''}`;
  const title = `11.10(c)(e) invariant 2: SIGKILL amid concurrent PUTs (${where}): every acknowledged version reads back with its SHA-256, nothing half-written is visible, the audit trail verifies, the crash's leftovers are collected`;
  test.serial(title, async (t) => {
    // A test that failed before may have left its appliance running.
    await killApplianceProcesses();
    const round: Round = { folder: `crash-${index + 1}`, killAt, uploads: [], acks: 0, burstAcks: 0, lastStatusAt: 0, killed: false, atKill: null };

    let app = await startApplianceProcess({ env: env!, dataDir });
    t.is(await mkcol(app, round.folder), 201);
    await uploadAndKill(t, app, round);
    const atKill = round.atKill!;
    t.log(`killed at acknowledgement ${atKill.burstAcks} of burst ${killAt.burst} (${atKill.acks} in all; ${atKill.why}), ${atKill.inFlight} PUT(s) in flight; slow uploads at ${atKill.slow.map((s) => `${s.name} ${s.sent}/${s.size}`).join(', ')}`);
    t.not(atKill.why, RAN_OUT, 'the kill came amid the uploads, not after them');
    t.true(atKill.burstAcks >= killAt.ack);
    for (const s of atKill.slow) t.true(s.sent > 0 && s.sent < s.size, `${s.name} was mid-body at the kill`);
    const answered = round.uploads.filter((u) => u.status !== null);
    t.deepEqual(answered.filter((u) => !ok(u.status)).map((u) => `${u.name}: ${u.status}`), [], 'every PUT answered before the kill was a success');
    t.deepEqual(round.uploads.filter((u) => u.errorBeforeKill).map((u) => `${u.name}: ${u.error}`), [], 'no PUT failed before the kill');
    const acked = round.uploads.filter((u) => ok(u.status));
    t.log(`${round.uploads.filter((u) => u.started).length} PUTs started, ${acked.length} acknowledged (${acked.length - atKill.acks} read after the freeze), ${round.uploads.filter((u) => u.started && u.complete && !ok(u.status)).length} complete but unanswered, ${round.uploads.filter((u) => u.started && !u.complete).length} cut mid-body`);
    // What the crash left on disk, for the start-up collection to deal with.
    const tmpAfterKill = await readdir(join(dataDir, 'tmp'));
    const blobsAfterKill = (await listDir(join(dataDir, 'blobs'))).map(baseName);
    t.true(tmpAfterKill.length >= SLOW.length, 'the uploads cut mid-body left temporary files');

    app = await startApplianceProcess({ env: env!, dataDir });
    t.deepEqual(await readdir(join(dataDir, 'tmp')), [], 'nothing is left in tmp/ once the restarted appliance serves');
    const expected = expectations(round);
    t.true(expected.some((e) => e.eligible.size === 0), 'some path had only uploads cut mid-body');
    t.log(`acknowledged overwrites: ${[SHARED, CHAIN].map((name) => `${name} ${expected.find((e) => e.name === name)?.acked.length ?? 0}`).join(', ')}`);
    const current = await checkOverHttp(t, app, round, expected);
    await app.stop();

    const { referenced, unansweredCommitted, collected } = await checkStore(t, round, expected, current);
    t.log(`${unansweredCommitted} unanswered PUT(s) had committed before the kill (and read back whole)`);
    t.deepEqual((await listDir(join(dataDir, 'blobs'))).filter((file) => !referenced.has(baseName(file))), [], 'every file under blobs/ is the blob of some version');

    // The collection is audited, with what it removed.
    const orphansAfterKill = blobsAfterKill.filter((blobId) => !referenced.has(blobId));
    t.log(`the restart collected ${tmpAfterKill.length} temporary file(s) and ${orphansAfterKill.length} unreferenced blob(s)`);
    t.is(collected.length, 1, 'the restart audited one storage.orphans.collect');
    const removed = collected[0]?.newValue as { temporaryFiles?: number; blobs?: number; temporaryNames?: string[]; blobIds?: string[] } | undefined;
    t.deepEqual([...(removed?.temporaryNames ?? [])].sort(), [...tmpAfterKill].sort(), 'it names the temporary files the crash left');
    t.deepEqual([...(removed?.blobIds ?? [])].sort(), orphansAfterKill.sort(), 'it names the blobs no version refers to');
    t.is(removed?.temporaryFiles, tmpAfterKill.length);
    t.is(removed?.blobs, orphansAfterKill.length);
  });
}
