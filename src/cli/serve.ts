// `vellum serve --config FILE`: run the appliance until SIGINT/SIGTERM.

import { loadConfigFile } from '../config/index.ts';
import { UsageError } from './args.ts';
import { DAV_MOUNT, startAppliance } from '../server/index.ts';
import { consoleLogger, untilSignal } from './process.ts';
import type { Command } from './command.ts';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'Run the appliance with a configuration file.',
  flags: { config: { type: 'string', help: 'Configuration file (JSON). See docs/configuration.md.', placeholder: 'FILE' } },
  async run(flags) {
    if (typeof flags.config !== 'string') throw new UsageError('serve needs --config FILE.');
    const config = loadConfigFile(flags.config);
    const appliance = await startAppliance(config, consoleLogger);
    console.log(`WebDAV: ${appliance.httpsUrl}${DAV_MOUNT}/`);
    if (appliance.httpUrl) console.log(`WebDAV (loopback, plain HTTP): ${appliance.httpUrl}${DAV_MOUNT}/`);
    console.log(`Web UI: ${appliance.httpsUrl}/`);
    await untilSignal();
    console.log('Stopping...');
    await appliance.close();
    return 0;
  },
};
