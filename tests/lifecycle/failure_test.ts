/**
 * Failure injection: the VMM dies during boot or while the actor runs, the agent never answers
 * (absent or hanging), the snapshot fails, the restore source is corrupted, incomplete or has
 * more net devices than the actor network gives, the RPC is cancelled while the rootfs disk is
 * being built. Each answers a clear error, leaves nothing behind (process, socket,
 * link, nft table, temp or state file), and the next Run on the same worker succeeds.
 *
 * @module
 */
import { join } from "node:path";
import type { RuntimeError } from "../../lib/api/runtime.ts";
import { MicroVmRuntime } from "../../lib/lifecycle/runtime.ts";
import { linksIn, netnsPath } from "../../lib/net/actor.ts";
import { buildStats } from "../../lib/rootfs/build.ts";
import { withFixture } from "../net/fixture.ts";
import {
  assert,
  assertEquals,
  assertMatch,
  assertRejects,
  assertStringIncludes,
} from "../assert.ts";
import { failureOf } from "./grpc.ts";
import {
  assertNoLeaks,
  assetsOf,
  checkpointRequest,
  COUNTER,
  nextActor,
  prepareBundles,
  restoredCounter,
  restoreRequest,
  runCounter,
  runRequest,
  runSucceeds,
  runtimeCheckpointRequest,
  shipCheckpoint,
  startWorker,
  type TestContainer,
  tick,
  UNWOUND,
  vsockProber,
  waitForLine,
  webServer,
  withWorker,
} from "./harness.ts";
import type { Prober } from "../../lib/lifecycle/readiness.ts";

const FAST_DIAL = { chVersion: 54, agentDialTimeoutMs: 1500 };

Deno.test("failure: the VMM dies during boot", async () => {
  await withWorker(FAST_DIAL, async (w) => {
    const actor = nextActor("fail");
    await prepareBundles(w, actor, COUNTER);
    w.fail.push("boot-exit");
    const f = await failureOf(w.client.runWorkload(runRequest(actor, COUNTER, await assetsOf(w))));
    assertEquals(f.code, "INTERNAL");
    assertMatch(
      f.message,
      /^RunWorkload failed: booting the VM: cloud-hypervisor PUT \/api\/v1\/vm\.boot: /,
    );
    assertStringIncludes(f.message, "without answering");
    await assertNoLeaks(w);
    assertEquals(w.server.state(), { phase: "available" });
    w.fail.length = 0;
    await runSucceeds(w);
  });
});

Deno.test("failure: the kata agent never listens, or accepts and never answers", async () => {
  await withWorker(FAST_DIAL, async (w) => {
    const actor = nextActor("fail");
    await prepareBundles(w, actor, COUNTER);
    const absent = await failureOf(
      w.client.runWorkload(runRequest(actor, COUNTER, await assetsOf(w, "double.agent=absent"))),
    );
    assertEquals(absent.code, "INTERNAL");
    assertStringIncludes(
      absent.message,
      "RunWorkload failed: dialing the kata agent: connecting to the kata agent (vsock port 1024 via ",
    );
    assertStringIncludes(absent.message, "check the guest serial log");
    await assertNoLeaks(w);

    const hangDone = w.logged(UNWOUND);
    const hang = await failureOf(
      w.client.runWorkload(runRequest(actor, COUNTER, await assetsOf(w, "double.agent=hang")), {
        timeoutMs: 4000,
      }),
    );
    assertEquals(hang.code, "DEADLINE_EXCEEDED", hang.message);
    // The client gives up at its deadline; the worker unwinds right after.
    await hangDone;
    const failed = w.logs.filter((l) => l.msg === "step failed").map((l) => l.step);
    assertEquals(failed.at(-1), "creating the sandbox");
    await assertNoLeaks(w);
    await runSucceeds(w);
  });
});

