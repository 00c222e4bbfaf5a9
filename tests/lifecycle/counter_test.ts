/**
 * The counter workload's count continues across Run → Checkpoint → Restore on a second worker
 * (another pod, pod UID, base path and actor id) → Checkpoint → Restore again, with CH v52
 * (OnDemand restores, the next checkpoint merges the delta) and v54 (OnDemand, the checkpoint
 * waits for the background fill); nothing is left behind after each checkpoint.
 *
 * @module
 */
import { join } from "node:path";
import { withFixture } from "../net/fixture.ts";
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import {
  assertNoLeaks,
  assetsOf,
  checkpointRequest,
  containerLines,
  COUNTER,
  prepareBundles,
  restoreRequest,
  runRequest,
  shipCheckpoint,
  startWorker,
  tick,
  waitForLine,
} from "./harness.ts";

async function chain(chVersion: number, expectAtCheckpoint: "merge" | "wait") {
  await withFixture(async (fx1) => {
    await withFixture(async (fx2) => {
      const w1 = await startWorker(fx1, { chVersion });
      const w2 = await startWorker(fx2, { chVersion });
      try {
        const a1 = { namespace: "ns", template: "tmpl", id: `act-one-${chVersion}` };
        const a2 = { namespace: "ns", template: "tmpl", id: `act-two-${chVersion}` };
        const a3 = { namespace: "ns", template: "tmpl", id: `act-three-${chVersion}` };

        // Run on worker 1: count 1, then 4 more ticks.
        await prepareBundles(w1, a1, COUNTER);
        await w1.client.runWorkload(runRequest(a1, COUNTER, await assetsOf(w1)));
        await waitForLine(w1, "app", "count 1");
        await tick(w1, 4);
        await waitForLine(w1, "app", "count 5");
        const cp1 = await w1.client.checkpointWorkload(checkpointRequest(a1));
        assertEquals(cp1.snapshotFiles, ["base-id", "config.json", "memory-ranges", "state.json"]);
        const cpDir = w1.paths.checkpointStateDir(a1);
        assertEquals(await Deno.readTextFile(join(cpDir, "base-id")), a1.id);
        await assertNoLeaks(w1);
        // The golden template was saved beside the disk.
        await Deno.stat(join(w1.paths.actorDir(a1), "golden-rootfs-app.ext4"));

        // Restore on worker 2 as another actor: the clock moves, the counter ticks on to 6.
        await shipCheckpoint(w1, a1, w2, a2);
        await prepareBundles(w2, a2, COUNTER);
        await w2.client.restoreWorkload(restoreRequest(a2, COUNTER, await assetsOf(w2)));
        await waitForLine(w2, "app", "count 6");
        // config.json now names this node's paths: guest image, actor disk, vsock socket.
        const repointed = JSON.parse(
          await Deno.readTextFile(join(w2.paths.restoreStateDir(a2), "config.json")),
        );
        assertEquals(repointed.disks.map((d: { path: string }) => d.path), [
          join(w2.base, "assets/kata.img"),
          join(w2.paths.actorDir(a2), "rootfs-app.ext4"),
        ]);
        assertEquals(repointed.vsock.socket, join(w2.ateomDir, "vm/kata.hvsock"));
        assertEquals(w2.runtime.activeState?.atCheckpoint, expectAtCheckpoint);
        assertEquals(w2.runtime.activeState?.memoryMode, "OnDemand");
        await tick(w2, 2);
        await waitForLine(w2, "app", "count 8");
        const cp2 = await w2.client.checkpointWorkload(checkpointRequest(a2));
        assertEquals(cp2.snapshotFiles, ["base-id", "config.json", "memory-ranges", "state.json"]);
        // The lineage id stays the first actor's.
        assertEquals(
          await Deno.readTextFile(join(w2.paths.checkpointStateDir(a2), "base-id")),
          a1.id,
        );
        const workerLogs = w2.logs.map((l) => l.msg);
        if (expectAtCheckpoint === "merge") {
          assert(workerLogs.includes("merged the OnDemand delta onto the restore source"));
          // The merge consumed the restore source's memory image.
          assertEquals(
            await Deno.lstat(join(w2.paths.restoreStateDir(a2), "memory-ranges")).then(
              () => 1,
              () => 0,
            ),
            0,
          );
        } else {
          assert(
            workerLogs.includes("snapshot accepted after the memory fill"),
            String(workerLogs),
          );
        }
        await assertNoLeaks(w2);

        // Restore again, back on worker 1 as a third actor: count 9.
        await shipCheckpoint(w2, a2, w1, a3);
        await prepareBundles(w1, a3, COUNTER);
        await w1.client.restoreWorkload(restoreRequest(a3, COUNTER, await assetsOf(w1)));
        await waitForLine(w1, "app", "count 9");
        await w1.client.checkpointWorkload(checkpointRequest(a3));
        await assertNoLeaks(w1);

        // Every count appeared once, in order, across the three activations.
        const counts = [...containerLines(w1, "app"), ...containerLines(w2, "app")]
          .filter((l) => l.startsWith("count "))
          .map((l) => Number(l.slice(6)))
          .sort((a, b) => a - b);
        assertEquals(counts, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        const events = w2.actorLogs.filter((r) =>
          !("ate.dev/container_name" in (r.labels as object))
        )
          .map((r) => r.message);
        assertEquals(events, [
          "Actor restoring",
          "Actor restored",
          "Actor checkpointing",
          "Actor checkpointed",
        ]);
        const restored = w2.logs.find((l) => l.msg === "actor restored")!;
        assertStringIncludes(JSON.stringify(restored.steps), "restoring the VM (OnDemand)");
      } finally {
        await w1.stop();
        await w2.stop();
      }
    });
  });
}

Deno.test("lifecycle: counter continues across workers with CH v52 (merge at checkpoint)", async () => {
  await chain(52, "merge");
});

Deno.test("lifecycle: counter continues across workers with CH v54 (checkpoint waits for the fill)", async () => {
  await chain(54, "wait");
});
