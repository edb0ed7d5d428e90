// `npm run bench`: Vellum side by side with Apache httpd mod_dav and stock
// webdav-server, in one run, on loopback, with one client (bench/client.ts)
// for all three. Prints a progress line per case and server, then a table with
// each number, its ratios and the target. See docs/benchmarks.md.
//
//   npm run bench                         the default sizes (about 5-10 minutes)
//   npm run bench -- --size 256MiB        a quicker run
//   npm run bench -- --help               every option

import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { basicAuthorization, expectStatus, newAgent, percentile, runLoad, send, type Target } from './client.ts';
import { newBlock, patternDigest, patternStream, smallBody } from './data.ts';
import { cpuSeconds, loadAverage, PeakTracker, type MemoryPeak } from './memory.ts';
import { BIG_FOLDER, measurePropfind, seedOnDisk, seedOverWebDav } from './propfind.ts';
import { AUDIT_TARGETS, runAuditBench } from './audit.ts';
import { apacheVersion, startApache, startStock, startVellum, type Credentials, type RunningServer } from './servers.ts';
import { PEOPLE } from '../test/env/people.ts';

const HELP = `Usage: npm run bench -- [options]

  --size SIZE             size of the big PUT/GET file (default 1GiB; e.g. 256MiB)
  --requests N            1 MiB GETs to measure per server (default 5000)
  --concurrency N         connections for the 1 MiB GETs (default 16)
  --small-puts N          4 KiB PUTs to measure per server (default 5000)
  --small-concurrency N   connections for the 4 KiB PUTs (default 8)
  --range-reads N         1 MiB Range reads from the middle of the big file (default 50)
  --propfind-files N      files in the folder for the PROPFIND Depth 1 case (default 10000)
  --propfind-runs N       measured PROPFINDs of that folder per server (default 5)
  --propfind-only         run only the PROPFIND case (and its set-up)
  --audit-appends N       audit-trail appends measured with 16 writers (default 100000)
  --audit-entries N       size of the audit trail verify() is measured on (default 1000000)
  --no-audit              skip the audit-trail section
  --max-seconds S         cap on each server's time in one load case (default 30)
  --servers LIST          which servers, comma-separated (default vellum,apache,stock)
  --no-https              skip the extra Vellum-over-HTTPS rows
  --profile DIR           write a CPU profile of Vellum per case into DIR (slows Vellum down)
  --json FILE             also write the results as JSON
  --keep                  keep the temporary directories (their paths are printed)
`;

const MB = 1_000_000;
const run = promisify(execFile);

/** Flushes dirty pages left by earlier cases, so one server's writes are not written back during another's turn. */
async function settle(): Promise<void> {
  await run('sync').catch(() => undefined);
}
const MiB = 1024 * 1024;

function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB|K|M|G|KB|MB|GB)?$/i.exec(text.trim());
  if (!match) throw new Error(`--size: cannot read "${text}" (e.g. 1GiB, 256MiB)`);
  const unit = (match[2] ?? 'B').toLowerCase();
  const factor = unit.startsWith('k') ? 1024 : unit.startsWith('m') ? MiB : unit.startsWith('g') ? 1024 * MiB : 1;
  return Math.round(Number(match[1]) * factor);
}

function sizeLabel(bytes: number): string {
  if (bytes % (1024 * MiB) === 0) return `${bytes / (1024 * MiB)} GiB`;
  if (bytes % MiB === 0) return `${bytes / MiB} MiB`;
  return `${bytes} B`;
}