Deno.test("failure: the snapshot fails; the actor keeps running and the worker stays usable", async () => {
  await withFixture(async (fx) => {
    const w = await startWorker(fx, { chVersion: 54, fail: ["snapshot"] });
    const actor = nextActor("fail");
    try {
      await runCounter(w, actor);
      const f = await failureOf(w.client.checkpointWorkload(checkpointRequest(actor)));
      assertEquals(f.code, "INTERNAL");
      assertStringIncludes(
        f.message,
        "CheckpointWorkload failed: capturing the snapshot: snapshotting the VM: cloud-hypervisor PUT /api/v1/vm.snapshot answered 500: ",
      );
      assertStringIncludes(f.message, "injected failure (CH_DOUBLE_FAIL=snapshot)");
      // No partial checkpoint is left for atelet to ship, and the guest runs on.
      const cp = w.paths.checkpointStateDir(actor);
      assertEquals(await Deno.lstat(cp).then(() => "present", () => "gone"), "gone");
      assertEquals(w.server.state().phase, "executing");
      await tick(w, 1);
      await waitForLine(w, "app", "count 2");
    } finally {
      // Shutting the worker down tears the actor down.
      await w.server.close();
      await w.runtime.close();
    }
    await assertNoLeaks(w);
    const next = await startWorker(fx, { chVersion: 54 });
    try {
      await runSucceeds(next);
    } finally {
      await next.stop();
      await Deno.remove(w.base, { recursive: true });
    }
  });
});

Deno.test("failure: a corrupted or incomplete restore source, or one with two net devices", async () => {
  await withWorker(FAST_DIAL, async (w) => {
    const a1 = nextActor("fail");
    await runCounter(w, a1);
    await w.client.checkpointWorkload(checkpointRequest(a1));

    const a2 = nextActor("fail");
    await prepareBundles(w, a2, COUNTER);
    await shipCheckpoint(w, a1, w, a2);
    // A second fd-backed net device: the actor network gives one.
    const configFile = join(w.paths.restoreStateDir(a2), "config.json");
    const configText = await Deno.readTextFile(configFile);
    const config = JSON.parse(configText);
    const nic = config.net[0];
    assert(Array.isArray(nic.fds), "the snapshot's net device is not fd-backed");
    config.net.push({ ...nic, id: "_net9", mac: "02:00:00:00:00:09" });
    await Deno.writeTextFile(configFile, JSON.stringify(config));
    const twoNics = await failureOf(
      w.client.restoreWorkload(restoreRequest(a2, COUNTER, await assetsOf(w))),
    );
    assertEquals(twoNics, {
      code: "UNIMPLEMENTED",
      message:
        `reading snapshot net devices: the snapshot has 2 fd-backed net devices (${nic.id}, _net9); the micro-VM runtime restores exactly one (the actor network): checkpoint a VM with a single network device`,
    });
    await assertNoLeaks(w);
    await Deno.writeTextFile(configFile, configText);

    const memory = join(w.paths.restoreStateDir(a2), "memory-ranges");
    await Deno.truncate(memory, 1 << 20);
    const truncated = await failureOf(
      w.client.restoreWorkload(restoreRequest(a2, COUNTER, await assetsOf(w))),
    );
    assertEquals(truncated.code, "INTERNAL");
    assertStringIncludes(
      truncated.message,
      "RestoreWorkload failed: restoring the VM (OnDemand): ",
    );
    assertStringIncludes(truncated.message, "memory-ranges is 1048576 bytes, expected 67108864");
    await assertNoLeaks(w);

    await Deno.remove(memory);
    const missing = await failureOf(
      w.client.restoreWorkload(restoreRequest(a2, COUNTER, await assetsOf(w))),
    );
    assertEquals(missing.code, "FAILED_PRECONDITION");
    assertStringIncludes(missing.message, "checking restore-state: ");
    assertStringIncludes(
      missing.message,
      "restore-state lacks memory-ranges: download the checkpoint",
    );
    await assertNoLeaks(w);
    await runSucceeds(w);
  });
});

