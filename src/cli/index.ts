// cli: the `vellum` command. Owns argument parsing, help texts and exit codes;
// each subcommand composes server/ and config/, or is a client of the running
// appliance's REST API (keys, scrub). Commands are one word (`serve`) or a
// group and a word (`keys rotate`).

import { describeFlags, parseFlags, UsageError } from './args.ts';
import { CommandFailure, isGroup, type Command, type CommandGroup } from './command.ts';
import { demoCommand } from './demo.ts';
import { auditCommands } from './audit.ts';
import { keysCommands } from './keys.ts';
import { scrubCommand } from './scrub.ts';
import { serveCommand } from './serve.ts';
import { isVellumError } from '../kernel/index.ts';
import { PRODUCT } from '../server/index.ts';

const COMMANDS: readonly (Command | CommandGroup)[] = [serveCommand, demoCommand, keysCommands, scrubCommand, auditCommands];

/** A command with the words that name it, e.g. ['keys', 'rotate']. */
interface Named {
  readonly words: readonly string[];
  readonly command: Command;
}

const ALL: readonly Named[] = COMMANDS.flatMap((entry) => (isGroup(entry)
  ? entry.subcommands.map((command) => ({ words: [entry.name, command.name], command }))
  : [{ words: [entry.name], command: entry }]));

const isHelp = (arg: string | undefined) => arg === '--help' || arg === '-h';

function usage(): string {
  return [
    `${PRODUCT.name} ${PRODUCT.version}: a file server for clinical-trial teams under 21 CFR Part 11.`,
    '',
    'Usage: vellum COMMAND [options]',
    '',
    'Commands:',
    ...ALL.map(({ words, command }) => `  ${words.join(' ').padEnd(14)}${command.summary}`),
    '',
    'Run "vellum COMMAND --help" for the options of a command.',
  ].join('\n');
}

function groupHelp(group: CommandGroup): string {
  return [
    `Usage: vellum ${group.name} SUBCOMMAND [options]`,
    '',
    group.summary,
    '',
    'Subcommands:',
    ...group.subcommands.map((command) => `  ${command.name.padEnd(10)}${command.summary}`),
    '',
    `Run "vellum ${group.name} SUBCOMMAND --help" for its options.`,
  ].join('\n');
}

function commandHelp({ words, command }: Named): string {
  return [
    `Usage: vellum ${[...words, ...(command.operands ?? [])].join(' ')} [options]`, '', command.summary, '', 'Options:',
    describeFlags(command.flags), '  --help'.padEnd(28) + 'Show this help.',
    ...(command.details ? ['', command.details] : []),
  ].join('\n');
}

/** The command named by the first words of argv, and the arguments after them; or help text and an exit code. */
function resolve(argv: readonly string[]): { named: Named; rest: readonly string[] } | { text: string; code: number } {
  const [name, ...rest] = argv;
  const entry = COMMANDS.find((candidate) => candidate.name === name);
  if (!entry) return { text: `Unknown command "${name}".\n\n${usage()}`, code: 2 };
  if (!isGroup(entry)) return { named: { words: [entry.name], command: entry }, rest };
  const [sub, ...subRest] = rest;
  if (sub === undefined || isHelp(sub)) return { text: groupHelp(entry), code: sub === undefined ? 2 : 0 };
  const command = entry.subcommands.find((candidate) => candidate.name === sub);
  if (!command) return { text: `Unknown command "${entry.name} ${sub}".\n\n${groupHelp(entry)}`, code: 2 };
  return { named: { words: [entry.name, command.name], command }, rest: subRest };
}

export async function runCli(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || isHelp(name)) {
    console.log(usage());
    return 0;
  }
  if (name === 'help') {
    if (rest.length > 0) return runCli([...rest, '--help']);
    console.log(usage());
    return 0;
  }
  if (name === '--version') {
    console.log(PRODUCT.version);
    return 0;
  }
  const resolved = resolve(argv);
  if ('text' in resolved) {
    if (resolved.code === 0) console.log(resolved.text);
    else console.error(resolved.text);
    return resolved.code;
  }
  const { named, rest: args } = resolved;
  if (args.some(isHelp)) {
    console.log(commandHelp(named));
    return 0;
  }
  const label = `vellum ${named.words.join(' ')}`;
  try {
    const operands: string[] = [];
    const flags = parseFlags(args, named.command.flags, operands, named.command.operands?.length);
    const missing = (named.command.operands?.slice(operands.length) ?? []).filter((name) => !name.startsWith('['));
    if (missing.length > 0) throw new UsageError(`${missing.join(' ')} is needed.`);
    return await named.command.run(flags, operands);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`${e.message}\n\n${commandHelp(named)}`);
      return 2;
    }
    if (isVellumError(e) || e instanceof CommandFailure) {
      console.error(`${label}: ${e.message}${e.code ? ` [${e.code}]` : ''}`);
      return 1;
    }
    throw e;
  }
}
