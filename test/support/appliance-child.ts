// The real appliance in a process of its own, for tests that must kill it
// (SIGKILL) and start it again on the same data directory. Started by
// appliance-process.ts as `node test/support/appliance-child.ts CONFIG.json`:
// it loads the configuration file the way `vellum serve` does (secrets come
// from the environment the parent passes), starts the appliance, creates study
// DEMO-001 with the demo role bindings unless it already exists, and then
// prints exactly one JSON line on stdout:
//
//   {"ready":true,"pid":1234,"https":"https://127.0.0.1:PORT","http":"http://127.0.0.1:PORT"}
//
// Everything else (the appliance's log) goes to stderr. SIGTERM or SIGINT stop
// it gracefully (exit 0). It also stops when its stdin closes, so it does not
// outlive the test process that started it, even if that one is killed.

import { isStudyRole, type StudyRole } from '../../src/kernel/index.ts';
import { loadConfigFile } from '../../src/config/index.ts';
import { startAppliance, type Appliance, type Logger } from '../../src/server/index.ts';
import { GROUPS } from '../env/index.ts';
import { STUDY } from './appliance.ts';

const STOP_TIMEOUT_MS = 15_000;

const logger: Logger = {
  info: (message) => process.stderr.write(`${message}\n`),
  error: (message, error) => process.stderr.write(`${error === undefined ? message : `${message}: ${describe(error)}`}\n`),
};

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

let appliance: Appliance | undefined;
let stopping = false;

async function stop(why: string, code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    logger.info(`appliance-child: stopping (${why})`);
    // A stop that hangs must not leave the process behind.
    setTimeout(() => {
      logger.error('appliance-child: graceful stop timed out');
      process.exit(2);
    }, STOP_TIMEOUT_MS).unref();
    try {
      await appliance?.close();
    } catch (e) {
      logger.error('appliance-child: close failed', e);
      process.exit(1);
    }
    process.exit(code);
  }
  return new Promise<never>(() => undefined);
}

process.once('SIGTERM', () => void stop('SIGTERM', 0));
process.once('SIGINT', () => void stop('SIGINT', 0));
// The parent holds our stdin open; when it goes (the parent ended, even by a
// kill), so do we.
process.stdin.on('data', () => undefined);
process.stdin.once('end', () => void stop('parent went away', 0));
process.stdin.once('close', () => void stop('parent went away', 0));
process.stdin.once('error', () => void stop('parent went away', 0));

const configFile = process.argv[2];
if (configFile === undefined) {
  logger.error('usage: node test/support/appliance-child.ts CONFIG.json');
  process.exit(64);
}

try {
  appliance = await startAppliance(loadConfigFile(configFile), logger);
  if (!(await appliance.vault.getStudy(STUDY))) {
    const bindings = Object.values(GROUPS)
      .filter((group): group is typeof group & { role: StudyRole } => isStudyRole(group.role))
      .map((group) => ({ group: group.dn, role: group.role }));
    await appliance.systemSession('test set-up').createStudy({ id: STUDY, title: 'Test study', bindings });
  }
  if (!stopping) process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid, https: appliance.httpsUrl, http: appliance.httpUrl })}\n`);
} catch (e) {
  logger.error('appliance-child: start failed', e);
  await appliance?.close().catch(() => undefined);
  process.exit(1);
}
