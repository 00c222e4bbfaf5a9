/**
 * The shape of a CLI subcommand and the helpers every subcommand shares: flag parsing with
 * `--help` (a HelpRequested the dispatcher answers with the command's `help`, exit code 0), and
 * one-line usage errors with exit code 2.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** A subcommand of `ateom-microvm`. `run` returns the process exit code. */
export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** The full `--help` text. */
  help: string;
  run(args: string[]): Promise<number>;
}

/** A usage mistake: printed as one line plus a hint, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * `-h`/`--help` was given: thrown by parseFlags so no command handles help itself; main.ts prints
 * the running command's `help` on stdout and exits 0.
 */
export class HelpRequested extends Error {
  constructor() {
    super("help requested");
    this.name = "HelpRequested";
  }
}

export type Options = NonNullable<ParseArgsConfig["options"]>;

/** The parsed value of each declared flag (absent when not given and without a default). */
export type FlagValues<O extends Options> = {
  [K in keyof O]?: O[K] extends { type: "boolean" }
    ? (O[K] extends { multiple: true } ? boolean[] : boolean)
    : (O[K] extends { multiple: true } ? string[] : string);
};

/**
 * Parses `args` against `options` (strict: unknown flags are a UsageError) and returns the values
 * and positionals. Throws HelpRequested when `-h`/`--help` was given (and the rest parsed).
 */
export function parseFlags<O extends Options>(
  args: string[],
  options: O,
): { values: FlagValues<O>; positionals: string[] } {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message.split("\n")[0].replace(/\. To specify.*$/, ""));
  }
  const values = parsed.values as FlagValues<O> & { help?: boolean };
  if (values.help) throw new HelpRequested();
  return { values, positionals: parsed.positionals };
}

/** Throws a UsageError unless exactly `names.length` positionals were given; returns them. */
export function expectPositionals(positionals: string[], names: string[]): string[] {
  if (positionals.length !== names.length) {
    const want = names.map((n) => n.toUpperCase()).join(" ");
    throw new UsageError(
      positionals.length < names.length
        ? `missing argument: expected ${want}`
        : `unexpected argument ${JSON.stringify(positionals[names.length])}: expected ${want}`,
    );
  }
  return positionals;
}
