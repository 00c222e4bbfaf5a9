/**
 * `restore NAME [--from URI] [--as NEW]`: resumes an actor from a snapshot in a store, here or on
 * another host. The CLI pulls the snapshot (verified against its manifest) into the worker's
 * `restore-state/`, prepares the bundle and assets from the flags, the config, or what the
 * snapshot's `standalone.json` recorded, starts a supervisor and calls RestoreWorkload.
 *
 * @module
 */
import { join } from "node:path";
import { type Command, parseFlags } from "../cli/command.ts";
import { fileProgress } from "../cli/progress.ts";
import { pullSnapshot } from "../store/transfer.ts";
import { MANIFEST_NAME } from "../store/manifest.ts";
import { validateName } from "./config.ts";
import {
  activate,
  type Context,
  deactivate,
  loadContext,
  observedState,
  RPC_TIMEOUT_MS,
} from "./actor.ts";
import { checkBundle, copyBundle } from "./bundle.ts";
import { ASSET_FLAGS, ASSET_HELP, chooseAssets, forget, newRecord, parseShape } from "./run.ts";
import { METADATA_FILE, normaliseUri, type SnapshotMetadata } from "./checkpoint.ts";
import { type ActorRecord, CONTAINER, StateDir } from "./state.ts";
import { withActorLock } from "./lock.ts";
import { followBuildProgress } from "./build_progress.ts";
import { asUsage, interruptible, nameArgument, printResult } from "./output.ts";

/** The newest snapshot dir of `name` under the state dir that has a manifest, as a URI. */
export async function newestLocalSnapshot(ctx: Context, name: string): Promise<string | undefined> {
  const dir = ctx.state.snapshotsDir(name);
  const stamps: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isDirectory) continue;
      try {
        await Deno.stat(join(dir, e.name, MANIFEST_NAME));
        stamps.push(e.name);
      } catch { /* incomplete */ }
    }
  } catch { /* none */ }
  stamps.sort();
  return stamps.length ? `file://${join(dir, stamps[stamps.length - 1])}/` : undefined;
}

async function readMetadata(dir: string): Promise<SnapshotMetadata | undefined> {
  const path = join(dir, METADATA_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
  await Deno.remove(path);
  try {
    return JSON.parse(text) as SnapshotMetadata;
  } catch (e) {
    throw new Error(`the snapshot's ${METADATA_FILE} is not valid JSON: ${(e as Error).message}`);
  }
}

export const restoreCommand: Command = {
  name: "restore",
  summary: "resume an actor from a snapshot (standalone)",
  help: `Usage: ateom-microvm restore [OPTIONS] NAME

Downloads a snapshot of actor NAME, verifies it, and resumes the actor from it in a new micro-VM;
returns once it runs. Prints the name of the restored actor.

Options:
  --from URI               the snapshot (file:///DIR/, s3://BUCKET/PREFIX/; default: NAME's newest
                           checkpoint)
  --as NEW                 restore as actor NEW (NAME may still exist)
  --bundle DIR             the OCI bundle the actor was run from (default: the path recorded in the
                           snapshot; needed when that path does not exist on this host)
${ASSET_HELP}

Exit codes: 0 running, 1 failed, 2 usage error, 130 interrupted (Ctrl-C).`,
  async run(args) {
    const { values, positionals } = parseFlags(args, {
      from: { type: "string" },
      as: { type: "string" },
      bundle: { type: "string" },
      ...ASSET_FLAGS,
    });
    const name = nameArgument(positionals);
    const target = values.as ?? name;
    asUsage(() => validateName(target, "--as"));
    const shape = parseShape(values);
    const ctx = await loadContext();
    return await interruptible(
      this.name,
      () =>
        withActorLock(ctx.state.actorsDir(), target, async () => {
          const source = await ctx.state.read(name);
          const uri = values.from
            ? normaliseUri(values.from)
            : source?.lineage.at(-1)?.uri ?? await newestLocalSnapshot(ctx, name);
          if (!uri) {
            throw new Error(`no checkpoint of ${name} is known here: pass --from URI`);
          }
          const existing = await ctx.state.read(target);
          if (existing) {
            const state = await observedState(existing);
            if (state === "running" || state === "starting") {
              throw new Error(
                `actor ${target} is ${state}: checkpoint or remove it first, or restore with --as NEW`,
              );
            }
            await deactivate(ctx, existing);
          }

          const key = StateDir.actorKey(target);
          const previousState = existing?.state;
          let record: ActorRecord | undefined;
          try {
            const restoreDir = ctx.state.worker.restoreStateDir(key);
            await Deno.remove(restoreDir, { recursive: true }).catch(() => {});
            await Deno.mkdir(ctx.state.worker.actorDir(key), { recursive: true, mode: 0o700 });
            const bar = fileProgress("pull", true);
            await pullSnapshot(uri, restoreDir, { onProgress: bar.update });
            bar.end();
            const metadata = await readMetadata(restoreDir);
            const origin = metadata ?? source;
            const bundlePath = values.bundle ?? origin?.bundle;
            if (!bundlePath) {
              throw new Error(
                `the snapshot at ${uri} does not record its bundle: pass --bundle DIR`,
              );
            }
            const bundle = await checkBundle(bundlePath);
            const fallback = origin ? { ...(source ?? {}), ...origin } as ActorRecord : undefined;
            const chosen = await chooseAssets(ctx, target, values, shape, fallback);
            record = existing ?? await newRecord(ctx, target, bundle, chosen, shape.ports);
            Object.assign(record, {
              bundle,
              assets: chosen.assets,
              memoryMiB: chosen.memoryMiB,
              vcpus: chosen.vcpus,
              ports: values.port ? shape.ports : existing?.ports ?? origin?.ports ?? [],
              lineage: metadata?.lineage ?? source?.lineage ?? [{ uri, at: "", name }],
            });
            await ctx.state.write(record);
            const bundleDir = ctx.state.worker.bundleDir(record.actor, CONTAINER);
            try {
              await Deno.stat(join(bundleDir, "config.json"));
            } catch {
              await copyBundle(bundle, bundleDir);
            }
            const activeRecord = record;
            await activate(ctx, record, (client, signal) =>
              followBuildProgress(
                ctx.state.logFile(target),
                () => client.restore(activeRecord, uri, RPC_TIMEOUT_MS, signal),
              ));
          } catch (e) {
            if (record && !existing) {
              await forget(ctx, record);
            } else if (existing) {
              // The actor stays what it was (its snapshots are intact); the record says why the
              // restore failed.
              const kept = record ?? existing;
              kept.state = previousState === "checkpointed" ? "checkpointed" : "failed";
              kept.error = `restore failed: ${(e as Error).message}`;
              await ctx.state.write(kept);
            } else {
              await Deno.remove(ctx.state.worker.actorDir(key), { recursive: true })
                .catch(() => {});
            }
            throw e;
          }
          printResult(values.json, { name: target, state: record.state, from: uri }, target);
          return 0;
        }),
    );
  },
};
