/**
 * The list of subcommands `main.ts` dispatches to. Each subsystem contributes its command from
 * its own module; this table names them and loads a command's module only when it runs, so a
 * quick command (`pack`, `version`) does not pay for loading the gRPC server or the runtime.
 *
 * @module
 */
import type { Command } from "./command.ts";

/** A subcommand as listed by `--help`; `load` imports its implementation. */
export interface CommandEntry {
  name: string;
  /** One line for the command list; equal to the loaded command's `summary` (tested). */
  summary: string;
  load(): Promise<Command>;
}

export const COMMANDS: CommandEntry[] = [
  {
    name: "serve",
    summary: "serve the ateom.Ateom gRPC API for one pod",
    load: async () => (await import("../api/serve_command.ts")).serveCommand,
  },
  {
    name: "version",
    summary: "print the version",
    load: async () => (await import("./version.ts")).versionCommand,
  },
  {
    name: "mkfs",
    summary: "build the reproducible ext4 rootfs image of a directory",
    load: async () => (await import("../rootfs/command.ts")).mkfsCommand,
  },
  {
    name: "pack",
    summary: "compress a sparse image (only its populated extents) into a snapshot stream",
    load: async () => (await import("../snapshot/command.ts")).packCommand,
  },
  {
    name: "unpack",
    summary: "decode a snapshot stream (sparse-extent or plain zstd) into a sparse file",
    load: async () => (await import("../snapshot/command.ts")).unpackCommand,
  },
  {
    name: "push",
    summary: "upload a checkpoint directory to an object store",
    load: async () => (await import("../store/command.ts")).pushCommand,
  },
  {
    name: "pull",
    summary: "download and verify a checkpoint directory from an object store",
    load: async () => (await import("../store/command.ts")).pullCommand,
  },
  {
    name: "run",
    summary: "boot an OCI bundle as a micro-VM actor (standalone)",
    load: async () => (await import("../standalone/run.ts")).runCommand,
  },
  {
    name: "ps",
    summary: "list standalone actors",
    load: async () => (await import("../standalone/ps.ts")).psCommand,
  },
  {
    name: "logs",
    summary: "print an actor's log (standalone)",
    load: async () => (await import("../standalone/logs.ts")).logsCommand,
  },
  {
    name: "checkpoint",
    summary: "suspend an actor into a snapshot in a store (standalone)",
    load: async () => (await import("../standalone/checkpoint.ts")).checkpointCommand,
  },
  {
    name: "restore",
    summary: "resume an actor from a snapshot (standalone)",
    load: async () => (await import("../standalone/restore.ts")).restoreCommand,
  },
  {
    name: "rm",
    summary: "remove standalone actors",
    load: async () => (await import("../standalone/rm.ts")).rmCommand,
  },
  {
    name: "doctor",
    summary: "check this host for what standalone actors need",
    load: async () => (await import("../standalone/doctor.ts")).doctorCommand,
  },
];
