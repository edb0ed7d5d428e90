// Process plumbing shared by commands: a console logger and signal handling.

import type { Logger } from '../server/index.ts';

export const consoleLogger: Logger = {
  info: (message) => console.log(message),
  warn: (message) => console.warn(`WARNING: ${message}`),
  error: (message, error) => console.error(error === undefined ? message : `${message}: ${describe(error)}`),
};

function describe(error: unknown): string {
  if (error instanceof Error) return error.stack ?? error.message;
  return String(error);
}

/** Resolves on the first SIGINT or SIGTERM; a second one exits at once. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.once('SIGINT', () => process.exit(130));
      process.once('SIGTERM', () => process.exit(143));
      resolve(signal);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
}
