import type { FlagSpec, ParsedFlags } from './args.ts';

export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly flags: FlagSpec;
  /** More help, printed after the options (examples, exit statuses). */
  readonly details?: string;
  /** The arguments it takes besides options, by name (e.g. ['FILE']); required unless the name is in brackets ('[FILE]'). */
  readonly operands?: readonly string[];
  /** Resolves to the exit code. */
  run(flags: ParsedFlags, operands: readonly string[]): Promise<number>;
}

/** Commands under one word, e.g. `vellum keys status` and `vellum keys rotate`. */
export interface CommandGroup {
  readonly name: string;
  readonly summary: string;
  readonly subcommands: readonly Command[];
}

export function isGroup(entry: Command | CommandGroup): entry is CommandGroup {
  return 'subcommands' in entry;
}

/** A failure a command reports in one line (and exit status 1), e.g. an error the server answered with. */
export class CommandFailure extends Error {
  /** The error code, when the server sent one. */
  readonly code: string | undefined;

  constructor(message: string, code?: string) {
    super(message);
    this.name = 'CommandFailure';
    this.code = code;
  }
}
