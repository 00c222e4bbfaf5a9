/**
 * The checkpoint capture after an OnDemand restore on CH v52 (snapshot, then merge of the delta
 * onto the restore source) converges when interrupted: stopped after the snapshot, midway
 * through the merge or right after it, a retried Checkpoint goes on from the phase the activation state records
 * (no second snapshot) and its snapshot restores with the counter continuing; a restarted
 * worker (a fresh runtime adopting the VM) goes on from the persisted phase the same way; a VMM
 * dying once the snapshot is taken still yields a complete checkpoint.
 *
 * @module
 */
import { join } from "node:path";
import { MicroVmRuntime } from "../../lib/lifecycle/runtime.ts";
import type { CapturePhase } from "../../lib/lifecycle/state.ts";
import type { MergeStep } from "../../lib/sparse/merge.ts";
import type { ActorKey } from "../../lib/paths/paths.ts";
import { withFixture } from "../net/fixture.ts";
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { failureOf } from "./grpc.ts";
import {
  assertNoLeaks,
  checkpointRequest,
  nextActor,
  restoreAndCount,
  restoredCounter,
  runCounter,
  runtimeCheckpointRequest,
  startWorker,
  tick,
  waitForLine,
  withWorker,
  type Worker,
} from "./harness.ts";

/** Where the next capture stops, as a crash would (each stop fires once). */
interface Stops {
  phase?: CapturePhase;
  mergeStep?: MergeStep;
}

function stoppingAt(stops: Stops) {
  return {
    onCapturePhase(phase: CapturePhase) {
      if (phase !== stops.phase) return;
      stops.phase = undefined;
      throw new Error(`test stop after the ${phase} phase`);
    },
    mergeHooks: {
      afterStep(step: MergeStep) {
        if (step !== stops.mergeStep) return;
        stops.mergeStep = undefined;
        throw new Error(`test stop in the merge after ${step}`);
      },
    },
  };
}

const present = (path: string) => Deno.lstat(path).then(() => true, () => false);

async function recordedPhase(w: Worker, actor: ActorKey): Promise<string | undefined> {
  const stateFile = join(w.paths.actorDir(actor), "microvm-state.json");
  return JSON.parse(await Deno.readTextFile(stateFile)).capture?.phase;
}

/** vm.snapshot requests the CH double answered (its lines are forwarded into the worker log). */
function snapshotsTaken(w: Worker): number {
  return w.logs.filter((l) => String(l.msg).endsWith("PUT /api/v1/vm.snapshot -> 204")).length;
}

const SNAPSHOT_FILES = ["base-id", "config.json", "memory-ranges", "state.json"];

Deno.test("capture: stopped after the snapshot, midway through the merge and right after it, retried Checkpoints converge to a restorable snapshot", async () => {
  const stops: Stops = {};
  await withWorker({ chVersion: 52, runtime: stoppingAt(stops) }, async (w) => {
    const actor = await restoredCounter(w, "cap");
    await waitForLine(w, "app", "count 2");
    await tick(w, 3);
    await waitForLine(w, "app", "count 5");
    const checkpoint = join(w.paths.checkpointStateDir(actor), "memory-ranges");
    const base = join(w.paths.restoreStateDir(actor), "memory-ranges");
    const snapshotsBefore = snapshotsTaken(w);

    stops.phase = "snapshotted";
    const first = await failureOf(w.client.checkpointWorkload(checkpointRequest(actor)));
    assertEquals(first.code, "INTERNAL");
    assertStringIncludes(first.message, "test stop after the snapshotted phase");
    assertEquals(await recordedPhase(w, actor), "snapshotted");
    assert(await present(checkpoint), "the snapshot was removed");
    assert(await present(base), "the base was consumed before the merge");
    assertEquals(snapshotsTaken(w), snapshotsBefore + 1);

    stops.mergeStep = "base-moved";
    const second = await failureOf(w.client.checkpointWorkload(checkpointRequest(actor)));
    assertEquals(second.code, "INTERNAL");
    assertStringIncludes(second.message, "capturing the snapshot: merging the OnDemand delta: ");
    assertStringIncludes(second.message, "test stop in the merge after base-moved");
    assertEquals(await recordedPhase(w, actor), "merging");
    // The base now sits beside the delta as the merge's work file.
    assert(!(await present(base)), "the base was not moved");
    assert(await present(`${checkpoint}.merging`), "no merge work file");

    // This retry finishes the merge and stops right after its last rename, before the phase
    // "merged" is recorded.
    stops.mergeStep = "renamed";
    const third = await failureOf(w.client.checkpointWorkload(checkpointRequest(actor)));
    assertStringIncludes(third.message, "test stop in the merge after renamed");
    assertEquals(await recordedPhase(w, actor), "merging");
    assert(!(await present(`${checkpoint}.merging`)), "the merge did not finish");

    const { snapshotFiles } = await w.client.checkpointWorkload(checkpointRequest(actor));
    assertEquals(snapshotFiles, SNAPSHOT_FILES);
    assertEquals(snapshotsTaken(w), snapshotsBefore + 1, "a retry took another snapshot");
    assert(w.logs.some((l) => l.msg === "the interrupted OnDemand merge had completed"));
    await assertNoLeaks(w);

    // The converged snapshot restores (the double refuses an unmerged delta) and counts on.
    await restoreAndCount(w, actor, w, "count 6");
  });
});

