/**
 * Multi-container actors (one disk and one agent container each, one sandbox), the golden rootfs
 * reset on a restore, readiness success, timeout at the RPC deadline and at the readiness limit,
 * and the actor-log format on the worker's stdout.
 *
 * @module
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch, assertStringIncludes } from "../assert.ts";
import { failureOf } from "./grpc.ts";
import {
  assertNoLeaks,
  assetsOf,
  checkpointRequest,
  containerLines,
  prepareBundles,
  restoredCounter,
  restoreRequest,
  runRequest,
  shipCheckpoint,
  type TestContainer,
  UNWOUND,
  waitForLine,
  webServer,
  withWorker,
  type Worker,
} from "./harness.ts";
import type { ActorKey } from "../../lib/paths/paths.ts";

const LABELS = {
  "ate.dev/actor_id": "multi-1",
  "ate.dev/actor_template_name": "tmpl",
  "ate.dev/actor_template_namespace": "ns",
};

Deno.test("lifecycle: a multi-container actor, its log lines on stdout, and a golden reset on restore", async () => {
  await withWorker({ chVersion: 54 }, async (w) => {
    const actor = { namespace: "ns", template: "tmpl", id: "multi-1" };
    const containers: TestContainer[] = [
      { name: "app", args: ["counter"] },
      {
        name: "s",
        args: [
          "emit",
          "--stdout",
          "plain words",
          "--stdout",
          '{"msg":"structured","n":1}',
          "--stderr",
          "oops",
        ],
      },
    ];
    await prepareBundles(w, actor, containers);
    await w.client.runWorkload(runRequest(actor, containers, await assetsOf(w)));
    await waitForLine(w, "app", "count 1");
    await waitForLine(w, "s", "oops");
    await waitForLine(w, "s", "plain words");
    // One writable disk per container, named after it.
    for (const name of ["app", "s"]) {
      await Deno.stat(join(w.paths.actorDir(actor), `rootfs-${name}.ext4`));
    }
    assertEquals(w.runtime.activeState?.containers.map((c) => c.agentId), ["app", "ctr-s"]);

    // The exact records on stdout: plain lines wrapped, JSON lines merged, labels per container.
    const line = (message: string) =>
      w.stdout.map((l) => JSON.parse(l)).find((r) => r.message === message || r.msg === message);
    const plain = line("plain words");
    assertEquals(Object.keys(plain), ["labels", "message", "time"]);
    assertEquals(plain.labels, { ...LABELS, "ate.dev/container_name": "s" });
    const structured = line("structured");
    assertEquals(structured.n, 1);
    assertEquals(structured.labels, { ...LABELS, "ate.dev/container_name": "s" });
    assert(typeof structured.time === "string");
    assertEquals(line("count 1").labels, { ...LABELS, "ate.dev/container_name": "app" });
    assertEquals(line("Actor started").labels, LABELS);

    await w.client.checkpointWorkload(checkpointRequest(actor));
    await assertNoLeaks(w);
    // Same actor restored on the same node: its disks come from the golden templates.
    await shipCheckpoint(w, actor, w, actor);
    await w.client.restoreWorkload(restoreRequest(actor, containers, await assetsOf(w)));
    assertEquals(
      w.logs.filter((l) => l.msg === "reset rootfs disk from its golden template").map((l) =>
        l.container
      ),
      ["app", "s"],
    );
    await waitForLine(w, "app", "count 2");
    await w.client.checkpointWorkload(checkpointRequest(actor));
    await assertNoLeaks(w);
  });
});

/**
 * Runs `containers` as `actor` under a 3 s deadline, expecting readiness to fail; returns the
 * error the step logged (the worker answers at the deadline, before its unwind) once unwound.
 */
async function notReady(w: Worker, actor: ActorKey, containers: TestContainer[]) {
  await prepareBundles(w, actor, containers);
  const failedStep = w.logged("step failed");
  const unwound = w.logged(UNWOUND);
  const f = await failureOf(
    w.client.runWorkload(runRequest(actor, containers, await assetsOf(w)), { timeoutMs: 3000 }),
  );
  assertEquals(f.code, "DEADLINE_EXCEEDED");
  const failed = await failedStep;
  assertEquals(failed.step, "waiting for readiness");
  await unwound;
  await assertNoLeaks(w);
  return String(failed.err);
}

