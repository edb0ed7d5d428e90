// Timing splits: the building blocks of Vellum's request path measured one by
// one on this machine, without Vellum, so a benchmark number can be taken
// apart: AES-256-GCM sealed the way the blob format does it (a cipher per
// 64 KiB segment), SHA-256, fs reads and writes at segment size, fsync,
// LevelDB gets and synced batches, and Node's own HTTP and HTTPS on loopback
// (the ceiling for any Node server here). Nothing here imports src/: the
// shapes are restated from docs/storage-format.md, so this keeps working
// while the format changes.
//
//   node bench/splits.ts [--size 1GiB]

import { execFile, spawn } from 'node:child_process';
import { createCipheriv, createDecipheriv, createHash, createSecretKey, randomBytes, type CipherKey } from 'node:crypto';
import { createWriteStream, readFileSync } from 'node:fs';
import { mkdtemp, open, rename, rm, mkdir } from 'node:fs/promises';
import { Agent as HttpAgent, createServer as createHttpServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent, createServer as createHttpsServer, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs, promisify } from 'node:util';
import { Level } from 'level';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const MB = 1_000_000;

const { values } = parseArgs({ options: { size: { type: 'string', default: '1GiB' }, serve: { type: 'string' } } });

// ---------------------------------------------------------------- the HTTP(S) sink/source child

if (values.serve !== undefined) {
  const [kind, certFile, keyFile] = values.serve.split(',');
  const block = randomBytes(MiB);
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'PUT') {
      req.on('data', () => undefined).on('end', () => res.writeHead(201, { 'Content-Length': '0' }).end());
      return;
    }
    const size = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('size'));
    res.writeHead(200, { 'Content-Length': String(size) });
    void pipeline(Readable.from((function* () {
      for (let sent = 0; sent < size; sent += MiB) yield Buffer.from(block.subarray(0, Math.min(MiB, size - sent)));
    })()), res).catch(() => res.destroy());
  };
  const server = kind === 'https'
    ? createHttpsServer({ cert: readFileSync(certFile!), key: readFileSync(keyFile!) }, handler)
    : createHttpServer(handler);
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
  process.stdin.on('end', () => process.exit(0)).resume();
} else {
  await main();
}

function parseSize(text: string): number {
  const match = /^(\d+)\s*(KiB|MiB|GiB)?$/i.exec(text.trim());
  if (!match) throw new Error(`--size: cannot read "${text}"`);
  const unit = (match[2] ?? '').toLowerCase();
  return Number(match[1]) * (unit === 'kib' ? 1024 : unit === 'mib' ? MiB : unit === 'gib' ? 1024 * MiB : 1);
}

function line(what: string, result: string): void {
  console.log(`  ${what.padEnd(76)} ${result}`);
}

function rate(bytes: number, ms: number): string {
  return `${(bytes / MB / (ms / 1000)).toFixed(0).padStart(6)} MB/s`;
}

function time<T>(fn: () => T): [T, number] {
  const started = performance.now();
  const out = fn();
  return [out, performance.now() - started];
}

async function timeAsync<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const out = await fn();
  return [out, performance.now() - started];
}

function aadFor(digest: Buffer, index: number, last: boolean): Buffer {
  const aad = Buffer.alloc(digest.length + 5);
  digest.copy(aad, 0);
  aad.writeUInt32BE(index, digest.length);
  aad.writeUInt8(last ? 1 : 0, digest.length + 4);
  return aad;
}

function nonceFor(prefix: Buffer, index: number): Buffer {
  const nonce = Buffer.alloc(12);
  prefix.copy(nonce, 0, 0, 8);
  nonce.writeUInt32BE(index, 8);
  return nonce;
}

/** Seals `size` bytes the way the blob format does: one cipher per segment, AAD per segment, output concatenated. */
function sealAll(data: Buffer, size: number, segment: number, key: CipherKey): number {
  const prefix = randomBytes(8);
  const digest = randomBytes(32);
  let out = 0;
  const count = Math.ceil(size / segment);
  for (let index = 0; index < count; index++) {
    const offset = (index * segment) % data.length;
    const plain = data.subarray(offset, offset + segment);
    const cipher = createCipheriv('aes-256-gcm', key, nonceFor(prefix, index));
    cipher.setAAD(aadFor(digest, index, index === count - 1));
    out += Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]).length;
  }
  return out;
}

