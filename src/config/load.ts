// Loading: read the JSON file, apply VELLUM_* environment overrides, validate
// once, resolve relative paths against the file's folder, read secrets, freeze.

import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { VellumError } from '../kernel/index.ts';
import { validate, type ParsedConfig, type SecretRef } from './schema.ts';

/** The configuration every module receives: validated, secrets resolved, paths absolute, frozen. */
export interface Config {
  readonly source: string;
  readonly dataDir: string;
  readonly listen: ParsedConfig['listen'];
  readonly tls: ParsedConfig['tls'];
  readonly ldap: Omit<ParsedConfig['ldap'], 'bindPassword' | 'caFile'> & { readonly bindPassword: string; readonly caPem?: string };
  readonly hsm: Omit<ParsedConfig['hsm'], 'pin'> & { readonly pin: string };
  readonly access: ParsedConfig['access'];
  readonly auth: ParsedConfig['auth'];
  readonly alerts: ParsedConfig['alerts'];
  readonly limits: ParsedConfig['limits'];
  readonly scrub: ParsedConfig['scrub'];
  readonly audit: ParsedConfig['audit'];
  readonly externalUrl?: string;
  readonly dav: ParsedConfig['dav'];
}

/** Environment variables that override single keys (documented in docs/configuration.md). */
export const ENV_OVERRIDES: Readonly<Record<string, { path: readonly string[]; type: 'string' | 'number' }>> = {
  VELLUM_DATA_DIR: { path: ['dataDir'], type: 'string' },
  VELLUM_HTTPS_HOST: { path: ['listen', 'https', 'host'], type: 'string' },
  VELLUM_HTTPS_PORT: { path: ['listen', 'https', 'port'], type: 'number' },
  VELLUM_HTTP_HOST: { path: ['listen', 'http', 'host'], type: 'string' },
  VELLUM_HTTP_PORT: { path: ['listen', 'http', 'port'], type: 'number' },
  VELLUM_LDAP_URL: { path: ['ldap', 'url'], type: 'string' },
  VELLUM_HSM_LIBRARY: { path: ['hsm', 'library'], type: 'string' },
  VELLUM_HSM_TOKEN_LABEL: { path: ['hsm', 'tokenLabel'], type: 'string' },
  VELLUM_EXTERNAL_URL: { path: ['externalUrl'], type: 'string' },
};

function invalid(source: string, problems: string[]): VellumError {
  return new VellumError('CONFIG_INVALID', `${source}:\n  ${problems.join('\n  ')}`);
}

export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new VellumError('CONFIG_INVALID', `${file}: cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)}).`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw invalid(file, [`not valid JSON: ${(e as Error).message}`]);
  }
  return buildConfig(raw, { source: file, baseDir: dirname(resolve(file)), env });
}

export function buildConfig(raw: unknown, options: { source: string; baseDir: string; env?: NodeJS.ProcessEnv }): Config {
  const env = options.env ?? process.env;
  const withEnv = applyEnvOverrides(raw, env, options.source);
  const result = validate(withEnv);
  if (!result.ok) throw invalid(options.source, result.problems);
  const parsed = result.config;
  const abs = (path: string) => (isAbsolute(path) ? path : resolve(options.baseDir, path));
  const problems: string[] = [];
  const secret = (key: string, ref: SecretRef): string => {
    const value = readSecret(ref, env, abs);
    if (typeof value !== 'string') problems.push(`${key}: ${value.problem}`);
    else if (value.length === 0) problems.push(`${key}: the secret is empty`);
    return typeof value === 'string' ? value : '';
  };
  const bindPassword = secret('ldap.bindPassword', parsed.ldap.bindPassword);
  const pin = secret('hsm.pin', parsed.hsm.pin);
  let caPem: string | undefined;
  if (parsed.ldap.caFile !== undefined) {
    try {
      caPem = readFileSync(abs(parsed.ldap.caFile), 'utf8');
    } catch (e) {
      problems.push(`ldap.caFile: cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
    }
  }
  if (problems.length > 0) throw invalid(options.source, problems);
  const { bindPassword: _bindRef, caFile: _caFile, ...ldap } = parsed.ldap;
  const { pin: _pinRef, ...hsm } = parsed.hsm;
  const tls = {
    ...parsed.tls,
    certFile: parsed.tls.certFile === undefined ? undefined : abs(parsed.tls.certFile),
    keyFile: parsed.tls.keyFile === undefined ? undefined : abs(parsed.tls.keyFile),
  };
  return deepFreeze({
    source: options.source,
    dataDir: abs(parsed.dataDir),
    listen: parsed.listen,
    tls,
    ldap: { ...ldap, bindPassword, ...(caPem === undefined ? {} : { caPem }) },
    hsm: { ...hsm, pin },
    access: parsed.access,
    auth: parsed.auth,
    alerts: parsed.alerts,
    limits: parsed.limits,
    scrub: parsed.scrub,
    audit: parsed.audit,
    ...(parsed.externalUrl === undefined ? {} : { externalUrl: parsed.externalUrl }),
    dav: parsed.dav,
  });
}

function readSecret(ref: SecretRef, env: NodeJS.ProcessEnv, abs: (p: string) => string): string | { problem: string } {
  if ('env' in ref) {
    const value = env[ref.env];
    return value === undefined ? { problem: `environment variable ${ref.env} is not set` } : value;
  }
  try {
    // A trailing newline is what editors and `echo` add; it is never part of a secret.
    return readFileSync(abs(ref.file), 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    return { problem: `secret file ${ref.file} cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})` };
  }
}

function applyEnvOverrides(raw: unknown, env: NodeJS.ProcessEnv, source: string): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  const copy = structuredClone(raw) as Record<string, unknown>;
  for (const [name, { path, type }] of Object.entries(ENV_OVERRIDES)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    let parsed: string | number = value;
    if (type === 'number') {
      // Decimal digits only: Number() would also take " " (0), "0x1BB" and "1e3".
      if (!/^\s*\d+\s*$/.test(value)) throw invalid(source, [`${name}: must be a whole number, got "${value}"`]);
      parsed = Number(value);
    }
    let node = copy;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      node = (typeof next === 'object' && next !== null ? next : (node[key] = {})) as Record<string, unknown>;
    }
    node[path[path.length - 1]!] = parsed;
  }
  return copy;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
