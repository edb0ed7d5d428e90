// The one client used against every server: Node's http/https module with a
// keep-alive Agent, streaming request bodies, response bodies counted (and
// hashed when asked) and then dropped.

import { createHash, type Hash } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/** Where one server keeps the benchmark's files, and how to sign in. */
export interface Target {
  /** Base URL ending in "/", e.g. http://127.0.0.1:PORT/dav/STUDY/bench/ */
  readonly base: URL;
  readonly authorization: string;
  /** PEM to verify an https:// base against. */
  readonly ca?: string;
}

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly bytes: number;
  readonly sha256?: string;
  /** First bytes of the body, for error messages. */
  readonly head: string;
  /** The whole body, with keepBody. */
  readonly body?: Buffer;
  readonly ms: number;
}

export interface SendOptions {
  readonly method: string;
  /** Path relative to the target's base. */
  readonly path: string;
  readonly headers?: Record<string, string>;
  /** A buffer, or a stream of exactly `length` bytes. */
  readonly body?: Buffer | { stream: Readable; length: number };
  readonly hash?: boolean;
  /** Keep the whole response body (for checks on small-to-medium bodies, e.g. a multistatus). */
  readonly keepBody?: boolean;
  readonly agent: HttpAgent;
}

export function basicAuthorization(login: string, password: string): string {
  return `Basic ${Buffer.from(`${login}:${password}`, 'utf8').toString('base64')}`;
}

export function newAgent(target: Target, maxSockets: number): HttpAgent {
  const options = { keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo' as const };
  return target.base.protocol === 'https:'
    ? new HttpsAgent({ ...options, ...(target.ca ? { ca: target.ca, servername: 'localhost' } : {}) })
    : new HttpAgent(options);
}

export function send(target: Target, options: SendOptions): Promise<Reply> {
  const url = new URL(options.path, target.base);
  const headers: Record<string, string> = { Authorization: target.authorization, 'User-Agent': 'vellum-bench', ...options.headers };
  const body = options.body;
  if (body !== undefined) headers['Content-Length'] = String(Buffer.isBuffer(body) ? body.length : body.length);
  else if (options.method === 'PUT') headers['Content-Length'] = '0';
  const make = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const started = performance.now();
  return new Promise<Reply>((resolve, reject) => {
    const req = make(url, { method: options.method, headers, agent: options.agent }, (res) => {
      let bytes = 0;
      let head = '';
      const hash: Hash | undefined = options.hash ? createHash('sha256') : undefined;
      const kept: Buffer[] | undefined = options.keepBody ? [] : undefined;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        kept?.push(chunk);
        hash?.update(chunk);
        if (head.length < 300) head += chunk.subarray(0, 300).toString('latin1');
      });
      res.on('end', () => resolve({
        status: res.statusCode ?? 0, headers: res.headers, bytes, head: head.slice(0, 300),
        ms: performance.now() - started, ...(hash ? { sha256: hash.digest('hex') } : {}), ...(kept ? { body: Buffer.concat(kept) } : {}),
      }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else pipeline(body.stream, req).catch((e: unknown) => { req.destroy(); reject(e); });
  });
}

/** Throws with the status and the start of the body unless the status is one of `ok`. */
export function expectStatus(reply: Reply, ok: readonly number[], what: string): Reply {
  if (!ok.includes(reply.status)) throw new Error(`${what}: HTTP ${reply.status} (expected ${ok.join('/')}): ${reply.head.replace(/\s+/g, ' ').slice(0, 200)}`);
  return reply;
}

export interface LoadOptions {
  readonly concurrency: number;
  /** Requests to measure. */
  readonly requests: number;
  /** Stop measuring after this long even if fewer requests were done. */
  readonly maxSeconds: number;
  /** Unmeasured requests first, to open the connections and warm up both sides. */
  readonly warmup: number;
  /** Makes the i-th request (i counts warm-up requests too) and checks its reply. */
  readonly request: (agent: HttpAgent, i: number) => Promise<Reply>;
}

export interface LoadResult {
  readonly requests: number;
  readonly seconds: number;
  readonly bytes: number;
  readonly latencies: number[];
}

/** `concurrency` connections, each sending its next request as soon as the last one finished. */
export async function runLoad(target: Target, options: LoadOptions): Promise<LoadResult> {
  const agent = newAgent(target, options.concurrency);
  try {
    let next = 0;
    const warm = async () => {
      while (next < options.warmup) await options.request(agent, next++);
    };
    await Promise.all(Array.from({ length: options.concurrency }, warm));
    const latencies: number[] = [];
    let bytes = 0;
    let done = 0;
    const started = performance.now();
    const deadline = started + options.maxSeconds * 1000;
    const worker = async () => {
      while (done + inFlight() < options.requests && performance.now() < deadline) {
        const i = next++;
        active++;
        try {
          const reply = await options.request(agent, i);
          latencies.push(reply.ms);
          bytes += reply.bytes;
          done++;
        } finally {
          active--;
        }
      }
    };
    let active = 0;
    const inFlight = () => active;
    await Promise.all(Array.from({ length: options.concurrency }, worker));
    return { requests: done, seconds: (performance.now() - started) / 1000, bytes, latencies };
  } finally {
    agent.destroy();
  }
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}
