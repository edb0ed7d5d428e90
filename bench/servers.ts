// The three servers the benchmark compares, each started in a temporary
// directory of its own on a free loopback port, each with a stop() that ends
// every process it started:
// - Vellum: bench/vellum-server.ts in a child process, on a fresh slapd +
//   SoftHSM2 environment (test/env), plain-HTTP loopback listener and HTTPS;
// - Apache httpd with mod_dav + mod_dav_fs and Basic auth (htpasswd), from a
//   configuration written here, in the foreground (no system config, no systemd);
// - stock webdav-server v2 on a plain directory (bench/stock-webdav-server.ts).

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import type { ConfigFile } from '../src/config/index.ts';
import { ensurePackages, GROUPS, startTestEnv, type TestEnv } from '../test/env/index.ts';
import { freePort } from '../test/env/slapd.ts';

const run = promisify(execFile);
const REPO = join(import.meta.dirname, '..');
const APACHE_MODULES = '/usr/lib/apache2/modules';

export interface Credentials {
  readonly login: string;
  readonly password: string;
}

export interface RunningServer {
  readonly name: string;
  /** The process whose tree is measured for memory. */
  readonly pid: number;
  /** Base URL of the WebDAV tree the benchmark writes into, ending in "/". */
  readonly http: URL;
  /** Same tree over HTTPS, when the server offers it. */
  readonly https?: URL;
  /** PEM to verify the HTTPS listener against. */
  readonly ca?: string;
  /** Where the server's own output goes. */
  readonly log: string;
  /** Sends a control line to the server (Vellum only) and waits for its JSON answer. */
  control?(command: object): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** A child process whose stdout is JSON lines and whose stderr goes to a log file. */
class Child {
  readonly process: ChildProcess;
  readonly exited: Promise<number | null>;
  readonly #waiters: ((message: Record<string, unknown>) => void)[] = [];
  readonly #log: WriteStream;
  readonly logFile: string;

