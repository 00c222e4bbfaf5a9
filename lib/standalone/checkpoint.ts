/**
 * `checkpoint NAME [--to URI]`: suspends a running actor into a snapshot and ships it to a store.
 * The worker snapshots and tears the VM down (CheckpointWorkload), the CLI pushes the files it
 * listed plus `standalone.json` (the actor's name, bundle, assets and lineage, so `restore` can
 * rebuild it elsewhere) to URI, then stops the supervisor. The actor stays listed as
 * "checkpointed" until `rm` or `restore`.
 *
 * @module
 */
import { join } from "node:path";
import { type Command, parseFlags } from "../cli/command.ts";
import { fileProgress } from "../cli/progress.ts";
import { pushSnapshot } from "../store/transfer.ts";
import {
  type Context,
  deactivate,
  loadContext,
  mustRead,
  observedState,
  RPC_TIMEOUT_MS,
} from "./actor.ts";
import { WorkerClient } from "./client.ts";
import type { ActorRecord, LineageEntry } from "./state.ts";
import { withActorLock } from "./lock.ts";
import { nameArgument, printResult } from "./output.ts";

/** The extra file a standalone checkpoint carries. */
export const METADATA_FILE = "standalone.json";

/** What `standalone.json` holds. */
export interface SnapshotMetadata {
  version: 1;
  name: string;
  bundle: string;
  assets: ActorRecord["assets"];
  memoryMiB?: number;
  vcpus?: number;
  ports?: ActorRecord["ports"];
  /** Every checkpoint up to and including this one, oldest first. */
  lineage: LineageEntry[];
}

/** `<stamp>`: UTC time, sortable and safe in paths, e.g. `20261128T201502Z`. */
export function stamp(date: Date): string {
  return date.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
}

/** Where `checkpoint` writes without `--to`: `<snapshots or state dir store>/<NAME>/<stamp>/`. */
export function defaultTarget(ctx: Context, name: string, now: Date): string {
  if (ctx.config.snapshots) return `${normaliseUri(ctx.config.snapshots)}${name}/${stamp(now)}/`;
  return `file://${join(ctx.state.snapshotsDir(name), stamp(now))}/`;
}

/** Normalises a store URI to end in `/`; a bare absolute path becomes file://. */
export function normaliseUri(uri: string): string {
  const u = uri.startsWith("/") ? `file://${uri}` : uri;
  return u.endsWith("/") ? u : `${u}/`;
}

/**
 * Hard-links the listed checkpoint files and writes `standalone.json` into a fresh staging dir,
 * so exactly those files are pushed.
 */
async function stage(
  from: string,
  files: string[],
  staging: string,
  metadata: SnapshotMetadata,
): Promise<void> {
  await Deno.remove(staging, { recursive: true }).catch(() => {});
  await Deno.mkdir(staging, { recursive: true, mode: 0o700 });
  for (const file of files) {
    if (file.includes("/") || file === METADATA_FILE) {
      throw new Error(`the worker listed an unexpected checkpoint file ${JSON.stringify(file)}`);
    }
    await Deno.link(join(from, file), join(staging, file));
  }
  await Deno.writeTextFile(
    join(staging, METADATA_FILE),
    JSON.stringify(metadata, null, 2) + "\n",
  );
}

export const checkpointCommand: Command = {
  name: "checkpoint",
  summary: "suspend an actor into a snapshot in a store (standalone)",
  help: `Usage: ateom-microvm checkpoint [--to URI] [--json] NAME

Snapshots the running actor NAME (memory and disks), stops its VM and uploads the snapshot to URI.
Restore it with 'ateom-microvm restore NAME --from URI'. Prints the URI. When the upload fails
the actor is "failed" with its snapshot kept: run checkpoint again to retry the upload.

Options:
  --to URI   file:///DIR/ or s3://BUCKET/PREFIX/ (default: the config's 'snapshots' store, else
             <state dir>/snapshots/NAME/<time>/); S3 settings as for 'ateom-microvm push'
  --json     print the result as JSON`,
  async run(args) {
    const { values, positionals } = parseFlags(args, {
      to: { type: "string" },
      json: { type: "boolean" },
    });
    const name = nameArgument(positionals);
    const ctx = await loadContext();
    return await withActorLock(ctx.state.actorsDir(), name, async () => {
      const record = await mustRead(ctx, name);
      const state = await observedState(record);
      // A checkpoint taken earlier whose upload failed is uploaded again, without a new snapshot.
      const retryPush = state === "failed" && record.pendingPush === true;
      if (state !== "running" && !retryPush) {
        throw new Error(
          `cannot checkpoint ${name}: it is ${state}, not running` +
            (state === "dead" ? `; see 'ateom-microvm logs ${name}' and remove it with 'rm'` : ""),
        );
      }
      const now = new Date();
      const uri = values.to ? normaliseUri(values.to) : defaultTarget(ctx, name, now);
      const checkpointDir = ctx.state.worker.checkpointStateDir(record.actor);
      let files: string[];
      if (retryPush) {
        files = [...Deno.readDirSync(checkpointDir)].filter((e) => e.isFile).map((e) => e.name);
      } else {
        const client = new WorkerClient(ctx.state.socket(name));
        try {
          files = await client.checkpoint(record, uri, RPC_TIMEOUT_MS);
        } finally {
          client.close();
        }
      }
      // The VM is gone from here on: whatever happens, the supervisor has nothing left to run.
      const entry: LineageEntry = { uri, at: now.toISOString(), name };
      const staging = join(ctx.state.dir(name), "push-staging");
      try {
        await stage(checkpointDir, files, staging, {
          version: 1,
          name,
          bundle: record.bundle,
          assets: record.assets,
          memoryMiB: record.memoryMiB,
          vcpus: record.vcpus,
          ports: record.ports,
          lineage: [...record.lineage, entry],
        });
        const bar = fileProgress("push", true);
        await pushSnapshot(staging, uri, { onProgress: bar.update });
        bar.end();
        record.lineage.push(entry);
        record.state = "checkpointed";
        delete record.startedAt;
        delete record.pendingPush;
        delete record.error;
      } catch (e) {
        record.state = "failed";
        record.pendingPush = true;
        record.error = `upload failed: ${(e as Error).message}`;
        throw new Error(
          `checkpoint of ${name} was taken but not stored: ${(e as Error).message}; ` +
            `run 'ateom-microvm checkpoint ${name} --to URI' again to retry the upload`,
        );
      } finally {
        await Deno.remove(staging, { recursive: true }).catch(() => {});
        await deactivate(ctx, record);
        await ctx.state.write(record);
      }
      printResult(values.json, { name, uri, files: [...files].sort() }, uri);
      return 0;
    });
  },
};
