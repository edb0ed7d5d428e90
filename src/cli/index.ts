// cli: the `vellum` command. Owns argument parsing, help texts and exit codes;
// each subcommand composes server/ and config/.

import { describeFlags, parseFlags, UsageError } from './args.ts';
import type { Command } from './command.ts';
import { demoCommand } from './demo.ts';
import { serveCommand } from './serve.ts';
import { isVellumError } from '../kernel/index.ts';
import { PRODUCT } from '../server/index.ts';

const COMMANDS: readonly Command[] = [serveCommand, demoCommand];

function usage(): string {
  return [
    `${PRODUCT.name} ${PRODUCT.version}: a file server for clinical-trial teams under 21 CFR Part 11.`,
    '',
    'Usage: vellum COMMAND [options]',
    '',
    'Commands:',
    ...COMMANDS.map((command) => `  ${command.name.padEnd(10)}${command.summary}`),
    '',
    'Run "vellum COMMAND --help" for the options of a command.',
  ].join('\n');
}

function commandHelp(command: Command): string {
  return [`Usage: vellum ${command.name} [options]`, '', command.summary, '', 'Options:', describeFlags(command.flags), '  --help'.padEnd(28) + 'Show this help.'].join('\n');
}

export async function runCli(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? COMMANDS.find((command) => command.name === rest[0]) : undefined;
    console.log(topic ? commandHelp(topic) : usage());
    return 0;
  }
  if (name === '--version') {
    console.log(PRODUCT.version);
    return 0;
  }
  const command = COMMANDS.find((candidate) => candidate.name === name);
  if (!command) {
    console.error(`Unknown command "${name}".\n\n${usage()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(commandHelp(command));
    return 0;
  }
  try {
    return await command.run(parseFlags(rest, command.flags));
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`${e.message}\n\n${commandHelp(command)}`);
      return 2;
    }
    if (isVellumError(e)) {
      console.error(`vellum ${command.name}: ${e.message} [${e.code}]`);
      return 1;
    }
    throw e;
  }
}