  constructor(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; logFile: string; jsonStdout: boolean }) {
    this.logFile = options.logFile;
    this.#log = createWriteStream(options.logFile, { flags: 'a' });
    this.process = spawn(command, args, { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.process.stderr!.pipe(this.#log, { end: false });
    this.exited = new Promise((resolve) => this.process.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
    this.process.once('error', (e) => this.#log.write(`spawn failed: ${e.message}\n`));
    const lines = createInterface({ input: this.process.stdout! });
    lines.on('line', (line) => {
      if (!options.jsonStdout || !line.startsWith('{')) {
        this.#log.write(`${line}\n`);
        return;
      }
      const message = JSON.parse(line) as Record<string, unknown>;
      this.#waiters.shift()?.(message);
    });
  }

  /** The next JSON line on stdout; fails if the process ends first or after `timeoutMs`. */
  next(timeoutMs: number, what: string): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what}: no answer within ${timeoutMs / 1000} s (see ${this.logFile})`)), timeoutMs);
      const waiter = (message: Record<string, unknown>) => {
        clearTimeout(timer);
        resolve(message);
      };
      this.#waiters.push(waiter);
      void this.exited.then(async (code) => {
        clearTimeout(timer);
        const index = this.#waiters.indexOf(waiter);
        if (index >= 0) {
          this.#waiters.splice(index, 1);
          reject(new Error(`${what}: the process exited (${code}). Last lines of ${this.logFile}:\n${await tail(this.logFile)}`));
        }
      });
    });
  }

  send(message: object): void {
    this.process.stdin!.write(JSON.stringify(message) + '\n');
  }

  /** SIGTERM (after closing stdin), SIGKILL after `graceMs`; resolves when the process is gone. */
  async stop(graceMs = 15_000): Promise<void> {
    if (this.process.exitCode === null && this.process.signalCode === null && this.process.pid !== undefined) {
      this.process.stdin?.end();
      this.process.kill('SIGTERM');
      const timer = setTimeout(() => this.process.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    await new Promise<void>((resolve) => this.#log.end(resolve));
  }
}

async function tail(file: string, lines = 20): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function nodeArgs(script: string, extra: readonly string[] = []): string[] {
  return [...extra, join(REPO, 'bench', script)];
}

// ---------------------------------------------------------------- Vellum

export interface VellumOptions {
  readonly dir: string;
  readonly study: string;
  readonly folder: string;
  readonly nodeFlags?: readonly string[];
}

/** Writes the configuration and secret files the way `vellum demo` does, for a fresh environment in dir. */
async function writeVellumConfig(dir: string, env: TestEnv): Promise<string> {
  const secrets = join(dir, 'secrets');
  await mkdir(secrets, { recursive: true, mode: 0o700 });
  await writeFile(join(secrets, 'ldap-bind-password'), env.ldap.servicePassword + '\n', { mode: 0o600 });
  await writeFile(join(secrets, 'hsm-pin'), env.hsm.pin + '\n', { mode: 0o600 });
  const config: ConfigFile = {
    dataDir: 'data',
    listen: { https: { host: '127.0.0.1', port: 0 }, http: { host: '127.0.0.1', port: 0 } },
    ldap: {
      url: env.ldap.url,
      bindDn: env.ldap.serviceDn,
      bindPassword: { file: 'secrets/ldap-bind-password' },
      userBase: env.ldap.userBase,
      groupBase: env.ldap.groupBase,
    },
    hsm: { library: env.hsm.library, tokenLabel: env.hsm.tokenLabel, pin: { file: 'secrets/hsm-pin' } },
    access: { administratorGroups: [GROUPS['vellum-administrators'].dn] },
  };
  const file = join(dir, 'vellum.json');
  await writeFile(file, JSON.stringify(config, null, 2) + '\n');
  return file;
}

export async function startVellum(options: VellumOptions): Promise<RunningServer> {
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  const env = await startTestEnv({ dir: join(options.dir, 'env') });
  let child: Child | undefined;
  try {
    const config = await writeVellumConfig(options.dir, env);
    child = new Child(process.execPath, [
      ...nodeArgs('vellum-server.ts', options.nodeFlags), '--config', config, '--study', options.study, '--folder', options.folder,
    ], { logFile: join(options.dir, 'vellum.log'), jsonStdout: true });
    const ready = await child.next(120_000, 'Vellum start');
    const mount = `/dav/${encodeURIComponent(options.study)}/${encodeURIComponent(options.folder)}/`;
    const ca = await readFile(join(options.dir, 'data', 'tls', 'self-signed.crt'), 'utf8');
    const running = child;
    return {
      name: 'Vellum',
      pid: Number(ready.pid),
      http: new URL(mount, String(ready.http)),
      https: new URL(mount, String(ready.https)),
      ca,
      log: running.logFile,
      async control(command) {
        const answer = running.next(60_000, `Vellum ${JSON.stringify(command)}`);
        running.send(command);
        return answer;
      },
      async stop() {
        try {
          await running.stop();
        } finally {
          await env.close();
        }
      },
    };
  } catch (e) {
    await child?.stop();
    await env.close();
    throw e;
  }
}

// ---------------------------------------------------------------- Apache httpd

/** A LoadModule line's module name and file under /usr/lib/apache2/modules. */
export type ApacheModule = readonly [name: string, file: string];

const APACHE_BASE_MODULES: readonly ApacheModule[] = [
  ['mpm_event_module', 'mod_mpm_event.so'],
  ['authz_core_module', 'mod_authz_core.so'],
];

const APACHE_DAV_MODULES: readonly ApacheModule[] = [
  ['authn_core_module', 'mod_authn_core.so'],
  ['authn_file_module', 'mod_authn_file.so'],
  ['authz_user_module', 'mod_authz_user.so'],
  ['auth_basic_module', 'mod_auth_basic.so'],
  ['dav_module', 'mod_dav.so'],
  ['dav_fs_module', 'mod_dav_fs.so'],
];

/** What a private Apache serves: the modules it loads beyond the MPM and authz_core, and its site directives. */
export interface ApacheSite {
  readonly modules: readonly ApacheModule[];
  /** Directives after the common part; `dir` is the server's own directory. */
  readonly directives: (dir: string) => string;
}

function apacheConfig(dir: string, port: number, runAs: { user: string; group: string } | undefined, site: ApacheSite): string {
  return `# Written by bench/servers.ts for one run. Nothing from /etc/apache2.
ServerRoot "${dir}"
ServerName 127.0.0.1
Listen 127.0.0.1:${port}
PidFile "${dir}/run/httpd.pid"
DefaultRuntimeDir "${dir}/run"
Mutex file:${dir}/run default
ErrorLog "${dir}/error.log"
LogLevel warn
${runAs ? `User ${runAs.user}\nGroup ${runAs.group}` : ''}
${[...APACHE_BASE_MODULES, ...site.modules].map(([name, file]) => `LoadModule ${name} "${APACHE_MODULES}/${file}"`).join('\n')}

# Debian's mpm_event.conf, as shipped.
StartServers 2
MinSpareThreads 25
MaxSpareThreads 75
ThreadLimit 64
ThreadsPerChild 25
MaxRequestWorkers 150
MaxConnectionsPerChild 0

# Keep-alive without a per-connection request limit, like Node's http server.
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 5
Timeout 300

<Directory />
  AllowOverride None
  Require all denied
</Directory>
${site.directives(dir)}
`;
}

/** mod_dav + mod_dav_fs on DIR/www/dav with Basic auth against DIR/htpasswd. */
const DAV_SITE: ApacheSite = {
  modules: APACHE_DAV_MODULES,
  directives: (dir) => `# httpd 2.4.54+ caps request bodies at 1 GiB by default; the big PUT is exactly that.
LimitRequestBody 0

DavLockDB "${dir}/run/davlock"
DocumentRoot "${dir}/www"
<Directory "${dir}/www/dav">
  AllowOverride None
  Dav On
  AuthType Basic
  AuthName "bench"
  AuthBasicProvider file
  AuthUserFile "${dir}/htpasswd"
  Require valid-user
</Directory>`,
};

function waitForPort(port: number, timeoutMs: number, exited: Promise<unknown>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let gone = false;
  void exited.then(() => (gone = true));
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (gone) return reject(new Error('Apache exited during start'));
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`Apache did not listen on ${port} within ${timeoutMs / 1000} s`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

export async function apacheVersion(): Promise<string> {
  const { stdout } = await run('/usr/sbin/apache2', ['-v']);
  return /Server version:\s*(.+)/.exec(stdout)?.[1]?.trim() ?? stdout.trim();
}

export async function startApache(options: { dir: string; credentials: Credentials }): Promise<RunningServer> {
  const { dir } = options;
  await mkdir(join(dir, 'www', 'dav'), { recursive: true });
  // apr1-MD5, htpasswd's default: httpd checks it on every request (no credential cache).
  await run('htpasswd', ['-c', '-b', '-m', join(dir, 'htpasswd'), options.credentials.login, options.credentials.password]);
  const server = await startPrivateApache({ dir, site: DAV_SITE, writable: [join(dir, 'www'), join(dir, 'www', 'dav')] });
  return { ...server, http: new URL('/dav/', server.http) };
}

/**
 * Apache httpd from a configuration written here (nothing of /etc/apache2, no
 * systemd), in the foreground, on a loopback port (a free one unless `port`
 * is given). As root it serves as www-data: `writable` are the folders it must
 * write besides its run directory.
 */
export async function startPrivateApache(options: {
  dir: string; site: ApacheSite; port?: number; writable?: readonly string[]; name?: string;
}): Promise<RunningServer> {
  await ensurePackages(['apache2']);
  const { dir } = options;
  await mkdir(join(dir, 'run'), { recursive: true });
  let runAs: { user: string; group: string } | undefined;
  if (process.getuid?.() === 0) {
    runAs = { user: 'www-data', group: 'www-data' };
    const uid = Number((await run('id', ['-u', 'www-data'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'www-data'])).stdout.trim());
    await chmod(dir, 0o755);
    for (const path of [...(options.writable ?? []), join(dir, 'run')]) await chown(path, uid, gid);
    await chmod(join(dir, 'htpasswd'), 0o644).catch(() => undefined);
  }
  let lastError: unknown;
  for (let attempt = 0; attempt < (options.port === undefined ? 3 : 1); attempt++) {
    const port = options.port ?? await freePort();
    const conf = join(dir, 'httpd.conf');
    await writeFile(conf, apacheConfig(dir, port, runAs, options.site));
    const child = new Child('/usr/sbin/apache2', ['-d', dir, '-f', conf, '-DFOREGROUND'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C' }, logFile: join(dir, 'apache.out'), jsonStdout: false,
    });
    try {
      await waitForPort(port, 15_000, child.exited);
      return {
        name: options.name ?? 'Apache',
        pid: child.process.pid!,
        http: new URL(`http://127.0.0.1:${port}/`),
        log: join(dir, 'error.log'),
        stop: () => child.stop(),
      };
    } catch (e) {
      await child.stop();
      lastError = new Error(`${(e as Error).message}. ${await tail(join(dir, 'error.log'))} ${await tail(child.logFile)}`);
    }
  }
  throw lastError;
}

// ---------------------------------------------------------------- stock webdav-server

export async function startStock(options: { dir: string; credentials: Credentials }): Promise<RunningServer> {
  await mkdir(join(options.dir, 'root'), { recursive: true });
  const child = new Child(process.execPath, [...nodeArgs('stock-webdav-server.ts'), '--dir', join(options.dir, 'root'), '--user', options.credentials.login], {
    env: { ...process.env, BENCH_PASSWORD: options.credentials.password }, logFile: join(options.dir, 'stock.log'), jsonStdout: true,
  });
  try {
    const ready = await child.next(30_000, 'stock webdav-server start');
    return {
      name: 'stock',
      pid: Number(ready.pid),
      http: new URL('/', String(ready.http)),
      log: child.logFile,
      stop: () => child.stop(),
    };
  } catch (e) {
    await child.stop();
    throw e;
  }
}
