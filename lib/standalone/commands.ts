/**
 * The standalone subcommands (use on a KVM host without Kubernetes), in the order `--help`
 * lists them.
 *
 * @module
 */
import type { Command } from "../cli/command.ts";
import { runCommand } from "./run.ts";
import { psCommand } from "./ps.ts";
import { logsCommand } from "./logs.ts";
import { checkpointCommand } from "./checkpoint.ts";
import { restoreCommand } from "./restore.ts";
import { rmCommand } from "./rm.ts";
import { doctorCommand } from "./doctor.ts";

export const STANDALONE_COMMANDS: Command[] = [
  runCommand,
  psCommand,
  logsCommand,
  checkpointCommand,
  restoreCommand,
  rmCommand,
  doctorCommand,
];
