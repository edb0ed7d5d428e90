// The CLI as a client of the running appliance's REST API (docs/api.md): the
// appliance holds the database lock, so commands such as `vellum keys rotate`
// and `vellum scrub` ask it over HTTP(S) like any other client, signed in as a
// person (HTTP Basic), and the server decides what that person may do.
//
// People who must use a second factor (Administrators, by default) may not use
// their directory password over Basic (APP_PASSWORD_REQUIRED). With an app
// password in its place Basic works as before; with the directory password the
// client signs in the way the web UI does instead: a web session, a code from
// the authenticator app (VELLUM_TOTP_CODE, or asked for on the terminal), and
// on a terminal a first enrolment if there is none yet. It signs out at close().
//
// Where the appliance is: --url (and --ca for a certificate the system does
// not trust), or --config: the loopback plain-HTTP listener when configured,
// else the HTTPS listener, verified against the appliance's own certificate
// (tls.certFile, or the self-signed one made at first start).

import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { loadConfigFile, type Config } from '../config/index.ts';
import { isVellumError } from '../kernel/index.ts';
import { UsageError, type FlagSpec, type ParsedFlags } from './args.ts';
import { CommandFailure } from './command.ts';

export const API_V1 = '/api/v1';

/** The options every API client command takes. */
export const CONNECTION_FLAGS: FlagSpec = {
  config: { type: 'string', help: 'The appliance\'s configuration file: where it listens and its certificate.', placeholder: 'FILE' },
  url: { type: 'string', help: 'The appliance\'s address instead, e.g. https://vellum.example.org:8443.', placeholder: 'URL' },
  ca: { type: 'string', help: 'With --url: the CA certificate (PEM) to verify it with.', placeholder: 'FILE' },
  user: { type: 'string', help: 'Your login. Password: VELLUM_PASSWORD, --password-file, or asked for.', placeholder: 'LOGIN' },
  'password-file': { type: 'string', help: 'Read the password from this file (first line).', placeholder: 'FILE' },
};

export const CONNECTION_HELP = [
  'The appliance must be running: these commands use its REST API (docs/api.md) and',
  'act as the person signed in, so the server decides (Administrators only).',
].join('\n');

/** Where the API is and how to trust it. */
interface Target {
  readonly base: URL;
  /** PEM to verify the server's certificate with; undefined: the system's CAs. */
  readonly ca?: string;
  /** Name to check the certificate for, when it differs from the host connected to. */
  readonly servername?: string;
}

const REQUEST_TIMEOUT_MS = 60_000;
const LOOPBACK = (host: string) => host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);

export interface ApiClient {
  /** The JSON answer of a 2xx; anything else throws CommandFailure with the server's message and code. */
  call<T>(method: 'GET' | 'POST', path: string, options?: { reason?: string }): Promise<T>;
  /**
   * A GET whose 2xx body is streamed into sink (a download), with the bytes so
   * far reported to onBytes; anything else throws as call() does. Answers the
   * response headers.
   */
  download(path: string, sink: Writable, onBytes?: (bytes: number) => void): Promise<Record<string, string | string[] | undefined>>;
  /** Signs out of the web session the client may have opened. Never throws. */
  close(): Promise<void>;
}

type Method = 'GET' | 'POST' | 'DELETE';

interface WebSessionView {
  readonly state: 'complete' | 'second-factor' | 'enrolment';
  readonly csrfToken: string;
}

