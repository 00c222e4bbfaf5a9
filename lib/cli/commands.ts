/**
 * The list of subcommands `main.ts` dispatches to. Each subsystem contributes its command from
 * its own module; this file only lists them.
 *
 * @module
 */
import type { Command } from "./command.ts";
import { versionCommand } from "./version.ts";
import { serveCommand } from "../api/serve_command.ts";
import { mkfsCommand } from "../rootfs/command.ts";
import { packCommand, unpackCommand } from "../snapshot/command.ts";
import { pullCommand, pushCommand } from "../store/command.ts";
import { STANDALONE_COMMANDS } from "../standalone/commands.ts";

export const COMMANDS: Command[] = [
  serveCommand,
  versionCommand,
  mkfsCommand,
  packCommand,
  unpackCommand,
  pushCommand,
  pullCommand,
  ...STANDALONE_COMMANDS,
];
