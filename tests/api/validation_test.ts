/**
 * A real gRPC client (python3-grpcio) sends each invalid request to every RPC it applies to and
 * gets INVALID_ARGUMENT (or UNIMPLEMENTED) with the expected one-line message; the worker stays
 * available and the default runtime answers UNIMPLEMENTED for the steps themselves.
 */
import { assertEquals, assertStringIncludes } from "../assert.ts";
import { refusingRuntime } from "./refusing_runtime.ts";
import { type Call, callAll } from "./client.ts";
import {
  ACTOR,
  CHECKPOINT,
  checkpointBytes,
  RESTORE,
  restoreBytes,
  RUN,
  runBytes,
  SPEC,
  withServer,
} from "./harness.ts";
import { SnapshotScope } from "../../proto/gen/ateom/ateom_pb.ts";

type Case = [name: string, path: string, request: Uint8Array, code: string, message: string];

const all = (
  name: string,
  init: Record<string, unknown>,
  code: string,
  message: string,
  rpcs = [RUN, CHECKPOINT, RESTORE],
): Case[] =>
  rpcs.map((path) => {
    const bytes = path === RUN
      ? runBytes(init)
      : path === RESTORE
      ? restoreBytes(init)
      : checkpointBytes(init);
    return [`${name} (${path})`, path, bytes, code, message];
  });

const CASES: Case[] = [
  ...all(
    "empty actor id",
    { actorId: "" },
    "INVALID_ARGUMENT",
    "actor_id is empty; use a DNS-1123 label",
  ),
  ...all(
    "slash in namespace",
    { actorTemplateNamespace: "a/b" },
    "INVALID_ARGUMENT",
    'actor_template_namespace "a/b" is invalid: it contains "/"',
  ),
  ...all(
    "dot-dot in template",
    { actorTemplateName: "x..y" },
    "INVALID_ARGUMENT",
    'actor_template_name "x..y" is invalid: it contains ".."',
  ),
  ...all(
    "NUL in id",
    { actorId: "a\0b" },
    "INVALID_ARGUMENT",
    "is invalid: it contains a NUL byte",
  ),
  ...all(
    "over 253 chars",
    { actorTemplateName: "t".repeat(254) },
    "INVALID_ARGUMENT",
    "it is 254 characters long, over the limit of 253",
  ),
  ...all(
    "uppercase id",
    { actorId: "Act1" },
    "INVALID_ARGUMENT",
    'actor_id "Act1" is invalid: it is not a DNS-1123 label',
  ),
  ...all(
    "empty namespace",
    { actorTemplateNamespace: "" },
    "INVALID_ARGUMENT",
    "actor_template_namespace is empty",
  ),
  ...all(
    "zero containers",
    { spec: { containers: [] } },
    "INVALID_ARGUMENT",
    "spec has no containers: ",
    [RUN, RESTORE],
  ),
  ...all(
    "duplicate container",
    { spec: { containers: [{ name: "web" }, { name: "web" }] } },
    "INVALID_ARGUMENT",
    'spec.containers[1].name "web" is a duplicate',
  ),
  ...all(
    "bad container name",
    { spec: { containers: [{ name: "../etc" }] } },
    "INVALID_ARGUMENT",
    'spec.containers[0].name "../etc" is invalid: it contains "/"',
  ),
  ...all(
    "bad volume name",
    { spec: { containers: [{ name: "web", durableDirVolumes: ["a b"] }] } },
    "INVALID_ARGUMENT",
    'spec.containers[0].durable_dir_volumes[0] "a b" is invalid',
  ),
  ...all(
    "readyz port 0",
    { spec: { containers: [{ name: "web", readyz: { httpGet: { port: 0 } } }] } },
    "INVALID_ARGUMENT",
    "spec.containers[0].readyz.http_get.port is 0: use a TCP port in 1..65535",
  ),
  ...all(
    "readyz port 70000",
    { spec: { containers: [{ name: "web", readyz: { httpGet: { port: 70000 } } }] } },
    "INVALID_ARGUMENT",
    "port is 70000",
  ),
  ...all(
    "readyz path",
    { spec: { containers: [{ name: "web", readyz: { httpGet: { path: "ready", port: 80 } } }] } },
    "INVALID_ARGUMENT",
    'readyz.http_get.path "ready" is not an HTTP path',
  ),
  ...all(
    "too many containers",
    { spec: { containers: Array.from({ length: 26 }, (_, i) => ({ name: `c${i}` })) } },
    "UNIMPLEMENTED",
    "spec has 26 containers: ateom-microvm supports at most 25 per actor",
  ),
  ...all(
    "no assets",
    { runtimeAssetPaths: {} },
    "INVALID_ARGUMENT",
    'runtime_asset_paths is missing "kata-kernel" and "kata-image": atelet must fetch',
    [RUN, RESTORE],
  ),
  ...all(
    "no image",
    { runtimeAssetPaths: { "kata-kernel": "/k" } },
    "INVALID_ARGUMENT",
    'runtime_asset_paths is missing "kata-image"',
    [RUN, RESTORE],
  ),
  ...all(
    "relative asset",
    { runtimeAssetPaths: { "kata-kernel": "/k", "kata-image": "img" } },
    "INVALID_ARGUMENT",
    'runtime_asset_paths["kata-image"] = "img" is not an absolute path',
    [RUN, RESTORE],
  ),
  ...all(
    "unspecified scope",
    { scope: SnapshotScope.UNSPECIFIED },
    "INVALID_ARGUMENT",
    "scope is SNAPSHOT_SCOPE_UNSPECIFIED: set SNAPSHOT_SCOPE_FULL or SNAPSHOT_SCOPE_DATA",
    [CHECKPOINT, RESTORE],
  ),
  ...all(
    "unknown scope",
    { scope: 7 as SnapshotScope },
    "INVALID_ARGUMENT",
    "scope 7 is not a known SnapshotScope",
    [CHECKPOINT, RESTORE],
  ),
];