Deno.test("lifecycle: readiness passes on 2xx and times out naming the container and its answer", async () => {
  await withWorker({ chVersion: 54 }, async (w) => {
    const ready = { namespace: "ns", template: "tmpl", id: "ready-1" };
    const web = webServer({ path: "/healthz" });
    await prepareBundles(w, ready, web);
    await w.client.runWorkload(runRequest(ready, web, await assetsOf(w)));
    const started = w.logs.find((l) => l.msg === "actor running")!;
    assert("waiting for readiness" in (started.steps as object));
    await w.client.checkpointWorkload(checkpointRequest(ready));

    const sick = { namespace: "ns", template: "tmpl", id: "sick-1" };
    assertStringIncludes(
      await notReady(w, sick, webServer({ status: 503 })),
      "container web did not become ready: GET http://169.254.17.2:8080/readyz last answered HTTP 503",
    );
    // A port nothing serves: the error says so.
    assertStringIncludes(
      await notReady(w, sick, webServer({ probePort: 9090 })),
      "GET http://169.254.17.2:9090/readyz last answered connection refused",
    );
    assertEquals(containerLines(w, "web"), []);
  });
});

Deno.test("lifecycle: scope DATA is UNIMPLEMENTED; missing kernel or image is INVALID_ARGUMENT naming the key", async () => {
  await withWorker({ chVersion: 54 }, async (w) => {
    const actor = { namespace: "ns", template: "tmpl", id: "scope-1" };
    const app: TestContainer[] = [{ name: "app", args: ["counter"] }];
    await prepareBundles(w, actor, app);
    const assets = await assetsOf(w);
    delete assets["kata-image"];
    const bad = await failureOf(w.client.runWorkload(runRequest(actor, app, assets)));
    assertEquals(bad.code, "INVALID_ARGUMENT");
    assertStringIncludes(bad.message, '"kata-image"');
    await assertNoLeaks(w);
    await w.client.runWorkload(runRequest(actor, app, await assetsOf(w)));
    const data = await failureOf(w.client.checkpointWorkload(checkpointRequest(actor, 2)));
    assertEquals(data.code, "UNIMPLEMENTED");
    assertStringIncludes(data.message, "scope DATA is not supported by the micro-VM runtime");
    await w.client.checkpointWorkload(checkpointRequest(actor));
    await assertNoLeaks(w);
  });
});

Deno.test("lifecycle: --memory-restore-mode copy restores with Copy and needs no merge on CH v52", async () => {
  await withWorker({ chVersion: 52, memoryRestoreMode: "copy" }, async (w) => {
    const restored = await restoredCounter(w, "copy");
    assertEquals(w.runtime.activeState?.memoryMode, "Copy");
    assertEquals(w.runtime.activeState?.atCheckpoint, "none");
    await waitForLine(w, "app", "count 2");
    await w.client.checkpointWorkload(checkpointRequest(restored));
    assert(!w.logs.some((l) => l.msg === "merged the OnDemand delta onto the restore source"));
    // Copy restores do not consume the restore source.
    await Deno.stat(join(w.paths.restoreStateDir(restored), "memory-ranges"));
    await assertNoLeaks(w);
  });
});

Deno.test("lifecycle: without an RPC deadline, readiness gives up at the readiness limit naming the container and its answer", async () => {
  await withWorker({ chVersion: 54, runtime: { readyzTimeoutMs: 1500 } }, async (w) => {
    const sick = { namespace: "ns", template: "tmpl", id: "limit-1" };
    const failing = webServer({ status: 503 });
    await prepareBundles(w, sick, failing);
    // No client deadline: only the limit ends the wait, and the answer comes after the unwind.
    const f = await failureOf(w.client.runWorkload(runRequest(sick, failing, await assetsOf(w))));
    assertEquals(f.code, "DEADLINE_EXCEEDED");
    assertMatch(
      f.message,
      /^waiting for readiness: container web did not become ready within 1500 ms \(the readiness limit, serve --readyz-timeout\): GET http:\/\/169\.254\.17\.2:8080\/readyz last answered HTTP 503 \(\d+ attempts\); check the container's logs$/,
    );
    assertEquals(w.server.state(), { phase: "available" });
    await assertNoLeaks(w);
  });
});