function positive(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a whole number >= 1, got "${text}"`);
  return value;
}

const { values: flags } = parseArgs({
  allowNegative: true,
  options: {
    size: { type: 'string', default: '1GiB' },
    requests: { type: 'string', default: '5000' },
    concurrency: { type: 'string', default: '16' },
    'small-puts': { type: 'string', default: '5000' },
    'small-concurrency': { type: 'string', default: '8' },
    'range-reads': { type: 'string', default: '50' },
    'propfind-files': { type: 'string', default: '10000' },
    'propfind-runs': { type: 'string', default: '5' },
    'propfind-only': { type: 'boolean', default: false },
    'audit-appends': { type: 'string', default: '100000' },
    'audit-entries': { type: 'string', default: '1000000' },
    audit: { type: 'boolean', default: true },
    'max-seconds': { type: 'string', default: '30' },
    servers: { type: 'string', default: 'vellum,apache,stock' },
    https: { type: 'boolean', default: true },
    profile: { type: 'string' },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

const options = {
  size: parseSize(flags.size),
  requests: positive('requests', flags.requests),
  concurrency: positive('concurrency', flags.concurrency),
  smallPuts: positive('small-puts', flags['small-puts']),
  smallConcurrency: positive('small-concurrency', flags['small-concurrency']),
  rangeReads: positive('range-reads', flags['range-reads']),
  propfindFiles: positive('propfind-files', flags['propfind-files']),
  propfindRuns: positive('propfind-runs', flags['propfind-runs']),
  propfindOnly: flags['propfind-only'],
  auditAppends: positive('audit-appends', flags['audit-appends']),
  auditEntries: positive('audit-entries', flags['audit-entries']),
  audit: flags.audit,
  maxSeconds: positive('max-seconds', flags['max-seconds']),
  servers: flags.servers.split(',').map((name) => name.trim().toLowerCase()).filter(Boolean),
  https: flags.https,
  profile: flags.profile === undefined ? undefined : resolve(flags.profile),
  json: flags.json === undefined ? undefined : resolve(flags.json),
  keep: flags.keep,
};
for (const name of options.servers) if (!['vellum', 'apache', 'stock'].includes(name)) throw new Error(`--servers: unknown server "${name}"`);
if (options.size < 2 * MiB) throw new Error('--size must be at least 2 MiB (the Range case reads 1 MiB from the middle).');

// ---------------------------------------------------------------- clean-up, whatever happens

const cleanups: (() => Promise<void>)[] = [];
let cleaning: Promise<void> | undefined;
let interrupted = false;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const step of cleanups.reverse()) await step().catch((e: unknown) => console.error(`clean-up: ${(e as Error).message}`));
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    console.error(`\n${signal}: stopping every server this run started...`);
    void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  });
}

async function tempDir(label: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `vellum-bench-${label}-`));
  cleanups.push(async () => {
    if (options.keep) console.log(`kept ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

// ---------------------------------------------------------------- results

type Key = 'vellum' | 'apache' | 'stock';
const SERVER_LABEL: Record<Key, string> = { vellum: 'Vellum', apache: 'Apache', stock: 'stock' };

interface Measure {
  /** The number compared (MB/s, req/s, ms or MB). */
  readonly value: number;
  /** Extra words for the progress line and the JSON. */
  readonly detail?: string;
  readonly extra?: Record<string, number | string | boolean>;
}

interface Row {
  readonly id: string;
  readonly label: string;
  readonly unit: string;
  readonly higherIsBetter: boolean;
  readonly results: Partial<Record<Key, Measure>>;
  /** Words for the target column; check() decides whether it is met. */
  readonly target: string;
  readonly check?: (row: Row) => boolean | undefined;
  /** Ratios against another row's Apache/stock numbers (the HTTPS rows compare with plain HTTP). */
  readonly compareWith?: string;
}

const rows: Row[] = [];
function row(spec: Omit<Row, 'results'>): Row {
  const created: Row = { ...spec, results: {} };
  rows.push(created);
  return created;
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

function peers(r: Row): Row {
  return (r.compareWith && rows.find((other) => other.id === r.compareWith)) || r;
}

function atLeast(apacheRatio: number | undefined, stockRatio: number | undefined) {
  return (r: Row) => {
    const v = r.results.vellum?.value;
    const p = peers(r);
    const checks: boolean[] = [];
    if (apacheRatio !== undefined) {
      const x = ratio(v, p.results.apache?.value);
      if (x === undefined) return undefined;
      checks.push(x >= apacheRatio);
    }
    if (stockRatio !== undefined) {
      const x = ratio(v, p.results.stock?.value);
      if (x === undefined) return undefined;
      checks.push(x >= stockRatio);
    }
    return checks.every(Boolean);
  };
}

function atMostTimesApache(limit: number) {
  return (r: Row) => {
    const x = ratio(r.results.vellum?.value, peers(r).results.apache?.value);
    return x === undefined ? undefined : x <= limit;
  };
}

function below(limit: number) {
  return (r: Row) => (r.results.vellum === undefined ? undefined : r.results.vellum.value < limit);
}

function format(value: number | undefined): string {
  if (value === undefined || Number.isNaN(value)) return '-';
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function cell(measure: Measure | undefined, unit: string): string {
  return measure === undefined ? '-' : `${format(measure.value)} ${unit}`;
}

function table(): string {
  const header = ['case', 'Vellum', 'Apache', 'stock', 'Vellum/Apache', 'Vellum/stock', 'target', 'met?'];
  // Cases a run skipped (--propfind-only) have no numbers: no row.
  const lines = rows.filter((r) => Object.keys(r.results).length > 0).map((r) => {
    const p = peers(r);
    const vs = (other: Measure | undefined) => {
      const x = ratio(r.results.vellum?.value, other?.value);
      return x === undefined ? '-' : `${x.toFixed(2)}x`;
    };
    const met = r.check?.(r);
    return [
      r.label, cell(r.results.vellum, r.unit), cell(r.results.apache, r.unit), cell(r.results.stock, r.unit),
      vs(p.results.apache), vs(p.results.stock), r.target, met === undefined ? (r.check ? '?' : '') : met ? 'yes' : 'NO',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [fmt(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)].join('\n');
}

function progress(step: string, server: string, text: string): void {
  console.log(`  ${step.padEnd(30)} ${server.padEnd(7)} ${text}`);
}

// ---------------------------------------------------------------- the run

async function machine(): Promise<Record<string, string>> {
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown';
  const apache = options.servers.includes('apache') ? await apacheVersion().catch(() => 'not installed yet') : 'not run';
  return { cores: String(cpus().length), cpu: model, node: process.version, apache, tmpdir: tmpdir() };
}

async function main(): Promise<void> {
  const startedAt = performance.now();
  const credentials: Credentials = { login: 'sam', password: PEOPLE.sam.password };
  const authorization = basicAuthorization(credentials.login, credentials.password);
  const size = options.size;
  const big = sizeLabel(size);

  console.log(`Vellum benchmark: ${options.servers.map((s) => SERVER_LABEL[s as Key]).join(', ')}; big file ${big}`);
  const servers = new Map<Key, RunningServer>();
  /** Each server's temporary directory (Apache's and stock's big folder is written there on disk). */
  const dirs = new Map<Key, string>();
  const dirFor = async (key: Key) => {
    const dir = await tempDir(key);
    dirs.set(key, dir);
    return dir;
  };
  const starters: Record<Key, () => Promise<RunningServer>> = {
    vellum: async () => startVellum({ dir: await dirFor('vellum'), study: 'BENCH-001', folder: 'bench' }),
    apache: async () => startApache({ dir: await dirFor('apache'), credentials }),
    stock: async () => startStock({ dir: await dirFor('stock'), credentials }),
  };
  for (const key of options.servers as Key[]) {
    const t0 = performance.now();
    const server = await starters[key]();
    cleanups.push(() => server.stop());
    servers.set(key, server);
    console.log(`started ${server.name.padEnd(7)} pid ${server.pid} at ${server.http.href} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
  const info = await machine();
  console.log(`machine: ${info.cores} cores, ${info.cpu}; Node ${info.node}; ${info.apache}`);

  const block = newBlock();
  const expected = patternDigest(block, size);
  console.log(`client: made and hashed the ${big} pattern in ${expected.seconds.toFixed(2)} s (${format(size / MB / expected.seconds)} MB/s: a ceiling for the hashed GET)`);

  const target = (key: Key, over: 'http' | 'https' = 'http'): Target => {
    const server = servers.get(key)!;
    return over === 'https'
      ? { base: server.https!, authorization, ...(server.ca ? { ca: server.ca } : {}) }
      : { base: server.http, authorization };
  };
  const order = options.servers as Key[];
  const profiles: string[] = [];
  if (options.profile) await mkdir(options.profile, { recursive: true });
  /** CPU seconds each server used in each case (all its processes and threads). */
  const cpu = new Map<string, Partial<Record<Key, number>>>();
  /**
   * Runs one case against one server, counting the CPU time the server used;
   * with --profile, Vellum runs it with the CPU profiler on.
   */
  const measured = async <T>(key: Key, caseId: string, body: () => Promise<T>): Promise<T> => {
    const server = servers.get(key)!;
    const profile = options.profile !== undefined && key === 'vellum' && server.control !== undefined;
    if (profile) await server.control!({ cmd: 'profile-start' });
    const before = cpuSeconds(server.pid);
    try {
      return await body();
    } finally {
      const used = cpuSeconds(server.pid) - before;
      cpu.set(caseId, { ...cpu.get(caseId), [key]: used });
      if (profile) {
        const file = join(options.profile!, `${caseId}.cpuprofile`);
        await server.control!({ cmd: 'profile-stop', file });
        profiles.push(file);
      }
    }
  };
  const cpuNote = (key: Key, caseId: string, per: number, unit: string, scale: number) => {
    const used = cpu.get(caseId)?.[key];
    return used === undefined ? '' : `; server CPU ${format((used * scale) / per)} ${unit}`;
  };
  interface CpuRow { label: string; caseId: string; unit: string; per: (key: Key) => number | undefined; scale: number; compareWith?: string }
  const cpuRows = (specs: CpuRow[]): string => {
    const value = (caseId: string, key: Key, spec: CpuRow) => {
      const used = cpu.get(caseId)?.[key];
      const per = spec.per(key);
      return used === undefined || per === undefined || per === 0 ? undefined : (used * spec.scale) / per;
    };
    const header = ['server CPU', 'Vellum', 'Apache', 'stock', 'Vellum/Apache', 'Vellum/stock'];
    // Cases a run skipped have no CPU times: no row.
    const lines = specs.filter((spec) => cpu.has(spec.caseId)).map((spec) => {
      const v = value(spec.caseId, 'vellum', spec);
      const peer = (key: Key) => value(spec.compareWith ?? spec.caseId, key, spec);
      const show = (x: number | undefined) => (x === undefined ? '-' : `${format(x)} ${spec.unit}`);
      const times = (x: number | undefined) => (x === undefined ? '-' : `${x.toFixed(2)}x`);
      return [spec.label, show(v), show(peer('apache')), show(peer('stock')), times(ratio(v, peer('apache'))), times(ratio(v, peer('stock')))];
    });
    const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
    const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
    return [fmt(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)].join('\n');
  };
  const loadBefore = loadAverage();
  if (loadBefore > cpus().length / 2) {
    console.log(`note: the machine is busy (1-minute load average ${loadBefore.toFixed(1)} on ${cpus().length} cores): wall-clock numbers will be noisy; the server CPU times are steadier.`);
  }

  // Set-up, not measured: a folder for the small PUTs and a 1 MiB file.
  const oneMiB = smallBody(block, MiB, 0xabcdef);
  for (const key of order) {
    const agent = newAgent(target(key), 1);
    expectStatus(await send(target(key), { method: 'MKCOL', path: 'small/', agent }), [201, 405], `${SERVER_LABEL[key]} MKCOL small/`);
    expectStatus(await send(target(key), { method: 'PUT', path: 'one-mib.bin', body: oneMiB, agent }), [201, 204], `${SERVER_LABEL[key]} PUT one-mib.bin`);
    agent.destroy();
  }

  const putRow = row({ id: 'put', label: `${big} PUT`, unit: 'MB/s', higherIsBetter: true, target: '>= 0.5x Apache, >= 1.5x stock', check: atLeast(0.5, 1.5) });
  const getRow = row({ id: 'get', label: `${big} GET (SHA-256 checked)`, unit: 'MB/s', higherIsBetter: true, target: '>= 0.5x Apache, >= 1.5x stock', check: atLeast(0.5, 1.5) });
  const tlsPutRow = options.https && servers.has('vellum')
    ? row({ id: 'put-tls', label: `${big} PUT, Vellum over HTTPS`, unit: 'MB/s', higherIsBetter: true, target: 'info (vs plain HTTP)', compareWith: 'put' })
    : undefined;
  const tlsGetRow = options.https && servers.has('vellum')
    ? row({ id: 'get-tls', label: `${big} GET, Vellum over HTTPS`, unit: 'MB/s', higherIsBetter: true, target: 'info (vs plain HTTP)', compareWith: 'get' })
    : undefined;
  const manyRow = row({ id: 'get-1mib', label: `1 MiB GET, ${options.concurrency} conns`, unit: 'req/s', higherIsBetter: true, target: '>= 0.5x Apache', check: atLeast(0.5, undefined) });
  const smallRow = row({ id: 'put-4kib', label: `4 KiB PUT, ${options.smallConcurrency} conns`, unit: 'ops/s', higherIsBetter: true, target: '>= 0.3x Apache', check: atLeast(0.3, undefined) });
  const rangeMedian = row({ id: 'range-median', label: '1 MiB Range read, median', unit: 'ms', higherIsBetter: false, target: '< 20 ms', check: below(20) });
  const rangeP95 = row({ id: 'range-p95', label: '1 MiB Range read, p95', unit: 'ms', higherIsBetter: false, target: '< 20 ms', check: below(20) });
  const rssRow = row({ id: 'rss', label: `peak RSS during ${big} transfers`, unit: 'MB', higherIsBetter: false, target: '< 200 MB', check: below(200) });
  const propfindRow = row({
    id: 'propfind-big', label: `PROPFIND Depth 1, ${options.propfindFiles.toLocaleString('en')} files`, unit: 'ms', higherIsBetter: false,
    target: '<= 2x Apache', check: atMostTimesApache(2),
  });

  const cases = options.propfindOnly ? 2 : 8;
  let step = 0;
  const rangeCount: Partial<Record<Key, number>> = {};
  const manyCount: Partial<Record<Key, number>> = {};
  const smallCount: Partial<Record<Key, number>> = {};
  const trackers = new Map<Key, PeakTracker>();

  // --propfind-only skips cases 1 to 6.
  transferCases: {
  if (options.propfindOnly) break transferCases;
  // 1. The big PUT (memory tracking starts here, per server).
  console.log(`[${++step}/${cases}] one ${big} PUT (streamed)`);
  for (const key of order) {
    await settle();
    trackers.set(key, new PeakTracker(servers.get(key)!.pid).start());
    const agent = newAgent(target(key), 1);
    const reply = await measured(key, 'put-big', () => send(target(key), { method: 'PUT', path: 'big.bin', body: { stream: patternStream(block, size), length: size }, agent }));
    agent.destroy();
    expectStatus(reply, [201, 204], `${SERVER_LABEL[key]} PUT big.bin`);
    const measure = { value: size / MB / (reply.ms / 1000), detail: `${(reply.ms / 1000).toFixed(2)} s`, extra: { seconds: reply.ms / 1000 } };
    putRow.results[key] = measure;
    progress(`${big} PUT`, SERVER_LABEL[key], `${format(measure.value)} MB/s (${measure.detail}${cpuNote(key, 'put-big', size / (1024 * MiB), 's per GiB', 1)}; peak RSS so far ${format(trackers.get(key)!.peakSoFar() / MB)} MB)`);
  }

  // 2. The big GET, hashed on the way and checked against what was PUT.
  console.log(`[${++step}/${cases}] one ${big} GET (SHA-256 of the body checked)`);
  for (const key of order) {
    const agent = newAgent(target(key), 1);
    const reply = await measured(key, 'get-big', () => send(target(key), { method: 'GET', path: 'big.bin', hash: true, agent }));
    agent.destroy();
    expectStatus(reply, [200], `${SERVER_LABEL[key]} GET big.bin`);
    if (reply.bytes !== size || reply.sha256 !== expected.sha256) {
      throw new Error(`${SERVER_LABEL[key]} GET big.bin: got ${reply.bytes} bytes with SHA-256 ${reply.sha256}; PUT ${size} bytes with ${expected.sha256}`);
    }
    const measure = { value: size / MB / (reply.ms / 1000), detail: `${(reply.ms / 1000).toFixed(2)} s, SHA-256 ok`, extra: { seconds: reply.ms / 1000 } };
    getRow.results[key] = measure;
    progress(`${big} GET`, SERVER_LABEL[key], `${format(measure.value)} MB/s (${measure.detail}${cpuNote(key, 'get-big', size / (1024 * MiB), 's per GiB', 1)}; peak RSS so far ${format(trackers.get(key)!.peakSoFar() / MB)} MB)`);
  }

  // 2b. Vellum over HTTPS, the way clients really reach it.
  if (tlsPutRow && tlsGetRow) {
    const over = target('vellum', 'https');
    await settle();
    let agent = newAgent(over, 1);
    const put = expectStatus(await measured('vellum', 'put-big-https', () => send(over, { method: 'PUT', path: 'big.bin', body: { stream: patternStream(block, size), length: size }, agent })), [201, 204], 'Vellum HTTPS PUT big.bin');
    agent.destroy();
    tlsPutRow.results.vellum = { value: size / MB / (put.ms / 1000), detail: `${(put.ms / 1000).toFixed(2)} s` };
    progress(`${big} PUT over HTTPS`, 'Vellum', `${format(tlsPutRow.results.vellum.value)} MB/s (${tlsPutRow.results.vellum.detail}${cpuNote('vellum', 'put-big-https', size / (1024 * MiB), 's per GiB', 1)})`);
    agent = newAgent(over, 1);
    const get = expectStatus(await measured('vellum', 'get-big-https', () => send(over, { method: 'GET', path: 'big.bin', hash: true, agent })), [200], 'Vellum HTTPS GET big.bin');
    agent.destroy();
    if (get.bytes !== size || get.sha256 !== expected.sha256) throw new Error('Vellum HTTPS GET big.bin: the body differs from what was PUT');
    tlsGetRow.results.vellum = { value: size / MB / (get.ms / 1000), detail: `${(get.ms / 1000).toFixed(2)} s, SHA-256 ok` };
    progress(`${big} GET over HTTPS`, 'Vellum', `${format(tlsGetRow.results.vellum.value)} MB/s (${tlsGetRow.results.vellum.detail}${cpuNote('vellum', 'get-big-https', size / (1024 * MiB), 's per GiB', 1)})`);
  }

  // 3. Peak memory over the big transfers.
  console.log(`[${++step}/${cases}] peak RSS during the ${big} transfers (VmHWM; Apache: parent + workers)`);
  for (const key of order) {
    const peak: MemoryPeak = trackers.get(key)!.stop();
    rssRow.results[key] = {
      value: peak.hwmBytes / MB,
      detail: `${peak.processes} process(es), RSS ${format(peak.startRssBytes / MB)} MB before, sampled max ${format(peak.sampledRssBytes / MB)} MB${peak.reset ? '' : ', peak not reset: includes start-up'}`,
      extra: { startRssMB: peak.startRssBytes / MB, sampledRssMB: peak.sampledRssBytes / MB, processes: peak.processes, reset: peak.reset },
    };
    progress('peak RSS', SERVER_LABEL[key], `${format(peak.hwmBytes / MB)} MB (${rssRow.results[key].detail})`);
  }
  const vellumServer = servers.get('vellum');
  if (vellumServer?.control) {
    const memory = await vellumServer.control({ cmd: 'memory' });
    const parts = ['rss', 'heapTotal', 'heapUsed', 'external', 'arrayBuffers'].map((name) => `${name} ${format(Number(memory[name]) / MB)} MB`);
    progress('Vellum memory now', 'Vellum', parts.join(', '));
    const numbers = Object.fromEntries(Object.entries(memory).map(([name, value]) => [`${name}MB`, Number(value) / MB]));
    if (rssRow.results.vellum) rssRow.results.vellum = { ...rssRow.results.vellum, extra: { ...rssRow.results.vellum.extra, ...numbers } };
  }

  // 4. Range reads from the middle of the big file, one at a time.
  const start = Math.floor(size / 2) + 4097;
  const end = start + MiB - 1;
  console.log(`[${++step}/${cases}] ${options.rangeReads} Range reads of 1 MiB at offset ${start} (one connection)`);
  for (const key of order) {
    const agent = newAgent(target(key), 1);
    const latencies: number[] = [];
    const read = async () => {
      const reply = expectStatus(await send(target(key), { method: 'GET', path: 'big.bin', headers: { Range: `bytes=${start}-${end}` }, agent }), [206], `${SERVER_LABEL[key]} Range GET`);
      if (reply.bytes !== MiB) throw new Error(`${SERVER_LABEL[key]} Range GET: ${reply.bytes} bytes instead of ${MiB}`);
      return reply.ms;
    };
    await read();
    await read();
    const deadline = performance.now() + options.maxSeconds * 1000;
    await measured(key, 'range', async () => {
      while (latencies.length < options.rangeReads && performance.now() < deadline) latencies.push(await read());
    });
    agent.destroy();
    const median = percentile(latencies, 50);
    const p95 = percentile(latencies, 95);
    const note = latencies.length < options.rangeReads ? `, only ${latencies.length} reads in ${options.maxSeconds} s` : '';
    rangeMedian.results[key] = { value: median, detail: `${latencies.length} reads${note}`, extra: { reads: latencies.length } };
    rangeP95.results[key] = { value: p95, detail: `${latencies.length} reads${note}`, extra: { reads: latencies.length } };
    rangeCount[key] = latencies.length;
    progress('Range 1 MiB', SERVER_LABEL[key], `median ${format(median)} ms, p95 ${format(p95)} ms (${latencies.length} reads${note}${cpuNote(key, 'range', latencies.length, 'ms per read', 1000)})`);
  }

  // 5. Many 1 MiB GETs over concurrent connections.
  console.log(`[${++step}/${cases}] ${options.requests} GETs of a 1 MiB file over ${options.concurrency} connections`);
  for (const key of order) {
    const result = await measured(key, 'get-1mib', () => runLoad(target(key), {
      concurrency: options.concurrency, requests: options.requests, maxSeconds: options.maxSeconds, warmup: options.concurrency * 2,
      request: async (agent) => {
        const reply = expectStatus(await send(target(key), { method: 'GET', path: 'one-mib.bin', agent }), [200], `${SERVER_LABEL[key]} GET one-mib.bin`);
        if (reply.bytes !== MiB) throw new Error(`${SERVER_LABEL[key]} GET one-mib.bin: ${reply.bytes} bytes`);
        return reply;
      },
    }));
    const perSecond = result.requests / result.seconds;
    const mbs = result.bytes / MB / result.seconds;
    const p95 = percentile(result.latencies, 95);
    manyRow.results[key] = {
      value: perSecond, detail: `${format(mbs)} MB/s, ${result.requests} requests in ${result.seconds.toFixed(1)} s, p95 ${format(p95)} ms`,
      extra: { mbPerSecond: mbs, requests: result.requests, seconds: result.seconds, p95ms: p95 },
    };
    manyCount[key] = result.requests + options.concurrency * 2;
    progress('1 MiB GETs', SERVER_LABEL[key], `${format(perSecond)} req/s, ${manyRow.results[key].detail}${cpuNote(key, 'get-1mib', manyCount[key], 'ms per request', 1000)}`);
  }

  // 6. Many 4 KiB PUTs (new files) over concurrent connections.
  console.log(`[${++step}/${cases}] ${options.smallPuts} PUTs of new 4 KiB files over ${options.smallConcurrency} connections`);
  const bodies = Array.from({ length: 64 }, (_, i) => smallBody(block, 4096, i + 1));
  for (const key of order) {
    await settle();
    const result = await measured(key, 'put-4kib', () => runLoad(target(key), {
      concurrency: options.smallConcurrency, requests: options.smallPuts, maxSeconds: options.maxSeconds, warmup: options.smallConcurrency * 2,
      request: async (agent, i) => expectStatus(
        await send(target(key), { method: 'PUT', path: `small/f${i}.bin`, body: bodies[i % bodies.length]!, agent }), [201, 204], `${SERVER_LABEL[key]} PUT small/f${i}.bin`,
      ),
    }));
    const perSecond = result.requests / result.seconds;
    const median = percentile(result.latencies, 50);
    const p95 = percentile(result.latencies, 95);
    smallRow.results[key] = {
      value: perSecond, detail: `${result.requests} PUTs in ${result.seconds.toFixed(1)} s, median ${format(median)} ms, p95 ${format(p95)} ms`,
      extra: { requests: result.requests, seconds: result.seconds, medianMs: median, p95ms: p95 },
    };
    smallCount[key] = result.requests + options.smallConcurrency * 2;
    progress('4 KiB PUTs', SERVER_LABEL[key], `${format(perSecond)} ops/s, ${smallRow.results[key].detail}${cpuNote(key, 'put-4kib', smallCount[key], 'ms per PUT', 1000)}`);
  }

  }

  // 7. PROPFIND Depth 1 on a big folder: Vellum's filled over WebDAV, the others' on disk.
  console.log(`[${++step}/${cases}] PROPFIND Depth 1 (allprop) on a folder of ${options.propfindFiles} files, ${options.propfindRuns} times after one warm-up`);
  const propfindCount: Partial<Record<Key, number>> = {};
  for (const key of order) {
    const t0 = performance.now();
    if (key === 'vellum') {
      await seedOverWebDav(target(key), options.propfindFiles, options.smallConcurrency);
    } else {
      await seedOnDisk(key === 'apache' ? join(dirs.get(key)!, 'www', 'dav', BIG_FOLDER) : join(dirs.get(key)!, 'root', BIG_FOLDER), options.propfindFiles);
    }
    const seeded = (performance.now() - t0) / 1000;
    const result = await measured(key, 'propfind-big', () => measurePropfind(target(key), options.propfindFiles, options.propfindRuns, SERVER_LABEL[key]));
    propfindCount[key] = result.runs + 1;
    propfindRow.results[key] = {
      value: result.medianMs,
      detail: `median of ${result.runs}, min ${format(result.minMs)} ms, max ${format(result.maxMs)} ms, ${format(result.bytes / MB)} MB multistatus, ${result.responses} responses; folder filled in ${seeded.toFixed(1)} s ${key === 'vellum' ? 'over WebDAV' : 'on disk'}`,
      extra: { minMs: result.minMs, maxMs: result.maxMs, runs: result.runs, multistatusMB: result.bytes / MB, responses: result.responses, seedSeconds: seeded },
    };
    progress('PROPFIND big folder', SERVER_LABEL[key], `${format(result.medianMs)} ms (${propfindRow.results[key].detail}${cpuNote(key, 'propfind-big', propfindCount[key], 'ms per PROPFIND', 1000)})`);
  }

  // The audit trail on its own (no server): appends with 16 writers, verify() of a big trail.
  if (options.audit) {
    const millions = options.auditEntries / 1_000_000;
    const appendsRow = row({ id: 'audit-appends', label: 'audit appends, 16 writers, synced', unit: '/s', higherIsBetter: true, target: `>= ${AUDIT_TARGETS.appendsPerSecond}`, check: (r) => (r.results.vellum === undefined ? undefined : r.results.vellum.value >= AUDIT_TARGETS.appendsPerSecond) });
    const verifyRow = row({ id: 'audit-verify', label: `audit verify(), ${options.auditEntries.toLocaleString('en')} entries`, unit: 's', higherIsBetter: false, target: `<= ${AUDIT_TARGETS.verifySecondsPerMillion * millions} s`, check: below(AUDIT_TARGETS.verifySecondsPerMillion * millions + Number.EPSILON) });
    console.log(`[audit] ${options.auditAppends} appends with 16 writers, then verify() of ${options.auditEntries} entries`);
    const audit = await runAuditBench({ appends: options.auditAppends, entries: options.auditEntries, keep: options.keep });
    appendsRow.results.vellum = { value: audit.appendsPerSecond, detail: `${options.auditAppends} in ${audit.appendSeconds.toFixed(2)} s` };
    verifyRow.results.vellum = {
      value: audit.verifySeconds, detail: `peak RSS +${format(audit.verifyPeakRssGrowth / MB)} MB, of it file-backed +${format(audit.verifyFileGrowth / MB)} MB`,
      extra: { peakRssGrowthMB: audit.verifyPeakRssGrowth / MB, anonGrowthMB: audit.verifyAnonGrowth / MB, fileGrowthMB: audit.verifyFileGrowth / MB, heapUsedMB: audit.verifyHeapUsed / MB },
    };
    for (const [i, measure] of audit.exports.entries()) {
      const limit = AUDIT_TARGETS.verifySecondsPerMillion * millions + Number.EPSILON;
      const exportRow = row({ id: `audit-export-${i}`, label: `audit export, ${measure.label}`, unit: 's', higherIsBetter: false, target: `<= ${AUDIT_TARGETS.verifySecondsPerMillion * millions} s`, check: below(limit) });
      exportRow.results.vellum = { value: measure.exportSeconds, detail: `${measure.entries} entries, ${format(measure.bytes / MB)} MB; anonymous memory +${format(measure.exportAnonGrowth / MB)} MB` };
      const fileRow = row({ id: `audit-verify-export-${i}`, label: `vellum audit verify, ${measure.label} export`, unit: 's', higherIsBetter: false, target: `<= ${AUDIT_TARGETS.verifySecondsPerMillion * millions} s`, check: below(limit) });
      fileRow.results.vellum = { value: measure.verifySeconds, detail: `anonymous memory +${format(measure.verifyAnonGrowth / MB)} MB` };
    }
  }

  // The table.
  console.log(`[${++step}/${cases}] done in ${((performance.now() - startedAt) / 1000).toFixed(0)} s; 1-minute load average ${loadBefore.toFixed(1)} at the start, ${loadAverage().toFixed(1)} now (${cpus().length} cores)`);
  const gib = size / (1024 * MiB);
  const cpuTable = cpuRows([
    { label: `CPU per GiB PUT`, caseId: 'put-big', unit: 's', per: () => gib, scale: 1 },
    { label: `CPU per GiB GET`, caseId: 'get-big', unit: 's', per: () => gib, scale: 1 },
    ...(tlsPutRow ? [{ label: 'CPU per GiB PUT, Vellum over HTTPS', caseId: 'put-big-https', unit: 's', per: () => gib, scale: 1, compareWith: 'put-big' }] : []),
    ...(tlsGetRow ? [{ label: 'CPU per GiB GET, Vellum over HTTPS', caseId: 'get-big-https', unit: 's', per: () => gib, scale: 1, compareWith: 'get-big' }] : []),
    { label: 'CPU per 1 MiB GET', caseId: 'get-1mib', unit: 'ms', per: (key: Key) => manyCount[key], scale: 1000 },
    { label: 'CPU per 4 KiB PUT', caseId: 'put-4kib', unit: 'ms', per: (key: Key) => smallCount[key], scale: 1000 },
    { label: 'CPU per 1 MiB Range read', caseId: 'range', unit: 'ms', per: (key: Key) => rangeCount[key], scale: 1000 },
    { label: `CPU per PROPFIND of ${options.propfindFiles} files`, caseId: 'propfind-big', unit: 'ms', per: (key: Key) => propfindCount[key], scale: 1000 },
  ]);
  console.log('');
  console.log(table());
  console.log('');
  console.log('Server CPU time (user + system, all processes and threads of the server) per unit of work; lower is better:');
  console.log('');
  console.log(cpuTable);
  console.log('');
  console.log('MB = 10^6 bytes. Ratios are Vellum divided by the other server (for ms and MB lower is better).');
  console.log('The HTTPS rows compare Vellum over HTTPS with the others over plain HTTP. Apache authenticates every request against');
  console.log('an apr1-MD5 htpasswd entry; Vellum caches a successful LDAP bind for 60 s; stock compares a plain password.');
  if (options.profile) {
    console.log(`Profiled run: Vellum numbers include the profiler's overhead. CPU profiles: ${profiles.join(', ')}`);
    console.log('Summarise one with: node bench/profile-summary.ts FILE');
  }
  if (options.json) {
    await writeFile(options.json, JSON.stringify({
      date: new Date().toISOString(), machine: info, options: { ...options, profile: options.profile !== undefined, json: undefined },
      clientPatternMBps: size / MB / expected.seconds,
      loadAverage: { start: loadBefore, end: loadAverage() },
      rows: rows.map((r) => ({ id: r.id, label: r.label, unit: r.unit, target: r.target, met: r.check?.(r) ?? null, results: r.results })),
      serverCpuSeconds: Object.fromEntries(cpu),
      table: table(),
      cpuTable,
    }, null, 2) + '\n');
    console.log(`results written to ${options.json}`);
  }
}

try {
  await main();
} catch (e) {
  if (!interrupted) console.error(`\nbenchmark failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
