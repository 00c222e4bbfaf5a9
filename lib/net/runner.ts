/**
 * Running the network tools (ip, tc, nft): argv arrays, optional stdin, never a shell.
 *
 * The actor network code takes a {@link CommandRunner} so tests and benches can count and record
 * every process it spawns; {@link ProcessRunner} is the real one.
 *
 * @module
 */

/** What a finished command reported. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** One spawned command, as recorded. */
export interface Invocation {
  argv: string[];
  stdin?: string;
}

/** Runs one external program to completion; never throws for a non-zero exit. */
export interface CommandRunner {
  run(argv: readonly string[], stdin?: string): Promise<CommandResult>;
}

/** A command that exited non-zero or could not start. */
export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly code: number,
    readonly stderr: string,
    hint = "",
  ) {
    super(
      `${argv.join(" ")} failed (exit ${code}): ${oneLine(stderr) || "no error output"}` +
        (hint ? `; ${hint}` : ""),
    );
    this.name = "CommandError";
  }
}

/** Joins the lines of a tool's error output into one line. */
export function oneLine(text: string): string {
  return text.split("\n").map((l) => l.trim()).filter((l) => l).join(" | ");
}

const decoder = new TextDecoder();

/** Spawns real processes and counts them; records argv and stdin when `record` is set. */
export class ProcessRunner implements CommandRunner {
  /** Processes spawned so far. */
  spawned = 0;
  /** Every invocation when constructed with `record: true`, else empty. */
  readonly invocations: Invocation[] = [];

  constructor(private readonly options: { record?: boolean; env?: Record<string, string> } = {}) {}

  async run(argv: readonly string[], stdin?: string): Promise<CommandResult> {
    if (argv.length === 0) throw new Error("empty command");
    this.spawned++;
    if (this.options.record) {
      this.invocations.push(stdin === undefined ? { argv: [...argv] } : { argv: [...argv], stdin });
    }
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(argv[0], {
        args: argv.slice(1),
        stdin: stdin === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
        env: { LC_ALL: "C", ...this.options.env },
      }).spawn();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        return { code: 127, stdout: "", stderr: `${argv[0]}: command not found` };
      }
      throw e;
    }
    if (stdin !== undefined) {
      const writer = child.stdin.getWriter();
      try {
        await writer.write(new TextEncoder().encode(stdin));
        await writer.close();
      } catch {
        // The tool exited before reading everything; its exit status and stderr say why.
      }
    }
    const out = await child.output();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
  }
}

/** Runs `argv` and throws a {@link CommandError} unless it exits 0; returns its stdout. */
export async function runChecked(
  runner: CommandRunner,
  argv: readonly string[],
  stdin?: string,
  hint = "",
): Promise<string> {
  const result = await runner.run(argv, stdin);
  if (result.code !== 0) {
    throw new CommandError(argv, result.code, annotateBatchError(result.stderr, stdin), hint);
  }
  return result.stdout;
}

/**
 * iproute2 batch errors end with "Command failed -:N"; appends the failing script line so the
 * message says what was being done.
 */
export function annotateBatchError(stderr: string, script?: string): string {
  const m = /Command failed -:(\d+)/.exec(stderr);
  if (!m || script === undefined) return stderr;
  const line = script.split("\n")[Number(m[1]) - 1];
  return line === undefined ? stderr : `${stderr.trimEnd()}\n(line ${m[1]}: ${line})`;
}
