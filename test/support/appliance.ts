// Starts the real appliance for a test file: a private slapd, a SoftHSM2
// token, LevelDB and blobs in a temporary directory, HTTPS and loopback HTTP
// on free ports, study DEMO-001 bound to the demo groups. Tests talk to it over
// real HTTP(S) with real clients.

import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildConfig, type ConfigFile } from '../../src/config/index.ts';
import { isStudyRole, type StudyRole } from '../../src/kernel/index.ts';
import { startAppliance, type Appliance, type Logger } from '../../src/server/index.ts';
import { GROUPS, PEOPLE, startTestEnv, type TestEnv } from '../env/index.ts';

export const STUDY = 'DEMO-001';
export const run = promisify(execFile);

export interface Running {
  readonly env: TestEnv;
  readonly appliance: Appliance;
  readonly dataDir: string;
  readonly https: string;
  readonly http: string;
  /** PEM of the appliance's self-signed certificate, to verify TLS against. */
  readonly ca: string;
  readonly logs: string[];
  /** Stops the appliance (keeping env) so a test can restart it with other settings. */
  stopAppliance(): Promise<void>;
  close(): Promise<void>;
}

export interface StartOptions {
  readonly config?: (config: ConfigFile) => ConfigFile;
}

/**
 * The configuration of an appliance on a test environment: loopback ports
 * chosen by the system, secrets from the named environment variables.
 */
export function applianceConfig(
  env: TestEnv, dataDir: string, options: { ldapTimeoutMs: number; secretEnv: { ldapBindPassword: string; hsmPin: string } },
): ConfigFile {
  return {
    dataDir,
    listen: { https: { host: '127.0.0.1', port: 0 }, http: { host: '127.0.0.1', port: 0 } },
    ldap: {
      url: env.ldap.url, bindDn: env.ldap.serviceDn, bindPassword: { env: options.secretEnv.ldapBindPassword },
      userBase: env.ldap.userBase, groupBase: env.ldap.groupBase, timeoutMs: options.ldapTimeoutMs,
    },
    hsm: { library: env.hsm.library, tokenLabel: env.hsm.tokenLabel, pin: { env: options.secretEnv.hsmPin } },
    access: { administratorGroups: [GROUPS['vellum-administrators'].dn] },
    // Tests sign Administrators in over Basic with their directory password; the policy's own test sets it.
    // Many tests sign in from the one loopback address: the rate limit has its own test.
    auth: { appPasswords: { directoryPassword: 'allowed' }, webSessions: { signInsPerMinute: 1000 } },
  };
}

export async function startRunning(options: StartOptions = {}): Promise<Running> {
  const env = await startTestEnv({});
  const dataDir = join(env.dir, 'data');
  const logs: string[] = [];
  const logger: Logger = { info: (m) => logs.push(m), error: (m, e) => logs.push(`${m}: ${String(e)}`) };
  try {
    let file = applianceConfig(env, dataDir, { ldapTimeoutMs: 2000, secretEnv: { ldapBindPassword: 'TEST_LDAP_BIND_PASSWORD', hsmPin: 'TEST_HSM_PIN' } });
    if (options.config) file = options.config(file);
    const config = buildConfig(file, {
      source: 'test config', baseDir: env.dir,
      env: { TEST_LDAP_BIND_PASSWORD: env.ldap.servicePassword, TEST_HSM_PIN: env.hsm.pin },
    });
    const appliance = await startAppliance(config, logger);
    const bindings = Object.values(GROUPS)
      .filter((group): group is typeof group & { role: StudyRole } => isStudyRole(group.role))
      .map((group) => ({ group: group.dn, role: group.role }));
    const system = appliance.systemSession('test set-up');
    await system.createStudy({ id: STUDY, title: 'Test study', bindings });
    const ca = await readFile(join(dataDir, 'tls', 'self-signed.crt'), 'utf8');
    let stopped = false;
    return {
      env, appliance, dataDir, ca, logs,
      https: appliance.httpsUrl,
      http: appliance.httpUrl!,
      async stopAppliance() {
        stopped = true;
        await appliance.close();
      },
      async close() {
        if (!stopped) await appliance.close();
        await env.close();
      },
    };
  } catch (e) {
    await env.close();
    throw e;
  }
}

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly text: string;
}

export interface RequestOptions {
  readonly method?: string;
  readonly user?: keyof typeof PEOPLE | { login: string; password: string } | null;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
}

/** One HTTP(S) request with Basic credentials of a demo person (or none). */
export function send(running: Running, path: string, options: RequestOptions = {}, over: 'https' | 'http' = 'https'): Promise<Reply> {
  const base = new URL(over === 'https' ? running.https : running.http);
  const headers: Record<string, string> = { ...options.headers };
  const user = options.user === undefined ? 'sam' : options.user;
  if (user !== null) {
    const { login, password } = typeof user === 'string' ? PEOPLE[user] : user;
    headers.Authorization = `Basic ${Buffer.from(`${login}:${password}`, 'utf8').toString('base64')}`;
  }
  if (options.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(options.body));
  return new Promise((resolve, reject) => {
    const make = over === 'https' ? httpsRequest : httpRequest;
    const req = make({ host: base.hostname, port: base.port, path, method: options.method ?? 'GET', headers, ca: running.ca, servername: 'localhost' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

export function basicAuth(login: string, password: string): string {
  return `Basic ${Buffer.from(`${login}:${password}`, 'utf8').toString('base64')}`;
}
