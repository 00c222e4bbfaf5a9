/**
 * `version`: prints the program version and the runtime it runs on.
 *
 * @module
 */
import type { Command } from "./command.ts";
import { parseFlags } from "./command.ts";

export const VERSION = "0.1.0";

export const versionCommand: Command = {
  name: "version",
  summary: "print the version",
  help: `Usage: ateom-microvm version [--json]

Prints the ateom-microvm version and the Deno runtime version.

Options:
  --json   print as JSON`,
  run(args) {
    const { values } = parseFlags(args, { json: { type: "boolean" } });
    const info = { version: VERSION, deno: Deno.version.deno };
    console.log(
      values.json ? JSON.stringify(info) : `ateom-microvm ${info.version} (deno ${info.deno})`,
    );
    return Promise.resolve(0);
  },
};