function openAll(sealed: readonly Buffer[], count: number, key: CipherKey, prefix: Buffer, digest: Buffer): number {
  let out = 0;
  for (let index = 0; index < count; index++) {
    const item = sealed[index % sealed.length]!;
    const decipher = createDecipheriv('aes-256-gcm', key, nonceFor(prefix, index % sealed.length));
    decipher.setAAD(aadFor(digest, index % sealed.length, false));
    decipher.setAuthTag(item.subarray(item.length - 16));
    out += decipher.update(item.subarray(0, item.length - 16)).length;
    decipher.final();
  }
  return out;
}

async function crypto(size: number): Promise<void> {
  console.log('crypto (one core, main thread):');
  const data = randomBytes(64 * MiB);
  const raw = randomBytes(32);
  const [, perSegment] = time(() => sealAll(data, size, 64 * 1024, raw));
  line('AES-256-GCM seal, a cipher per 64 KiB segment, raw key (as now)', rate(size, perSegment));
  const [, keyObject] = time(() => sealAll(data, size, 64 * 1024, createSecretKey(raw)));
  line('  same with one KeyObject per blob (createSecretKey)', rate(size, keyObject));
  const [, bigSegments] = time(() => sealAll(data, size, MiB, raw));
  line('  same with 1 MiB segments', rate(size, bigSegments));
  const [, stream] = time(() => {
    const cipher = createCipheriv('aes-256-gcm', raw, randomBytes(12));
    for (let offset = 0; offset < size; offset += 64 * 1024) cipher.update(data.subarray(offset % data.length, (offset % data.length) + 64 * 1024));
    cipher.final();
  });
  line('AES-256-GCM, one cipher, 64 KiB updates (the ceiling)', rate(size, stream));
  const [, sha] = time(() => {
    const hash = createHash('sha256');
    for (let offset = 0; offset < size; offset += 64 * 1024) hash.update(data.subarray(offset % data.length, (offset % data.length) + 64 * 1024));
    hash.digest();
  });
  line('SHA-256, 64 KiB updates', rate(size, sha));
  const prefix = randomBytes(8);
  const digest = randomBytes(32);
  const sealed = Array.from({ length: 256 }, (_, index) => {
    const cipher = createCipheriv('aes-256-gcm', raw, nonceFor(prefix, index));
    cipher.setAAD(aadFor(digest, index, false));
    return Buffer.concat([cipher.update(data.subarray(index * 65536, (index + 1) * 65536)), cipher.final(), cipher.getAuthTag()]);
  });
  const count = Math.ceil(size / 65536);
  const [, open64] = time(() => openAll(sealed, count, raw, prefix, digest));
  line('AES-256-GCM open, a decipher per 64 KiB segment, raw key (as now)', rate(size, open64));
  const [, openKey] = time(() => openAll(sealed, count, createSecretKey(raw), prefix, digest));
  line('  same with one KeyObject per blob', rate(size, openKey));
}

async function files(dir: string, size: number): Promise<void> {
  console.log('files (this machine\'s disk, page cache warm for reads):');
  const big = join(dir, 'big');
  const data = randomBytes(MiB);
  await run('sync');
  const [, written] = await timeAsync(() => pipeline(Readable.from((function* () {
    for (let offset = 0; offset < size; offset += 64 * 1024) yield Buffer.from(data.subarray(offset % MiB, (offset % MiB) + 64 * 1024));
  })()), createWriteStream(big)));
  line('write via createWriteStream, 64 KiB chunks, no fsync', rate(size, written));
  const handle = await open(big, 'r+');
  const [, synced] = await timeAsync(() => handle.sync());
  await handle.close();
  line('  then fsync of the whole file (the tail a flush: true write waits for)', `${synced.toFixed(0).padStart(6)} ms`);
  const reader = await open(big, 'r');
  const [, small] = await timeAsync(async () => {
    for (let offset = 0; offset < size; offset += 65552) {
      const buffer = Buffer.alloc(65552);
      await reader.read(buffer, 0, buffer.length, offset);
    }
  });
  line('read, one awaited 64 KiB+16 read per segment, Buffer.alloc each (format 1)', rate(size, small));
  const reuse = Buffer.allocUnsafe(16 * 65552);
  const [, large] = await timeAsync(async () => {
    for (let offset = 0; offset < size; offset += reuse.length) await reader.read(reuse, 0, reuse.length, offset);
  });
  line('read, 16 segments per read into one reused buffer (format 2 reads 8)', rate(size, large));
  await reader.close();
  await rm(big);

  const smallDir = join(dir, 'small');
  const blobs = join(dir, 'blobs', 'ab');
  await mkdir(smallDir, { recursive: true });
  await mkdir(blobs, { recursive: true });
  const body = randomBytes(4096);
  const one = async (i: number, dirSync: boolean) => {
    const temp = join(smallDir, `${i}.part`);
    const file = await open(temp, 'wx', 0o600);
    await file.write(body);
    await file.sync();
    await file.close();
    await rename(temp, join(blobs, `${i}`));
    if (dirSync) {
      const folder = await open(blobs, 'r');
      await folder.sync();
      await folder.close();
    }
  };
  const [, sequential] = await timeAsync(async () => {
    for (let i = 0; i < 200; i++) await one(i, true);
  });
  line('4 KiB blob: open, write, fsync, close, rename, fsync folder (sequential)', `${(sequential / 200).toFixed(2).padStart(6)} ms each`);
  const [, parallel] = await timeAsync(async () => {
    let next = 1000;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < 1800) await one(next++, true);
    }));
  });
  line('  same, 8 at a time', `${(800 / (parallel / 1000)).toFixed(0).padStart(6)} per s`);
}

