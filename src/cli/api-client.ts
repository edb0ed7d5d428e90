// The CLI as a client of the running appliance's REST API (docs/api.md): the
// appliance holds the database lock, so commands such as `vellum keys rotate`
// and `vellum scrub` ask it over HTTP(S) like any other client, signed in as a
// person (HTTP Basic), and the server decides what that person may do.
//
// Where the appliance is: --url (and --ca for a certificate the system does
// not trust), or --config: the loopback plain-HTTP listener when configured,
// else the HTTPS listener, verified against the appliance's own certificate
// (tls.certFile, or the self-signed one made at first start).

import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
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
}

export async function connect(flags: ParsedFlags): Promise<ApiClient> {
  const target = targetOf(flags);
  if (typeof flags.user !== 'string' || flags.user === '') throw new UsageError('--user LOGIN is needed: the server decides what you may do.');
  const login = flags.user;
  const password = await passwordFor(login, flags);
  const authorization = `Basic ${Buffer.from(`${login}:${password}`, 'utf8').toString('base64')}`;
  return {
    async call(method, path, options = {}) {
      const headers: Record<string, string> = { Authorization: authorization, Accept: 'application/json', 'User-Agent': 'vellum-cli' };
      if (options.reason !== undefined) headers['X-Change-Reason'] = encodeURIComponent(options.reason);
      const reply = await send(target, method, `${API_V1}${path}`, headers);
      let body: unknown;
      try {
        body = JSON.parse(reply.text);
      } catch {
        throw new CommandFailure(`${target.base.origin} answered ${reply.status} without JSON; is that a Vellum appliance?`);
      }
      if (reply.status >= 200 && reply.status < 300) return body as never;
      const error = (body as { error?: { code?: unknown; message?: unknown } }).error;
      const message = typeof error?.message === 'string' ? error.message : `The server answered ${reply.status}.`;
      throw new CommandFailure(message, typeof error?.code === 'string' ? error.code : undefined);
    },
  };
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
  return askPassword(`Password for ${login}: `);
}

/** Reads a line from the terminal without echoing it. */
function askPassword(prompt: string): Promise<string> {
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
          reject(new CommandFailure('No password given.'));
          return;
        }
        if (char === '\u007f' || char === '\b') value = [...value].slice(0, -1).join('');
        else value += char;
      }
    };
    input.on('data', onData);
  });
}

function send(target: Target, method: string, path: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  const { base } = target;
  const options = {
    method, headers, timeout: REQUEST_TIMEOUT_MS,
    host: base.hostname.replace(/^\[|\]$/g, ''), port: base.port || (base.protocol === 'https:' ? 443 : 80),
    path: `${base.pathname.replace(/\/$/, '')}${path}`,
  };
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
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
    req.end();
  });
}
