/**
 * State machine, serialisation, error mapping, deadlines and cancellation, driven by a real gRPC
 * client against a server with a fake runtime injected through startServer.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { RuntimeError } from "../../lib/api/runtime.ts";
import type { CheckpointRequest, RunRequest } from "../../lib/api/runtime.ts";
import { CheckpointWorkloadResponseSchema } from "../../proto/gen/ateom/ateom_pb.ts";
import { callAll, GrpcClient } from "./client.ts";
import {
  aborted,
  CHECKPOINT,
  checkpointBytes,
  FakeRuntime,
  gate,
  RESTORE,
  restoreBytes,
  RUN,
  runBytes,
  withServer,
} from "./harness.ts";

const OTHER = { actorId: "act-2" };

Deno.test("api: available -> executing -> available, with FAILED_PRECONDITION and NOT_FOUND", async () => {
  const runtime = new FakeRuntime();
  await withServer(runtime, async ({ socket, server, base, actorLogs }) => {
    const r = await callAll(socket, [
      { path: CHECKPOINT, request: checkpointBytes() }, // 0 available: nothing to checkpoint
      { path: RUN, request: runBytes() }, // 1 ok -> executing act-1
      { path: RUN, request: runBytes(OTHER) }, // 2 refused
      { path: RESTORE, request: restoreBytes(OTHER) }, // 3 refused
      { path: CHECKPOINT, request: checkpointBytes(OTHER) }, // 4 unknown actor
      { path: CHECKPOINT, request: checkpointBytes() }, // 5 ok -> available
      { path: CHECKPOINT, request: checkpointBytes() }, // 6 refused again
      { path: RESTORE, request: restoreBytes() }, // 7 ok -> executing
    ]);
    assertEquals(r.map((x) => x.code), [
      "FAILED_PRECONDITION",
      "OK",
      "FAILED_PRECONDITION",
      "FAILED_PRECONDITION",
      "NOT_FOUND",
      "OK",
      "FAILED_PRECONDITION",
      "OK",
    ]);
    assertStringIncludes(
      r[0].details,
      "CheckpointWorkload refused: no actor is running on this worker",
    );
    assertEquals(
      r[2].details,
      "RunWorkload refused: this worker is executing actor default:tmpl.v1:act-1; checkpoint it with CheckpointWorkload before starting another",
    );
    assertStringIncludes(
      r[3].details,
      "RestoreWorkload refused: this worker is executing actor default:tmpl.v1:act-1",
    );
    assertEquals(
      r[4].details,
      "CheckpointWorkload refused: actor default:tmpl.v1:act-2 is not running on this worker; the running actor is default:tmpl.v1:act-1",
    );
    const snap = fromBinary(CheckpointWorkloadResponseSchema, r[5].responses![0]);
    assertEquals(snap.snapshotFiles, ["config.json", "memory-ranges", "state.json"]);
    assertEquals(server.state(), {
      phase: "executing",
      actor: { namespace: "default", template: "tmpl.v1", id: "act-1" },
    });
    assertEquals(runtime.calls.map((c) => c.op), ["run", "checkpoint", "restore"]);

    // The runtime gets validated plain objects with resolved paths.
    const run = runtime.calls[0].req as RunRequest;
    const actorDir = `${base}/actors/default:tmpl.v1:act-1`;
    assertEquals(run.actor, { namespace: "default", template: "tmpl.v1", id: "act-1" });
    assertEquals(run.paths.checkpointStateDir, `${actorDir}/checkpoint-state`);
    assertEquals(run.paths.restoreStateDir, `${actorDir}/restore-state`);
    assertEquals(run.worker, {
      podUid: "pod-1",
      basePath: base,
      ateomDir: `${base}/ateoms/pod-1`,
      netnsName: "ateom:pod-1",
    });
    assertEquals(run.containers, [
      {
        name: "web",
        bundleDir: `${actorDir}/bundles/web`,
        readyz: { path: "/readyz", port: 8080 },
        durableDirVolumes: ["data"],
      },
      {
        name: "side",
        bundleDir: `${actorDir}/bundles/side`,
        readyz: undefined,
        durableDirVolumes: [],
      },
    ]);
    assertEquals(run.runtimeAssetPaths, {
      "kata-kernel": "/assets/vmlinux",
      "kata-image": "/assets/kata.img",
    });
    const cp = runtime.calls[1].req as CheckpointRequest;
    assertEquals([cp.scope, cp.snapshotUriPrefix], [
      "full",
      "gs://bucket/actors/act-1/snapshots/1/",
    ]);

    assertEquals(actorLogs.map((x) => x.message), [
      "Actor starting",
      "Actor started",
      "Actor checkpointing",
      "Actor checkpointed",
      "Actor restoring",
      "Actor restored",
    ]);
  });
});

Deno.test("api: runtime errors keep their code, others are INTERNAL; the worker stays usable", async () => {
  const runtime = new FakeRuntime();
  let failures = 0;
  runtime.behaviour.run = () => {
    failures++;
    if (failures === 1) {
      throw new RuntimeError("UNAVAILABLE", "cloud-hypervisor did not start: binary missing");
    }
    if (failures === 2) throw new Error("vm.boot failed: 500\nwith a second line");
    return Promise.resolve();
  };
  runtime.behaviour.checkpoint = () => {
    runtime.behaviour.checkpoint = undefined;
    return Promise.reject(new Error("snapshot directory is read-only"));
  };
  await withServer(runtime, async ({ socket, server }) => {
    const r = await callAll(socket, [
      { path: RUN, request: runBytes() },
      { path: RUN, request: runBytes() },
      { path: RUN, request: runBytes() },
      { path: CHECKPOINT, request: checkpointBytes() },
      { path: CHECKPOINT, request: checkpointBytes() },
    ]);
    assertEquals(r.map((x) => x.code), ["UNAVAILABLE", "INTERNAL", "OK", "INTERNAL", "OK"]);
    assertEquals(r[0].details, "cloud-hypervisor did not start: binary missing");
    assertEquals(r[1].details, "RunWorkload failed: vm.boot failed: 500");
    assertEquals(r[3].details, "CheckpointWorkload failed: snapshot directory is read-only");
    assertEquals(server.state(), { phase: "available" });
  });
});

Deno.test("api: RPCs run one at a time; a queued Run sees the state the first one left", async () => {
  const runtime = new FakeRuntime();
  const first = gate();
  runtime.behaviour.run = first.step;
  await withServer(runtime, async ({ socket, waitLog }) => {
    const a = new GrpcClient(socket, [{ path: RUN, request: runBytes() }]);
    await first.entered;
    const b = new GrpcClient(socket, [{ path: RUN, request: runBytes(OTHER) }]);
    const queued = await waitLog((rec) =>
      rec.msg === "RPC queued" && rec.actor === "default:tmpl.v1:act-2"
    );
    assertEquals(queued.ahead, 1);
    assertEquals(runtime.calls.length, 1);
    first.release();
    assertEquals((await a.result()).code, "OK");
    const second = await b.result();
    assertEquals(second.code, "FAILED_PRECONDITION");
    assertStringIncludes(second.details, "executing actor default:tmpl.v1:act-1");
    assertEquals(runtime.calls.length, 1);
    await Promise.all([a.finish(), b.finish()]);
  });
});

Deno.test("api: grpc-timeout and client cancellation abort the runtime's signal", async () => {
  const runtime = new FakeRuntime();
  const reasons: unknown[] = [];
  let entered = Promise.withResolvers<AbortSignal>();
  runtime.behaviour.run = async (_req, signal) => {
    entered.resolve(signal);
    reasons.push(await aborted(signal));
    throw new Error("stopped: " + String(signal.reason));
  };
  await withServer(runtime, async ({ socket, server }) => {
    const [late] = await callAll(socket, [{ path: RUN, request: runBytes(), timeout: 0.3 }]);
    assertEquals(late.code, "DEADLINE_EXCEEDED");
    assertEquals(reasons.length, 1);

    entered = Promise.withResolvers<AbortSignal>();
    const client = new GrpcClient(socket, [{ path: RUN, request: runBytes(), cancelOnLine: true }]);
    assertEquals(await client.next(), { started: 0 });
    const signal = await entered.promise;
    await client.cancel();
    await aborted(signal);
    assertEquals((await client.result()).code, "CANCELLED");
    await client.finish();
    assertEquals(reasons.length, 2);
    assertEquals(server.state(), { phase: "available" });
    // The worker still serves.
    runtime.behaviour.run = undefined;
    assertEquals((await callAll(socket, [{ path: RUN, request: runBytes() }]))[0].code, "OK");
  });
  assert(reasons.every((r) => r !== undefined));
});
