/**
 * The server as atelet sees it, through grpc-go: unknown methods come back as code 12 with our
 * message (not a transport-level 404 mapping), statuses and messages survive, deadlines expire as
 * DEADLINE_EXCEEDED, responses decode, and grpc-go's own reflection client lists and describes
 * `ateom.Ateom`.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { assertEquals, assertStringIncludes } from "../assert.ts";
import { CheckpointWorkloadResponseSchema } from "../../proto/gen/ateom/ateom_pb.ts";
import { buildGoClient, goCallAll } from "./go_client.ts";
import {
  aborted,
  CHECKPOINT,
  checkpointBytes,
  FakeRuntime,
  RUN,
  runBytes,
  withServer,
} from "./harness.ts";

Deno.test({
  name: "api via grpc-go: codes, messages, deadline, response bytes and reflection",
  async fn() {
    const binary = await buildGoClient();
    const runtime = new FakeRuntime();
    let slow = true;
    runtime.behaviour.run = async (_req, signal) => {
      if (!slow) return;
      await aborted(signal);
      throw new Error("aborted");
    };
    await withServer(runtime, async ({ socket, server }) => {
      const r = await goCallAll(binary, socket, [
        { path: "/ateom.Ateom/Nope" },
        { path: RUN, request: runBytes({ actorId: "" }) },
        { path: CHECKPOINT, request: checkpointBytes() },
        { path: RUN, request: runBytes(), timeoutMs: 200 },
        { reflect: "list" },
        { reflect: "ateom.Ateom" },
      ]);
      assertEquals(r[0].code, 12);
      assertEquals(
        r[0].message,
        "unknown method /ateom.Ateom/Nope: this worker serves ateom.Ateom, grpc.reflection.v1.ServerReflection, grpc.reflection.v1alpha.ServerReflection",
      );
      assertEquals(r[1].code, 3);
      assertStringIncludes(r[1].message!, "actor_id is empty");
      assertEquals(r[2].code, 9);
      assertEquals(r[3].code, 4);
      assertEquals(r[4].services, [
        "ateom.Ateom",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]);
      assertEquals(r[5].file, "ateom/ateom.proto");
      assertEquals(r[5].methods, [
        "Ateom.RunWorkload(.ateom.RunWorkloadRequest)",
        "Ateom.CheckpointWorkload(.ateom.CheckpointWorkloadRequest)",
        "Ateom.RestoreWorkload(.ateom.RestoreWorkloadRequest)",
      ]);

      slow = false;
      const ok = await goCallAll(binary, socket, [
        { path: RUN, request: runBytes() },
        { path: CHECKPOINT, request: checkpointBytes() },
      ]);
      assertEquals(ok.map((x) => x.code), [0, 0]);
      assertEquals(fromBinary(CheckpointWorkloadResponseSchema, ok[1].response!).snapshotFiles, [
        "config.json",
        "memory-ranges",
        "state.json",
      ]);
      assertEquals(server.state(), { phase: "available" });
    });
  },
});