export async function connect(flags: ParsedFlags): Promise<ApiClient> {
  const target = targetOf(flags);
  if (typeof flags.user !== 'string' || flags.user === '') throw new UsageError('--user LOGIN is needed: the server decides what you may do.');
  const login = flags.user;
  const password = await passwordFor(login, flags);
  let credentials: Record<string, string> = { Authorization: `Basic ${Buffer.from(`${login}:${password}`, 'utf8').toString('base64')}` };
  let inWebSession = false;

  /** One request; a 2xx answers its JSON (null for 204), anything else throws with the server's message and code. */
  async function exchange<T>(method: Method, path: string, options: { reason?: string; json?: unknown; sink?: Sink } = {}): Promise<{ body: T; setCookie: string[]; headers: IncomingMessage['headers'] }> {
    const headers: Record<string, string> = { ...credentials, Accept: options.sink ? '*/*' : 'application/json', 'User-Agent': 'vellum-cli' };
    if (options.reason !== undefined) headers['X-Change-Reason'] = encodeURIComponent(options.reason);
    const payload = options.json === undefined ? undefined : JSON.stringify(options.json);
    if (payload !== undefined) headers['Content-Type'] = 'application/json';
    const reply = await send(target, method, `${API_V1}${path}`, headers, payload, options.sink);
    if (reply.status === 204 || reply.streamed) return { body: null as T, setCookie: reply.setCookie, headers: reply.headers };
    let body: unknown;
    try {
      body = JSON.parse(reply.text);
    } catch {
      throw new CommandFailure(`${target.base.origin} answered ${reply.status} without JSON; is that a Vellum appliance?`);
    }
    if (reply.status >= 200 && reply.status < 300) return { body: body as T, setCookie: reply.setCookie, headers: reply.headers };
    const error = (body as { error?: { code?: unknown; message?: unknown } }).error;
    const message = typeof error?.message === 'string' ? error.message : `The server answered ${reply.status}.`;
    throw new CommandFailure(message, typeof error?.code === 'string' ? error.code : undefined);
  }

  /** Signs in as the web UI does: password, then a second factor (enrolling first on a terminal if need be). */
  async function openWebSession(): Promise<void> {
    credentials = {};
    const started = await exchange<WebSessionView>('POST', '/session', { json: { login, password } });
    const cookie = started.setCookie.map((header) => header.split(';', 1)[0]!).find((pair) => /^[^=]+=.+/.test(pair));
    if (cookie === undefined) throw new CommandFailure('The appliance opened no web session (no cookie in its answer).');
    credentials = { Cookie: cookie, 'X-CSRF-Token': started.body.csrfToken };
    inWebSession = true;
    if (started.body.state === 'enrolment') await enrol();
    else if (started.body.state === 'second-factor') {
      const code = await secondFactorCode('Code from your authenticator app (or a recovery code): ');
      await exchange('POST', '/session/second-factor', { json: /^\d{6,8}$/.test(code) ? { code } : { recoveryCode: code } });
    }
  }

  async function enrol(): Promise<void> {
    if (!process.stdin.isTTY) {
      throw new CommandFailure(`${login} must set up a second factor before signing in here: run this command once on a terminal (or enrol in the web UI), or use an app password.`, 'MFA_REQUIRED');
    }
    const enrolment = await exchange<{ uri: string; secret: string }>('POST', '/session/enrolment');
    process.stderr.write(`${login} has no second factor yet. Add this key to your authenticator app:\n  ${enrolment.body.secret}\n  (${enrolment.body.uri})\n`);
    const code = await secondFactorCode('Then type the code it shows: ');
    const confirmed = await exchange<{ recoveryCodes: string[] }>('POST', '/session/enrolment/confirm', { json: { code } });
    process.stderr.write(`Recovery codes (each works once in place of a code; keep them safe, they are not shown again):\n${confirmed.body.recoveryCodes.map((c) => `  ${c}`).join('\n')}\n`);
  }

  async function secondFactorCode(prompt: string): Promise<string> {
    const fromEnv = process.env.VELLUM_TOTP_CODE;
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv.trim();
    if (!process.stdin.isTTY) throw new CommandFailure(`${login} signs in with a second factor: set VELLUM_TOTP_CODE, run this on a terminal, or use an app password.`, 'MFA_REQUIRED');
    return (await askHidden(prompt)).trim();
  }

  /** One exchange; when the directory password is refused over Basic, once more through a web session. */
  async function withFallback<T>(method: Method, path: string, options: { reason?: string; sink?: Sink }) {
    try {
      return await exchange<T>(method, path, options);
    } catch (e) {
      if (inWebSession || !(e instanceof CommandFailure) || e.code !== 'APP_PASSWORD_REQUIRED') throw e;
      await openWebSession();
      return exchange<T>(method, path, options);
    }
  }

  return {
    call: async <T>(method: 'GET' | 'POST', path: string, options: { reason?: string } = {}) => (await withFallback<T>(method, path, options)).body,
    download: async (path, sink, onBytes) => (await withFallback('GET', path, { sink: { to: sink, ...(onBytes ? { onBytes } : {}) } })).headers,
    async close() {
      if (!inWebSession) return;
      inWebSession = false;
      await exchange('DELETE', '/session').catch(() => undefined);
    },
  };
}

/** Connects, runs work with the client, and signs out of any web session it opened, also when work fails. */
export async function withClient<T>(flags: ParsedFlags, work: (client: ApiClient) => Promise<T>): Promise<T> {
  const client = await connect(flags);
  try {
    return await work(client);
  } finally {
    await client.close();
  }
}

function targetOf(flags: ParsedFlags): Target {
  const { config, url, ca } = flags;
  if (typeof url === 'string') {
    if (typeof config === 'string') throw new UsageError('Give --config or --url, not both.');
    let base: URL;
    try {
      base = new URL(url);
    } catch {
      throw new UsageError(`--url "${url}" is not a URL.`);
    }
    if (base.protocol === 'http:' && !LOOPBACK(base.hostname.replace(/^\[|\]$/g, ''))) {
      throw new UsageError('Plain http:// sends your password in the clear; it is for the loopback listener only. Use https://.');
    }
    if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new UsageError('--url must be an https:// (or loopback http://) URL.');
    return { base, ...(typeof ca === 'string' ? { ca: readPem(ca, '--ca') } : {}) };
  }
  if (typeof ca === 'string') throw new UsageError('--ca goes with --url; with --config the appliance\'s own certificate is used.');
  if (typeof config !== 'string') throw new UsageError('Say where the appliance is: --config FILE or --url URL.');
  let settings: Config;
  try {
    settings = loadConfigFile(config);
  } catch (e) {
    // The file is loaded whole, secrets included, which an operator's own account may not read.
    if (!isVellumError(e, 'CONFIG_INVALID')) throw e;
    throw new CommandFailure(`${e.message}\nOr say where the appliance is with --url (and --ca).`, e.code);
  }
  const { http, https } = settings.listen;
  if (http) return { base: new URL(`http://${hostForUrl(http.host)}:${http.port}`) };
  const host = https.host === '0.0.0.0' || https.host === '::' ? '127.0.0.1' : https.host;
  const certFile = settings.tls.certFile ?? join(settings.dataDir, 'tls', 'self-signed.crt');
  const pem = readPem(certFile, 'the appliance\'s certificate');
  return { base: new URL(`https://${hostForUrl(host)}:${https.port}`), ca: pem, ...servernameFor(pem, host) };
}

