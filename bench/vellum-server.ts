// The Vellum server for the benchmark, as a process of its own: the real
// appliance (startAppliance, as `vellum serve` runs it) from a configuration
// file, plus what `vellum demo` does before serving: a study bound to the demo
// groups, with a folder. There is no way yet to create a study from outside a
// running appliance, so this child does it in-process before it serves.
//
//   node bench/vellum-server.ts --config FILE --study ID --folder NAME
//
// stdout carries one JSON line per event for bench/run.ts:
//   {"ready":true,"pid":N,"http":"http://...","https":"https://..."}
//   {"profile":"FILE"}            (answer to a profile-stop command)
//   {"rss":N,"heapTotal":N,...}   (answer to a memory command: process.memoryUsage())
// stdin takes JSON lines: {"cmd":"memory"}, {"cmd":"profile-start"} and {"cmd":"profile-stop","file":"..."}
// (a CPU profile of just one benchmark case, through the inspector). The
// process stops on SIGINT, SIGTERM or when stdin closes (the runner is gone).
// Appliance logs go to stderr.

import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../src/config/index.ts';
import { isStudyRole, type StudyRole } from '../src/kernel/index.ts';
import { startAppliance, type Logger } from '../src/server/index.ts';
import { GROUPS } from '../test/env/people.ts';

const { values } = parseArgs({
  options: { config: { type: 'string' }, study: { type: 'string', default: 'BENCH-001' }, folder: { type: 'string', default: 'bench' } },
});
if (!values.config) throw new Error('usage: node bench/vellum-server.ts --config FILE [--study ID] [--folder NAME]');

const logger: Logger = {
  info: (message) => process.stderr.write(`[vellum] ${message}\n`),
  error: (message, error) => process.stderr.write(`[vellum] ERROR ${message}${error === undefined ? '' : `: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`}\n`),
};

const appliance = await startAppliance(loadConfigFile(values.config), logger);
let stopping: Promise<void> | undefined;
const stop = (code: number) => {
  stopping ??= appliance.close().catch((e: unknown) => logger.error('close failed', e)).finally(() => process.exit(code));
  return stopping;
};
process.once('SIGINT', () => void stop(130));
process.once('SIGTERM', () => void stop(0));

try {
  const bindings = Object.values(GROUPS)
    .filter((group): group is typeof group & { role: StudyRole } => isStudyRole(group.role))
    .map((group) => ({ group: group.dn, role: group.role }));
  if (!(await appliance.vault.getStudy(values.study))) {
    const system = appliance.systemSession('Benchmark set-up');
    await system.createStudy({ id: values.study, title: 'Benchmark study', bindings });
    await system.makeFolder({ study: values.study, names: [values.folder] });
  }
} catch (e) {
  logger.error('seeding the benchmark study failed', e);
  await stop(1);
}

const inspector = new Session();
let profiling = false;
createInterface({ input: process.stdin })
  .on('line', (line) => {
    void (async () => {
      const message = JSON.parse(line) as { cmd: string; file?: string };
      if (message.cmd === 'profile-start' && !profiling) {
        inspector.connect();
        await inspector.post('Profiler.enable');
        await inspector.post('Profiler.setSamplingInterval', { interval: 200 });
        await inspector.post('Profiler.start');
        profiling = true;
        process.stdout.write(JSON.stringify({ profiling: true }) + '\n');
      } else if (message.cmd === 'memory') {
        process.stdout.write(JSON.stringify(process.memoryUsage()) + '\n');
      } else if (message.cmd === 'profile-stop' && profiling && message.file) {
        const { profile } = await inspector.post('Profiler.stop');
        await inspector.post('Profiler.disable');
        inspector.disconnect();
        profiling = false;
        await writeFile(message.file, JSON.stringify(profile));
        process.stdout.write(JSON.stringify({ profile: message.file }) + '\n');
      }
    })().catch((e: unknown) => logger.error(`control command failed: ${line}`, e));
  })
  .on('close', () => void stop(0));

process.stdout.write(JSON.stringify({ ready: true, pid: process.pid, http: appliance.httpUrl, https: appliance.httpsUrl }) + '\n');