Deno.test("failure: the RPC is cancelled while the rootfs disk is built; the retry converges on one build", async () => {
  await withWorker(FAST_DIAL, async (w) => {
    const actor = nextActor("fail");
    const big: TestContainer[] = [{ name: "app", args: ["counter"], bigFileMiB: 96 }];
    await prepareBundles(w, actor, big);
    const mkfsBefore = buildStats.mkfsRuns;
    const abort = new AbortController();
    w.logged("building rootfs disk").then(() => abort.abort());
    const runDone = w.logged(UNWOUND);
    const f = await failureOf(
      w.client.runWorkload(runRequest(actor, big, await assetsOf(w)), { signal: abort.signal }),
    );
    assertEquals(f.code, "CANCELLED", f.message);
    await runDone;
    const failed = w.logs.filter((l) => l.msg === "step failed").map((l) => l.step);
    assertEquals(failed, ["building rootfs disks"]);
    // The retry converges on the same image: one mkfs in total, whether the cancelled call's
    // work was still in flight (joined) or done (existing).
    await w.client.runWorkload(runRequest(actor, big, await assetsOf(w)));
    assertEquals(buildStats.mkfsRuns - mkfsBefore, 1);
    await waitForLine(w, "app", "count 1");
    await w.client.checkpointWorkload(checkpointRequest(actor));
    await assertNoLeaks(w);
  });
});

Deno.test("failure: a Checkpoint cancelled while CH v54 still fills memory goes on detached; the retry joins it", async () => {
  await withWorker({ chVersion: 54, fillRefusals: 12 }, async (w) => {
    const a2 = await restoredCounter(w, "fail");
    await waitForLine(w, "app", "count 2");

    const failed = w.logged("RPC failed");
    const f = await failureOf(
      w.client.checkpointWorkload(checkpointRequest(a2), { timeoutMs: 300 }),
    );
    assertEquals(f.code, "DEADLINE_EXCEEDED");
    await failed;
    // The retry joins the capture the cancelled call started and gets its complete snapshot.
    const { snapshotFiles } = await w.client.checkpointWorkload(checkpointRequest(a2));
    assert(w.logs.some((l) => l.msg === "joining the checkpoint capture already under way"));
    const captures = w.logs.filter((l) => l.msg === "snapshot captured" && l.actor === a2.id);
    assertEquals(captures.length, 1);
    assertEquals(snapshotFiles, ["base-id", "config.json", "memory-ranges", "state.json"]);
    const accepted = w.logs.findLast((l) => l.msg === "snapshot accepted after the memory fill");
    assert(accepted !== undefined, "no snapshot after the fill");
    await assertNoLeaks(w);
  });
});

