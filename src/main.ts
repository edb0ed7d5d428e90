// Entry point: hands argv to the CLI and turns its result into the exit code.

import { runCli } from './cli/index.ts';

runCli(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    process.exit(1);
  },
);
