// Helpers for tests of the REST API and of the CLI commands that use it: JSON
// requests with a demo person's credentials, polling a job, reading the audit
// trail since a point, and damaging a blob file on disk the way a failing
// disk would.

import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditEntry } from '../../src/audit/index.ts';
import { send, STUDY, type Reply, type RequestOptions, type Running } from '../support/appliance.ts';

export interface JsonReply extends Reply {
  /** The parsed body (undefined when it is not JSON). */
  readonly json: any;
}

export interface ApiRequest extends Omit<RequestOptions, 'body'> {
  /** Sent as application/json. */
  readonly json?: unknown;
  /** Sent as is (with the headers given). */
  readonly body?: string | Buffer;
}

/** A request to /api/v1 + path, with sam's credentials unless told otherwise. */
export async function api(running: Running, path: string, options: ApiRequest = {}): Promise<JsonReply> {
  const { json, ...rest } = options;
  const request: RequestOptions = json === undefined
    ? rest
    : { ...rest, body: JSON.stringify(json), headers: { 'Content-Type': 'application/json', ...rest.headers } };
  const reply = await send(running, `/api/v1${path}`, request);
  let parsed: unknown;
  if (/^application\/json/.test(reply.headers['content-type'] ?? '')) parsed = JSON.parse(reply.text);
  return { ...reply, json: parsed };
}

/** Uploads each content in turn as a new version of a file in the study, over WebDAV. */
export async function putVersions(running: Running, path: string, contents: readonly (string | Buffer)[]): Promise<void> {
  for (const body of contents) {
    const reply = await send(running, `/dav/${STUDY}${path.split('/').map(encodeURIComponent).join('/')}`, { method: 'PUT', body });
    if (reply.status !== 201 && reply.status !== 204) throw new Error(`PUT ${path}: ${reply.status} ${reply.text}`);
  }
}

/** Polls until `done` holds for the value, or throws after `ms`. */
export async function poll<T>(read: () => Promise<T>, done: (value: T) => boolean, ms = 60_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > until) throw new Error(`Still waiting after ${ms} ms: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export async function auditSince(running: Running, seq: number): Promise<AuditEntry[]> {
  const entries: AuditEntry[] = [];
  for await (const entry of running.appliance.audit.entries(seq + 1)) entries.push(entry);
  return entries;
}

/** Flips one byte near the end of a blob file (inside the last segment), as bit rot would. */
export async function damageBlob(running: Running, blobId: string): Promise<void> {
  const file = join(running.dataDir, 'blobs', blobId.slice(0, 2), blobId);
  const { size } = await stat(file);
  const handle = await open(file, 'r+');
  try {
    const position = size - 20;
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, position);
    byte[0] = byte[0]! ^ 0x5a;
    await handle.write(byte, 0, 1, position);
  } finally {
    await handle.close();
  }
}