Deno.test("failure: the VMM dies while the actor runs; the next Checkpoint says so and frees the worker", async () => {
  await withWorker(FAST_DIAL, async (w) => {
    const actor = nextActor("fail");
    await runCounter(w, actor);
    const stateFile = join(w.paths.actorDir(actor), "microvm-state.json");
    const before = JSON.parse(await Deno.readTextFile(stateFile));
    assertEquals(before.dead, undefined);
    const died = w.logged("the actor's VM exited unexpectedly");
    const recorded = w.logged(
      "recorded the activation as dead; the next Checkpoint releases the worker",
    );
    Deno.kill(before.vmm.pid, "SIGKILL");

    const error = await died;
    assertEquals(error.level, "ERROR");
    assertEquals(error.actor, actor.id);
    assertEquals(error.vmm_pid, before.vmm.pid);
    assertEquals(error.status, "killed by SIGKILL");
    assertStringIncludes(String(error.serial), "kata-agent double: booted");
    await recorded;
    // Noticed at once: the actor network is gone, log forwarding stopped, the death persisted.
    assertEquals(await linksIn(netnsPath(w.fx.interior)), ["lo"]);
    const tables = await w.fx.sh("ip", "netns", "exec", w.fx.pod, "nft", "list", "tables");
    assert(!tables.includes("ateom_actor"), tables);
    const dead = JSON.parse(await Deno.readTextFile(stateFile)).dead;
    assertEquals(dead.status, "killed by SIGKILL");
    assertMatch(dead.at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assertEquals(w.runtime.activeState?.dead, dead);
    const why =
      `the VM of actor ${actor.id} exited (killed by SIGKILL) at ${dead.at}; it cannot be checkpointed; run or restore it again`;

    // Until a Checkpoint, the worker still counts the actor as executing.
    const run = await failureOf(
      w.client.runWorkload(runRequest(nextActor("fail"), COUNTER, await assetsOf(w))),
    );
    assertEquals(run.code, "FAILED_PRECONDITION");
    assertStringIncludes(run.message, "checkpoint it with CheckpointWorkload");

    // A restarted worker reads the death from the persisted state.
    const restarted = new MicroVmRuntime(w.runtimeOptions);
    const adopted = await assertRejects(() =>
      restarted.checkpoint(runtimeCheckpointRequest(w, actor), new AbortController().signal)
    );
    assertEquals((adopted as RuntimeError).code, "FAILED_PRECONDITION");
    assertEquals(adopted.message, `finding the running VM: ${why}`);

    const f = await failureOf(w.client.checkpointWorkload(checkpointRequest(actor)));
    assertEquals(f, { code: "FAILED_PRECONDITION", message: `finding the running VM: ${why}` });
    assertEquals(w.server.state(), { phase: "available" });
    await assertNoLeaks(w);
    await runSucceeds(w);
  });
});

Deno.test("failure: the VMM dies while Run waits for readiness; Run fails at once, naming the exit", async () => {
  const probing = Promise.withResolvers<void>();
  const prober: Prober = (target, signal) => {
    probing.resolve();
    return vsockProber(target, signal);
  };
  await withWorker({ ...FAST_DIAL, runtime: { prober } }, async (w) => {
    const actor = nextActor("fail");
    const sick = webServer({ status: 503 });
    await prepareBundles(w, actor, sick);
    // Without the exit ending the wait, the 5-minute readiness limit would; the deadline ends it.
    const run = failureOf(
      w.client.runWorkload(runRequest(actor, sick, await assetsOf(w)), { timeoutMs: 20_000 }),
    );
    await Promise.race([probing.promise, run]);
    const stateFile = join(w.paths.actorDir(actor), "microvm-state.json");
    Deno.kill(JSON.parse(await Deno.readTextFile(stateFile)).vmm.pid, "SIGKILL");
    const f = await run;
    assertEquals(f.code, "INTERNAL", f.message);
    assertMatch(
      f.message,
      /^RunWorkload failed: waiting for readiness: container web did not become ready: cloud-hypervisor exited \(killed by SIGKILL\) \(GET http:\/\/169\.254\.17\.2:8080\/readyz last answered .+\)$/,
    );
    await assertNoLeaks(w);
    await runSucceeds(w);
  });
});

Deno.test("failure: the VMM dies during the snapshot; that Checkpoint says so and frees the worker", async () => {
  await withFixture(async (fx) => {
    const w = await startWorker(fx, { ...FAST_DIAL, fail: ["snapshot-exit"] });
    try {
      const actor = nextActor("fail");
      await runCounter(w, actor);
      const f = await failureOf(w.client.checkpointWorkload(checkpointRequest(actor)));
      assertEquals(f.code, "FAILED_PRECONDITION", f.message);
      assertMatch(
        f.message,
        new RegExp(
          `^capturing the snapshot: the VM of actor ${actor.id} exited \\(exit code 1\\) at \\S+; it cannot be checkpointed; run or restore it again$`,
        ),
      );
      assertEquals(w.server.state(), { phase: "available" });
      // No partial checkpoint is left for atelet to ship.
      const cp = w.paths.checkpointStateDir(actor);
      assertEquals(await Deno.lstat(cp).then(() => "present", () => "gone"), "gone");
      await assertNoLeaks(w);
      w.fail.length = 0;
      await runSucceeds(w);
    } finally {
      await w.stop();
    }
  });
});