Deno.test("api: every invalid input gets its gRPC code and a one-line message", async () => {
  await withServer(refusingRuntime, async ({ socket, server }) => {
    const calls: Call[] = CASES.map(([, path, request]) => ({ path, request }));
    const results = await callAll(socket, calls);
    CASES.forEach(([name, , , code, message], i) => {
      assertEquals(results[i].code, code, `${name}: ${results[i].details}`);
      assertStringIncludes(results[i].details, message, name);
      assertEquals(results[i].details.includes("\n"), false, name);
    });
    assertEquals(server.state(), { phase: "available" });
  });
});

Deno.test("api: a runtime error (UNIMPLEMENTED) reaches the client per step and the worker stays usable", async () => {
  await withServer(refusingRuntime, async ({ socket, server, actorLogs }) => {
    const results = await callAll(socket, [
      { path: RUN, request: runBytes() },
      { path: RESTORE, request: restoreBytes() },
      { path: CHECKPOINT, request: checkpointBytes() },
      { path: RUN, request: runBytes({ spec: { containers: [{ name: "only" }] } }) },
    ]);
    assertEquals(results.map((r) => r.code), [
      "UNIMPLEMENTED",
      "UNIMPLEMENTED",
      "FAILED_PRECONDITION",
      "UNIMPLEMENTED",
    ]);
    assertEquals(results.map((r) => r.code_num), [12, 12, 9, 12]);
    assertStringIncludes(results[0].details, "RunWorkload is refused by this test runtime: ");
    assertStringIncludes(results[1].details, "RestoreWorkload is refused by this test runtime: ");
    assertStringIncludes(results[2].details, "no actor is running on this worker");
    assertEquals(server.state(), { phase: "available" });
    // The lifecycle event before the step is emitted; no "started" after a failure.
    assertEquals(actorLogs.map((r) => r.message), [
      "Actor starting",
      "Actor restoring",
      "Actor starting",
    ]);
    assertEquals(actorLogs[0].labels, {
      "ate.dev/actor_id": ACTOR.actorId,
      "ate.dev/actor_template_name": ACTOR.actorTemplateName,
      "ate.dev/actor_template_namespace": ACTOR.actorTemplateNamespace,
    });
  });
});

export { SPEC };