Deno.test("capture: a worker restarted midway through the merge goes on from the persisted phase, without a new snapshot", async () => {
  const stops: Stops = {};
  await withFixture(async (fx2) => {
    await withWorker({ chVersion: 52, runtime: stoppingAt(stops) }, async (w) => {
      const actor = await restoredCounter(w, "crash");
      await waitForLine(w, "app", "count 2");
      await tick(w, 2);
      await waitForLine(w, "app", "count 4");
      const snapshotsBefore = snapshotsTaken(w);

      // The merge stops with part of the delta laid over the base.
      stops.mergeStep = "overlay-chunk";
      const f = await failureOf(w.client.checkpointWorkload(checkpointRequest(actor)));
      assertStringIncludes(f.message, "test stop in the merge after overlay-chunk");
      assertEquals(await recordedPhase(w, actor), "merging");

      // A restarted worker knows nothing in memory: it adopts the paused VM from the state and
      // finishes the merge (re-snapshotting would clear checkpoint-state/ and the base with it).
      const forgotten = w.logged(
        "the activation was taken over by another worker instance; forgetting it",
      );
      const restarted = new MicroVmRuntime({
        ...w.runtimeOptions,
        onCapturePhase: undefined,
        mergeHooks: undefined,
      });
      const { snapshotFiles } = await restarted.checkpoint(
        runtimeCheckpointRequest(w, actor),
        new AbortController().signal,
      );
      assertEquals(snapshotFiles, SNAPSHOT_FILES);
      const adopted = w.logs.findLast((l) => l.msg === "adopting a VM this process did not start");
      assertEquals(adopted?.capture_phase, "merging");
      assertEquals(
        snapshotsTaken(w),
        snapshotsBefore + 1,
        "the restarted worker snapshotted again",
      );
      const merged = w.logs.findLast((l) =>
        l.msg === "merged the OnDemand delta onto the restore source"
      );
      assertEquals(merged?.recovered, true);
      // The first runtime saw its VMM stop but leaves the activation to the one that adopted it.
      await forgotten;
      assertEquals(w.runtime.activeState, undefined);
      await assertNoLeaks(w);

      // The snapshot restores on another worker and the counter continues.
      const w2 = await startWorker(fx2, { chVersion: 52 });
      try {
        await restoreAndCount(w, actor, w2, "count 5");
      } finally {
        await w2.stop();
      }
    });
  });
});

Deno.test("capture: a VMM that dies once the snapshot is taken still gives a complete checkpoint, and nothing is left", async () => {
  let afterSnapshot: (() => Promise<void>) | undefined;
  const runtime = {
    async onCapturePhase(phase: CapturePhase) {
      if (phase === "snapshotted") await afterSnapshot?.();
    },
  };
  await withWorker({ chVersion: 54, runtime }, async (w) => {
    const actor = nextActor("late");
    await runCounter(w, actor);
    await tick(w, 1);
    await waitForLine(w, "app", "count 2");
    const pid = w.runtime.activeState!.vmm.pid;
    let died: Record<string, unknown> | undefined;
    // The capture goes on only once the supervisor has noticed the exit.
    afterSnapshot = async () => {
      afterSnapshot = undefined;
      const noticed = w.logged("the actor's VM exited unexpectedly");
      Deno.kill(pid, "SIGKILL");
      died = await noticed;
    };
    const { snapshotFiles } = await w.client.checkpointWorkload(checkpointRequest(actor));
    assertEquals(snapshotFiles, SNAPSHOT_FILES);
    assertEquals(died?.status, "killed by SIGKILL");
    // The supervisor's record of the death is cleared with the rest by the teardown.
    await assertNoLeaks(w);
    assertEquals(w.server.state(), { phase: "available" });
    await restoreAndCount(w, actor, w, "count 3");
  });
});
