// HTTP/1.1 spoken by hand over a raw TCP socket, for requests no well-behaved
// client library would send: bytes exactly as written (malformed, oversized,
// trickled, pipelined). Responses are parsed just enough to read their status
// lines, headers and bodies (Content-Length or chunked); 1xx answers are kept
// apart from final ones.

import { connect, type Socket } from 'node:net';

export interface RawResponse {
  readonly status: number;
  /** Header names in lower case; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  readonly text: string;
}

export interface RawExchange {
  /** Final (non-1xx) responses, in order. */
  readonly responses: RawResponse[];
  /** 1xx responses (100 Continue), in order. */
  readonly interim: RawResponse[];
  /** The server closed the connection (or reset it). */
  readonly closed: boolean;
  /** Milliseconds from connecting until the exchange ended. */
  readonly elapsedMs: number;
}

export interface RawOptions {
  /** Stop once this many final responses have arrived (default 1). */
  readonly responses?: number;
  /** Give up (and report what arrived) after this long; default 10 s. */
  readonly timeoutMs?: number;
  /** Writes the request instead of sending `request` at once (e.g. trickled). */
  readonly write?: (socket: Socket) => Promise<void>;
}

/** Host and port of an http:// base URL. */
export function hostPort(base: string): { host: string; port: number } {
  const url = new URL(base);
  return { host: url.hostname, port: Number(url.port) };
}

/**
 * Sends `request` (or lets options.write send it) and collects responses until
 * the wanted number arrived, the server closed the connection, or the timeout.
 */
export function rawExchange(base: string, request: string | Buffer, options: RawOptions = {}): Promise<RawExchange> {
  const wanted = options.responses ?? 1;
  const { host, port } = hostPort(base);
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    let received = Buffer.alloc(0);
    let closed = false;
    let settled = false;
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const { responses, interim } = parseResponses(received);
      socket.destroy();
      resolve({ responses, interim, closed, elapsedMs: Date.now() - started });
    };
    const timer = setTimeout(finish, options.timeoutMs ?? 10_000);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (parseResponses(received).responses.length >= wanted) finish();
    });
    socket.on('error', () => {
      closed = true;
      finish();
    });
    socket.on('close', () => {
      closed = true;
      finish();
    });
    socket.on('connect', () => {
      if (options.write) {
        options.write(socket).catch(() => undefined);
      } else {
        socket.write(request);
      }
    });
  });
}

/** A request head with CRLF line ends and the blank line after the headers. */
export function head(requestLine: string, headers: readonly (readonly [string, string])[]): string {
  return `${requestLine}\r\n${headers.map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n`;
}

/** Complete responses at the start of `data`; an incomplete one at the end is left out. */
export function parseResponses(data: Buffer): { responses: RawResponse[]; interim: RawResponse[] } {
  const responses: RawResponse[] = [];
  const interim: RawResponse[] = [];
  let offset = 0;
  for (;;) {
    const parsed = parseOne(data, offset);
    if (!parsed) break;
    offset = parsed.next;
    (parsed.response.status < 200 ? interim : responses).push(parsed.response);
  }
  return { responses, interim };
}

function parseOne(data: Buffer, offset: number): { response: RawResponse; next: number } | null {
  const end = data.indexOf('\r\n\r\n', offset);
  if (end < 0) return null;
  const lines = data.subarray(offset, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? NaN);
  if (!Number.isInteger(status)) return null;
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  let bodyStart = end + 4;
  if (status < 200 || status === 204 || status === 304) {
    return { response: { status, headers, body: Buffer.alloc(0), text: '' }, next: bodyStart };
  }
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const chunks: Buffer[] = [];
    for (;;) {
      const lineEnd = data.indexOf('\r\n', bodyStart);
      if (lineEnd < 0) return null;
      const size = parseInt(data.subarray(bodyStart, lineEnd).toString('latin1'), 16);
      if (!Number.isFinite(size)) return null;
      const chunkStart = lineEnd + 2;
      if (data.length < chunkStart + size + 2) return null;
      if (size === 0) {
        const trailerEnd = data.indexOf('\r\n', chunkStart);
        if (trailerEnd < 0) return null;
        const body = Buffer.concat(chunks);
        return { response: { status, headers, body, text: body.toString('utf8') }, next: trailerEnd + 2 };
      }
      chunks.push(data.subarray(chunkStart, chunkStart + size));
      bodyStart = chunkStart + size + 2;
    }
  }
  const length = Number(headers['content-length'] ?? 0);
  if (data.length < bodyStart + length) return null;
  const body = data.subarray(bodyStart, bodyStart + length);
  return { response: { status, headers, body, text: body.toString('utf8') }, next: bodyStart + length };
}
