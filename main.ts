/**
 * ateom-microvm: runs one sandboxed actor in a cloud-hypervisor micro-VM with a kata guest,
 * and suspends/resumes it through VM snapshots. This is the CLI entry: it dispatches to the
 * subcommands listed in lib/cli/commands.ts, answers a command's `--help` (HelpRequested) with its
 * help text, and turns errors into one line and an exit code.
 *
 * @module
 */
import { COMMANDS } from "./lib/cli/commands.ts";
import { type Command, HelpRequested, UsageError } from "./lib/cli/command.ts";

function topHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `Usage: ateom-microvm COMMAND [ARGS]

Runs actors (OCI containers) in cloud-hypervisor micro-VMs with a kata guest, and
suspends/resumes them through VM snapshots.

Commands:
${lines.join("\n")}

Global options:
  --debug   print stack traces for errors

Run 'ateom-microvm COMMAND --help' for a command's options.`;
}

/** Runs the CLI with `argv` and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes("--debug");
  const args = argv.filter((a) => a !== "--debug");
  const [name, ...rest] = args;
  if (!name || name === "-h" || name === "--help" || name === "help") {
    console.log(topHelp());
    return name ? 0 : 2;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    console.error(
      `ateom-microvm: unknown command ${JSON.stringify(name)}; run 'ateom-microvm --help'`,
    );
    return 2;
  }
  let command: Command | undefined;
  try {
    command = await entry.load();
    return await command.run(rest);
  } catch (e) {
    if (e instanceof HelpRequested && command) {
      console.log(command.help);
      return 0;
    }
    if (e instanceof UsageError) {
      console.error(`ateom-microvm ${name}: ${e.message}; run 'ateom-microvm ${name} --help'`);
      return 2;
    }
    const err = e as Error;
    console.error(`ateom-microvm ${name}: ${err?.message ?? String(e)}`);
    if (debug && err?.stack) console.error(err.stack);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