function hostForUrl(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}

/**
 * A certificate from a CA names the server's public name, not the address the
 * CLI connects to on this machine: check it for its own first DNS name then.
 */
function servernameFor(pem: string, host: string): { servername?: string } {
  const certificate = new X509Certificate(pem);
  if (isIP(host) ? certificate.checkIP(host) : certificate.checkHost(host)) return {};
  const dns = (certificate.subjectAltName ?? '').split(', ').find((name) => name.startsWith('DNS:'))?.slice(4);
  return dns === undefined ? {} : { servername: dns };
}

function readPem(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new CommandFailure(`Cannot read ${what} ${file} (${(e as NodeJS.ErrnoException).code ?? String(e)}).`);
  }
}

async function passwordFor(login: string, flags: ParsedFlags): Promise<string> {
  const fromEnv = process.env.VELLUM_PASSWORD;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const file = flags['password-file'];
  if (typeof file === 'string') {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new CommandFailure(`Cannot read the password file ${file} (${(e as NodeJS.ErrnoException).code ?? String(e)}).`);
    }
    return text.split(/\r?\n/, 1)[0]!;
  }
  if (!process.stdin.isTTY) {
    throw new CommandFailure('No password: set VELLUM_PASSWORD, give --password-file FILE, or run this on a terminal to be asked for it.');
  }
  return askHidden(`Password for ${login}: `);
}

/** Reads a line from the terminal without echoing it. */
function askHidden(prompt: string): Promise<string> {
  const input = process.stdin;
  process.stderr.write(prompt);
  input.setRawMode(true);
  input.setEncoding('utf8');
  input.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const stop = () => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      process.stderr.write('\n');
    };
    const onData = (chunk: string) => {
      for (const char of chunk) {
        if (char === '\r' || char === '\n') {
          stop();
          resolve(value);
          return;
        }
        if (char === '\u0003' || char === '\u0004') {
          stop();
          reject(new CommandFailure('Nothing given.'));
          return;
        }
        if (char === '\u007f' || char === '\b') value = [...value].slice(0, -1).join('');
        else value += char;
      }
    };
    input.on('data', onData);
  });
}

/** Where a download's 2xx body goes. */
interface Sink {
  readonly to: Writable;
  readonly onBytes?: (bytes: number) => void;
}

interface Answer {
  readonly status: number;
  readonly text: string;
  readonly setCookie: string[];
  readonly headers: IncomingMessage['headers'];
  /** The body went into the sink. */
  readonly streamed: boolean;
}

function send(target: Target, method: string, path: string, headers: Record<string, string>, body?: string, sink?: Sink): Promise<Answer> {
  const { base } = target;
  const options = {
    method, headers, timeout: REQUEST_TIMEOUT_MS,
    host: base.hostname.replace(/^\[|\]$/g, ''), port: base.port || (base.protocol === 'https:' ? 443 : 80),
    path: `${base.pathname.replace(/\/$/, '')}${path}`,
  };
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      const answer = { status, setCookie: res.headers['set-cookie'] ?? [], headers: res.headers };
      if (sink && status >= 200 && status < 300) {
        let bytes = 0;
        res.on('data', (chunk: Buffer) => sink.onBytes?.((bytes += chunk.length)));
        // A cut connection ends the body early: the caller's file is then short, and it says so.
        res.on('aborted', () => reject(new CommandFailure(`The appliance at ${base.origin} cut the download off after ${bytes} bytes.`)));
        pipeline(res, sink.to).then(() => resolve({ ...answer, text: '', streamed: true }), (e: Error) => reject(new CommandFailure(`The download failed: ${e.message}.`)));
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ ...answer, text: Buffer.concat(chunks).toString('utf8'), streamed: false }));
      res.on('error', reject);
    };
    const req = base.protocol === 'https:'
      ? httpsRequest({
        ...options,
        ...(target.ca === undefined ? {} : { ca: target.ca, allowPartialTrustChain: true }),
        ...(target.servername === undefined ? {} : { servername: target.servername }),
      }, onResponse)
      : httpRequest(options, onResponse);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS / 1000} s`)));
    req.on('error', (e: Error) => reject(new CommandFailure(`Cannot reach the appliance at ${base.origin}: ${e.message}.`)));
    req.end(body);
  });
}
