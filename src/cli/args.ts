// A small, strict argv parser: --flag, --key value, --key=value. Unknown flags
// are errors, so a typo never silently does something else.

export interface FlagSpec {
  readonly [name: string]: { readonly type: 'boolean' | 'string' | 'number'; readonly help: string; readonly placeholder?: string };
}

export type ParsedFlags = Record<string, string | number | boolean | undefined>;

export class UsageError extends Error {}

/** `operands` collects up to `maxOperands` arguments that are not options (e.g. a FILE), in order. */
export function parseFlags(argv: readonly string[], spec: FlagSpec, operands: string[] = [], maxOperands = 0): ParsedFlags {
  const out: ParsedFlags = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--') && operands.length < maxOperands) {
      operands.push(arg);
      continue;
    }
    if (!arg.startsWith('--')) throw new UsageError(`Unexpected argument "${arg}".`);
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const flag = spec[name];
    if (!flag) throw new UsageError(`Unknown option --${name}.`);
    if (flag.type === 'boolean') {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value.`);
      out[name] = true;
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new UsageError(`--${name} needs a value.`);
    if (flag.type === 'number') {
      const number = Number(value);
      if (!Number.isInteger(number) || number < 0) throw new UsageError(`--${name} must be a whole number, got "${value}".`);
      out[name] = number;
    } else {
      out[name] = value;
    }
  }
  return out;
}

export function describeFlags(spec: FlagSpec): string {
  return Object.entries(spec)
    .map(([name, flag]) => `  --${name}${flag.type === 'boolean' ? '' : ` ${flag.placeholder ?? flag.type.toUpperCase()}`}`.padEnd(28) + flag.help)
    .join('\n');
}
