// The real appliance as a child process (appliance-child.ts), for tests that
// kill it with a signal and start it again on the same data directory. The
// test owns the environment (slapd and the SoftHSM2 token from startTestEnv)
// and keeps it running across kills; each start writes a configuration file
// that points at it, the way the demo does, with the secrets passed in the
// child's environment rather than written to disk.
//
// Every child still running is killed when the test process exits;
// killApplianceProcesses() ends them from an after.always hook. Should the test
// process itself be killed, a child sees its stdin close and stops by itself
// (unless it is frozen with SIGSTOP at that moment).

import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { ConfigFile } from '../../src/config/index.ts';
import type { TestEnv } from '../env/index.ts';
import { applianceConfig } from './appliance.ts';

export { STUDY } from './appliance.ts';

const CHILD = fileURLToPath(new URL('./appliance-child.ts', import.meta.url));
const READY_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;
const LOG_LINES_KEPT = 2000;

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface ApplianceProcessOptions {
  readonly env: TestEnv;
  /** The appliance's data directory; reuse it to restart on the same state. */
  readonly dataDir: string;
  /** Changes to the configuration before it is written. */
  readonly config?: (config: ConfigFile) => ConfigFile;
  /** Receives each line the child writes to stderr (its log). */
  readonly log?: (line: string) => void;
}

export interface ApplianceProcess {
  readonly pid: number;
  readonly dataDir: string;
  /** http://127.0.0.1:PORT (loopback plain HTTP) */
  readonly http: string;
  /** https://127.0.0.1:PORT */
  readonly https: string;
  /** PEM of the appliance's self-signed certificate. */
  readonly ca: string;
  /** The child's log (stderr), the latest lines. */
  readonly logs: readonly string[];
  /** Sends a signal at once (synchronously): SIGKILL is the crash, SIGSTOP freezes it first. */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves when the process has exited (at once if it has). */
  waitForExit(): Promise<Exit>;
  /** Graceful stop (SIGTERM); rejects unless the child exits with code 0. */
  stop(): Promise<Exit>;
}

const live = new Set<ChildProcess>();

process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** SIGKILLs every appliance process still running and waits for them to go. */
export async function killApplianceProcesses(): Promise<void> {
  await Promise.all([...live].map((child) => {
    const exited = exitOf(child);
    child.kill('SIGKILL');
    return exited;
  }));
}

function exitOf(child: ChildProcess): Promise<Exit> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode as NodeJS.Signals | null });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Writes the configuration file for dataDir next to it and returns its path. */
async function writeConfig(options: ApplianceProcessOptions): Promise<string> {
  const { env, dataDir } = options;
  let config = applianceConfig(env, dataDir, {
    ldapTimeoutMs: 10_000, secretEnv: { ldapBindPassword: 'VELLUM_TEST_LDAP_BIND_PASSWORD', hsmPin: 'VELLUM_TEST_HSM_PIN' },
  });
  if (options.config) config = options.config(config);
  const file = join(dirname(dataDir), `${basename(dataDir)}.appliance.json`);
  await writeFile(file, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
  return file;
}

export async function startApplianceProcess(options: ApplianceProcessOptions): Promise<ApplianceProcess> {
  const { env, dataDir } = options;
  const configFile = await writeConfig(options);
  // VELLUM_* overrides from the caller's environment must not change the configuration written.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('VELLUM_')));
  const child = spawn(process.execPath, [CHILD, configFile], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: {
      ...inherited,
      SOFTHSM2_CONF: env.hsm.conf,
      VELLUM_TEST_LDAP_BIND_PASSWORD: env.ldap.servicePassword,
      VELLUM_TEST_HSM_PIN: env.hsm.pin,
    },
  });
  live.add(child);
  const exited = exitOf(child);
  void exited.then(() => live.delete(child));
  // Writes to a dead child's stdin must not crash the test.
  child.stdin?.on('error', () => undefined);

  const logs: string[] = [];
  child.on('error', (e) => logs.push(`appliance-process: ${e.message}`));
  createInterface({ input: child.stderr! }).on('line', (line) => {
    logs.push(line);
    if (logs.length > LOG_LINES_KEPT) logs.shift();
    options.log?.(line);
  });

  const ready = await new Promise<{ https: string; http: string }>((resolve, reject) => {
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      // Give stderr a moment to drain so the error shows why.
      void exited.then(() => setTimeout(() => reject(new Error(`${why}\n--- appliance log ---\n${logs.slice(-40).join('\n')}`)), 50));
    };
    const timer = setTimeout(() => fail(`the appliance did not report ready within ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => {
      try {
        const message = JSON.parse(line) as { ready?: boolean; https?: string; http?: string | null };
        if (message.ready !== true || typeof message.https !== 'string' || typeof message.http !== 'string') throw new Error('not a ready line');
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ https: message.https, http: message.http });
      } catch {
        fail(`unexpected output from the appliance: ${line}`);
      }
    });
    void exited.then((exit) => fail(`the appliance exited before it was ready (code ${exit.code}, signal ${exit.signal})`));
  });

  const ca = await readFile(join(dataDir, 'tls', 'self-signed.crt'), 'utf8');
  return {
    pid: child.pid!,
    dataDir,
    http: ready.http,
    https: ready.https,
    ca,
    logs,
    kill(signal = 'SIGKILL') {
      child.kill(signal);
    },
    waitForExit: () => exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        child.kill('SIGCONT'); // in case it was frozen
      }
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS)));
      const exit = await Promise.race([exited, timeout]);
      clearTimeout(timer);
      if (exit === 'timeout') {
        child.kill('SIGKILL');
        await exited;
        throw new Error(`the appliance did not stop within ${STOP_TIMEOUT_MS} ms\n--- appliance log ---\n${logs.slice(-40).join('\n')}`);
      }
      if (exit.code !== 0) {
        throw new Error(`the appliance stopped with code ${exit.code}, signal ${exit.signal}\n--- appliance log ---\n${logs.slice(-40).join('\n')}`);
      }
      return exit;
    },
  };
}
