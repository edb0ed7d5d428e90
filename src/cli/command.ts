import type { FlagSpec, ParsedFlags } from './args.ts';

export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly flags: FlagSpec;
  /** Resolves to the exit code. */
  run(flags: ParsedFlags): Promise<number>;
}