async function leveldb(dir: string): Promise<void> {
  console.log('LevelDB (classic-level, json values):');
  const db = new Level<string, unknown>(join(dir, 'db'), { valueEncoding: 'json' });
  await db.open();
  const value = { id: 'x'.repeat(22), study: 'BENCH-001', name: 'file.bin', kind: 'file', createdAt: new Date().toISOString(), size: 4096 };
  for (let i = 0; i < 5000; i++) await db.put(`nodes!${i}`, value);
  const cpu0 = process.cpuUsage();
  const [, gets] = await timeAsync(async () => {
    for (let i = 0; i < 20_000; i++) await db.get(`nodes!${i % 5000}`);
  });
  const cpu = process.cpuUsage(cpu0);
  line('get of a present key, awaited one by one', `${((gets * 1000) / 20_000).toFixed(1).padStart(6)} us wall, ${((cpu.user + cpu.system) / 20_000).toFixed(1)} us CPU`);
  const [, batches] = await timeAsync(async () => {
    for (let i = 0; i < 200; i++) await db.batch([{ type: 'put', key: `a!${i}`, value }, { type: 'put', key: `b!${i}`, value }, { type: 'put', key: `c!${i}`, value }], { sync: true });
  });
  line('synced batch of 3 puts, one at a time', `${(batches / 200).toFixed(2).padStart(6)} ms each`);
  await db.close();
}

async function transport(dir: string, size: number): Promise<void> {
  console.log(`Node's own HTTP on loopback (server in a child process: PUT discards, GET sends from memory), ${size / MiB} MiB:`);
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=localhost', '-days', '1']);
  const data = randomBytes(MiB);
  for (const kind of ['http', 'https'] as const) {
    const child = spawn(process.execPath, [import.meta.filename, '--serve', `${kind},${join(dir, 'cert.pem')},${join(dir, 'key.pem')}`], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const port = await new Promise<number>((resolve) => child.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
      const ca = readFileSync(join(dir, 'cert.pem'));
      const agent = kind === 'https' ? new HttpsAgent({ keepAlive: true, ca, servername: 'localhost' }) : new HttpAgent({ keepAlive: true });
      const make = kind === 'https' ? httpsRequest : httpRequest;
      const put = await timeAsync(() => new Promise<void>((resolve, reject) => {
        const req = make({ host: '127.0.0.1', port, method: 'PUT', path: '/', agent, headers: { 'Content-Length': String(size) } }, (res) => res.resume().on('end', resolve));
        req.on('error', reject);
        void pipeline(Readable.from((function* () {
          for (let sent = 0; sent < size; sent += MiB) yield Buffer.from(data);
        })()), req).catch(reject);
      }));
      line(`PUT over ${kind.toUpperCase()}`, rate(size, put[1]));
      const get = await timeAsync(() => new Promise<void>((resolve, reject) => {
        make({ host: '127.0.0.1', port, method: 'GET', path: `/?size=${size}`, agent }, (res) => res.resume().on('end', resolve)).on('error', reject).end();
      }));
      line(`GET over ${kind.toUpperCase()}`, rate(size, get[1]));
      agent.destroy();
    } finally {
      child.stdin.end();
      child.kill();
    }
  }
}

async function main(): Promise<void> {
  const size = parseSize(values.size);
  const dir = await mkdtemp(join(tmpdir(), 'vellum-splits-'));
  try {
    await crypto(size);
    await files(dir, size);
    await leveldb(dir);
    await transport(dir, size);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
