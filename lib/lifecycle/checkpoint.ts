/**
 * The capture of CheckpointWorkload: pause, snapshot (waiting out a v53+ background memory
 * fill), OnDemand merge, memory image check, base-id, golden rootfs copies, file list.
 *
 * Contract: {@link captureCheckpoint} records each phase it reaches in the activation's
 * persisted state, and goes on from the recorded phase when called again for the same
 * directory (a retried Checkpoint, or a restarted worker that adopted the VM). The RPC itself
 * (finding the VM, joining a capture in flight, teardown) stays in `MicroVmRuntime`.
 *
 * @module
 */
import { join } from "node:path";
import type { CheckpointRequest } from "../api/runtime.ts";
import { isRestoreInProgress } from "../ch/client.ts";
import type { Logger } from "../log/logger.ts";
import { saveGolden } from "../rootfs/golden.ts";
import { mergeDelta, type MergeHooks, trashPathOf, workPathOf } from "../sparse/merge.ts";
import type { MicroVmRuntimeOptions } from "./runtime.ts";
import { type CapturePhase, saveState } from "./state.ts";
import {
  type Activation,
  BASE_ID_FILE,
  exists,
  LONG_CALL_MS,
  MEMORY_FILE,
  removeIfPresent,
  stepError,
  type StepTimes,
} from "./steps.ts";

/**
 * Pause, snapshot (waiting out a v53+ background fill), merge, verify, golden copies, file
 * list. Detached from the RPC: a cancelled caller stops waiting, the capture goes on, and the
 * next Checkpoint joins it.
 */
export async function captureCheckpoint(
  opts: MicroVmRuntimeOptions,
  act: Activation,
  req: CheckpointRequest,
  log: Logger,
): Promise<string[]> {
  const dir = req.paths.checkpointStateDir;
  const times: StepTimes = {};
  const phase = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t = performance.now();
    try {
      return await fn();
    } catch (e) {
      throw stepError(name, e);
    } finally {
      times[name] = Math.round((performance.now() - t) * 10) / 10;
    }
  };
  const client = act.client;
  // Persisted before the test seam runs, so a "crash" there leaves what a real one would.
  const reached = async (captured: CapturePhase) => {
    act.state = { ...act.state, capture: { phase: captured, dir } };
    await saveState(opts.worker.ateomDir, act.state);
    await opts.onCapturePhase?.(captured);
  };
  // A retry, or a restarted worker, goes on from the phase recorded for this directory.
  const recorded = () => act.state.capture?.dir === dir ? act.state.capture.phase : undefined;
  if (recorded() === undefined) {
    await phase("pausing the VM", () => client.pause());
    try {
      await phase("snapshotting the VM", () => snapshotInto(act, dir, log));
    } catch (e) {
      // The actor stays usable: resume it and leave no partial checkpoint behind.
      await removeIfPresent(dir).catch(() => {});
      await client.resume().catch((r) =>
        log.warn("resuming the VM after a failed snapshot failed", { err: r.message })
      );
      throw e;
    }
    await reached("snapshotted");
  }
  // From here the VM stays paused and checkpoint-state/ is kept: a retried Checkpoint goes on
  // from this point (the merge recovers from an interruption; see lib/sparse/merge.ts).
  if (act.state.atCheckpoint === "merge" && recorded() !== "merged") {
    await phase("merging the OnDemand delta", async () => {
      const resumed = recorded() === "merging";
      if (!resumed) await reached("merging");
      await mergeOnDemand(act, dir, log, resumed, opts.mergeHooks);
    });
    await reached("merged");
  }
  await phase("verifying the memory image", () => verifyMemoryImage(dir));
  await phase(
    "writing base-id",
    () => Deno.writeTextFile(join(dir, BASE_ID_FILE), act.state.baseId, { mode: 0o600 }),
  );
  await phase("saving golden rootfs", async () => {
    for (const c of act.state.containers) {
      if (await saveGolden(c.disk, c.golden)) log.info("saved golden rootfs", { disk: c.golden });
    }
  });
  const files = await phase("listing snapshot files", () => regularFiles(dir));
  log.info("snapshot captured", { phases: times });
  return files;
}

/** Snapshots the paused VM into `dir`, retrying while a v53+ OnDemand memory fill refuses it. */
async function snapshotInto(act: Activation, dir: string, log: Logger): Promise<void> {
  const started = Date.now();
  for (let attempt = 1;; attempt++) {
    await removeIfPresent(dir);
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    try {
      await act.client.snapshot(dir, { timeoutMs: LONG_CALL_MS });
      if (attempt > 1) log.info("snapshot accepted after the memory fill", { attempts: attempt });
      return;
    } catch (e) {
      if (!isRestoreInProgress(e) || act.state.atCheckpoint !== "wait") throw e;
      if (Date.now() - started > LONG_CALL_MS) {
        throw new Error(
          `cloud-hypervisor still refuses to snapshot after ${attempt} attempts over ${
            LONG_CALL_MS / 1000
          } s: the on-demand memory fill does not complete; check the VMM's log`,
        );
      }
      log.debug("snapshot refused while memory fills; retrying", { attempt });
      await new Promise((r) => setTimeout(r, Math.min(500, 20 * attempt)));
    }
  }
}

/**
 * Merges the OnDemand delta in `dir` onto the restore source. `resumed`: an earlier merge was
 * recorded as started; when neither its base nor its work file remains, it completed (its last
 * step renames the work file onto the delta) and only the phase was not recorded.
 */
async function mergeOnDemand(
  act: Activation,
  dir: string,
  log: Logger,
  resumed: boolean,
  hooks?: MergeHooks,
): Promise<void> {
  const source = act.state.restoreSource;
  if (!source) throw new Error("no restore source recorded for this OnDemand activation");
  const base = join(source, MEMORY_FILE);
  const delta = join(dir, MEMORY_FILE);
  if (resumed && !(await exists(base)) && !(await exists(workPathOf(delta)))) {
    await removeIfPresent(trashPathOf(base));
    log.info("the interrupted OnDemand merge had completed", { delta });
    return;
  }
  const result = await mergeDelta(base, delta, hooks);
  log.info("merged the OnDemand delta onto the restore source", { ...result });
}

/** Throws unless the snapshot's memory image has the size config.json declares. */
export async function verifyMemoryImage(dir: string): Promise<void> {
  const config = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
  const size = config?.memory?.size;
  const stat = await Deno.stat(join(dir, MEMORY_FILE)).catch(() => undefined);
  if (!stat) throw new Error(`the snapshot has no ${MEMORY_FILE}`);
  if (typeof size === "number" && stat.size !== size) {
    throw new Error(
      `${MEMORY_FILE} is ${stat.size} bytes but the VM has ${size}: the memory image is incomplete`,
    );
  }
}

/** Names of the regular files directly in `dir`, sorted. */
export async function regularFiles(dir: string): Promise<string[]> {
  const names = [];
  for await (const e of Deno.readDir(dir)) if (e.isFile) names.push(e.name);
  return names.sort();
}
