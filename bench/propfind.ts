// The big-folder case of the benchmark: PROPFIND Depth 1 on a folder of many
// small files (what a file manager asks when it opens the folder). Vellum's
// folder is filled over WebDAV (concurrent PUTs: every file is a real,
// encrypted, audited version); Apache's and stock webdav-server's are written
// straight onto their disks, which is the same state for them.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expectStatus, newAgent, percentile, runLoad, send, type Target } from './client.ts';

/** The folder every server gets, below its benchmark base. */
export const BIG_FOLDER = 'propfind-big/';
const FILE_BYTES = 100;

export function bigFolderFileName(i: number): string {
  return `file-${String(i).padStart(6, '0')}.txt`;
}

function fileBody(i: number): Buffer {
  return Buffer.from(`${bigFolderFileName(i)} `.repeat(8).slice(0, FILE_BYTES));
}

/** Writes `count` files into `dir` on disk (Apache, stock). */
export async function seedOnDisk(dir: string, count: number): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const batch = 200;
  for (let start = 0; start < count; start += batch) {
    await Promise.all(Array.from({ length: Math.min(batch, count - start) }, (_, k) => writeFile(join(dir, bigFolderFileName(start + k)), fileBody(start + k), { mode: 0o644 })));
  }
}

/** MKCOL and `count` PUTs over `concurrency` connections (Vellum). Returns the seconds it took. */
export async function seedOverWebDav(target: Target, count: number, concurrency: number): Promise<number> {
  const agent = newAgent(target, 1);
  expectStatus(await send(target, { method: 'MKCOL', path: BIG_FOLDER, agent }), [201, 405], `MKCOL ${BIG_FOLDER}`);
  agent.destroy();
  const result = await runLoad(target, {
    concurrency, requests: count - concurrency, maxSeconds: 3600, warmup: concurrency,
    request: async (pool, i) => expectStatus(await send(target, { method: 'PUT', path: `${BIG_FOLDER}${bigFolderFileName(i)}`, body: fileBody(i), agent: pool }), [201, 204], `PUT ${bigFolderFileName(i)}`),
  });
  return result.seconds;
}

export interface PropfindResult {
  readonly medianMs: number;
  readonly minMs: number;
  readonly maxMs: number;
  readonly runs: number;
  /** DAV:response elements in the multistatus (the folder plus its members). */
  readonly responses: number;
  readonly bytes: number;
}

const BODY = '<?xml version="1.0" encoding="utf-8"?>\n<D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>\n';

/**
 * One warm-up PROPFIND, then `runs` measured ones, one at a time on one
 * connection; each multistatus must list the folder and all `count` files.
 */
export async function measurePropfind(target: Target, count: number, runs: number, what: string): Promise<PropfindResult> {
  const agent = newAgent(target, 1);
  const once = async () => {
    const reply = expectStatus(await send(target, {
      method: 'PROPFIND', path: BIG_FOLDER, agent, keepBody: true,
      headers: { Depth: '1', 'Content-Type': 'application/xml; charset=utf-8' }, body: Buffer.from(BODY),
    }), [207], `${what} PROPFIND ${BIG_FOLDER}`);
    const responses = (reply.body!.toString('utf8').match(/<(?:[A-Za-z][\w.-]*:)?response[\s>]/g) ?? []).length;
    if (responses !== count + 1) throw new Error(`${what} PROPFIND ${BIG_FOLDER}: ${responses} responses, expected ${count + 1}`);
    return reply;
  };
  try {
    await once();
    const times: number[] = [];
    let bytes = 0;
    for (let i = 0; i < runs; i++) {
      const reply = await once();
      times.push(reply.ms);
      bytes = reply.bytes;
    }
    return { medianMs: percentile(times, 50), minMs: Math.min(...times), maxMs: Math.max(...times), runs, responses: count + 1, bytes };
  } finally {
    agent.destroy();
  }
}
