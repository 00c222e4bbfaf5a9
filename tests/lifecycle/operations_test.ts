/**
 * Operations: a restarted worker checkpoints a VM it did not start (from the state persisted in
 * the actor dir), and `serve` started in the pod netns reaps the VMM a SIGKILLed predecessor left
 * (identified by pid and start time), forwards actor logs on its stdout, and tears its actor down
 * on SIGTERM.
 *
 * @module
 */
import { join } from "node:path";
import { MicroVmRuntime } from "../../lib/lifecycle/runtime.ts";
import { isVmmAlive } from "../../lib/lifecycle/state.ts";
import { ateomNetnsName, AteomPaths } from "../../lib/paths/paths.ts";
import { type Fixture, Proc, withFixture } from "../net/fixture.ts";
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { ateomClient, failureOf } from "./grpc.ts";
import {
  AGENT_DOUBLE,
  assertNoLeaks,
  CH_DOUBLE,
  checkpointRequest,
  COUNTER,
  prepareBundles,
  processesMentioning,
  runCounter,
  runRequest,
  runtimeCheckpointRequest,
  startWorker,
  webServer,
} from "./harness.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

Deno.test("operations: a restarted worker checkpoints the VM it did not start", async () => {
  await withFixture(async (fx) => {
    const w = await startWorker(fx, { chVersion: 54 });
    try {
      const actor = { namespace: "ns", template: "tmpl", id: "adopt-1" };
      await runCounter(w, actor);
      const vmm = w.runtime.activeState!.vmm;

      // A new runtime knows nothing in memory: it finds the VM through the actor dir. Its
      // startup leaves the VM alone, as the worker that started it (this process) still lives.
      const restarted = new MicroVmRuntime(w.runtimeOptions);
      await restarted.startup();
      assert(await isVmmAlive(vmm), "startup reaped the VM of a live worker");
      assert(
        w.logs.some((l) =>
          l.msg === "the worker that started the recorded VM is still running; not reaping it"
        ),
      );
      const { snapshotFiles } = await restarted.checkpoint(
        runtimeCheckpointRequest(w, actor),
        new AbortController().signal,
      );
      assertEquals(snapshotFiles, ["base-id", "config.json", "memory-ranges", "state.json"]);
      assert(w.logs.some((l) => l.msg === "adopting a VM this process did not start"));
      assertEquals(processesMentioning(join(w.ateomDir, "vm")), []);
      assert(!(await isVmmAlive(vmm)), "the adopted VMM is still running");
      await assertNoLeaks(w);
    } finally {
      await w.stop();
    }
  });
});

function serveIn(
  pod: string,
  podUid: string,
  base: string,
  env: Record<string, string> = {},
  flags: string[] = [],
): Proc {
  return new Proc(
    new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        pod,
        join(ROOT, "bin/ateom-microvm"),
        "serve",
        "--pod-uid",
        podUid,
        "--base-path",
        base,
        "--cloud-hypervisor-binary",
        CH_DOUBLE,
        "--log-level",
        "debug",
        ...flags,
      ],
      env: { CH_DOUBLE_GUEST: AGENT_DOUBLE, CH_DOUBLE_VERSION: "52", ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn(),
  );
}

/** Reads `proc`'s stdout until a line matching `match`; returns every line read. */
async function until(
  proc: Proc,
  match: (rec: Record<string, unknown>) => boolean,
  seen: Record<string, unknown>[],
): Promise<Record<string, unknown>> {
  for (;;) {
    const line = await proc.nextLine();
    if (line === undefined) throw new Error(`serve ended early; stderr: ${proc.stderr}`);
    const rec = JSON.parse(line);
    seen.push(rec);
    if (match(rec)) return rec;
  }
}

/** A base path for `serve` in the pod of `fx`, with stand-in kernel and image assets. */
async function serveBase(fx: Fixture, prefix: string) {
  const podUid = fx.interior.slice("ateom:".length);
  const base = await Deno.makeTempDir({ prefix });
  const paths = new AteomPaths(base);
  const assets = join(base, "assets");
  await Deno.mkdir(assets);
  await Deno.writeTextFile(join(assets, "vmlinux"), "k");
  await Deno.writeTextFile(join(assets, "kata.img"), "i");
  const assetPaths = {
    "kata-kernel": join(assets, "vmlinux"),
    "kata-image": join(assets, "kata.img"),
  };
  return { podUid, base, paths, assetPaths, leaks: { base, ateomDir: paths.ateomDir(podUid), fx } };
}

Deno.test("operations: serve in the pod netns reaps the VMM of a killed predecessor", async () => {
  await withFixture(async (fx) => {
    const { podUid, base, paths, assetPaths, leaks } = await serveBase(fx, "ateom-lc-serve-");
    assertEquals(ateomNetnsName(podUid), fx.interior);
    const actor = { namespace: "ns", template: "tmpl", id: "reap-1" };
    const seen: Record<string, unknown>[] = [];
    try {
      const first = fx.spawned(serveIn(fx.pod, podUid, base));
      await until(first, (r) => r.msg === "ateom-microvm serving", seen);
      await prepareBundles({ paths } as never, actor, COUNTER);
      await ateomClient(paths.ateomSocket(podUid)).runWorkload(
        runRequest(actor, COUNTER, assetPaths),
      );
      // The container's output reaches serve's stdout as an actor log record.
      const count = await until(first, (r) => r.message === "count 1", seen);
      assertEquals(count.labels, {
        "ate.dev/actor_id": "reap-1",
        "ate.dev/actor_template_name": "tmpl",
        "ate.dev/actor_template_namespace": "ns",
        "ate.dev/container_name": "app",
      });
      const state = JSON.parse(
        await Deno.readTextFile(join(paths.actorDir(actor), "microvm-state.json")),
      );
      first.kill();
      await first.done;
      // The VMM outlives the killed worker.
      assert(await isVmmAlive(state.vmm), "VMM died with the worker");

      const second = fx.spawned(serveIn(fx.pod, podUid, base));
      const reaped = await until(
        second,
        (r) => r.msg === "reaped the activation of a previous worker instance",
        seen,
      );
      assertEquals(reaped.vmm_pid, state.vmm.pid);
      assertEquals(reaped.vmm, "killed");
      await until(second, (r) => r.msg === "ateom-microvm serving", seen);
      assert(!(await isVmmAlive(state.vmm)));
      await assertNoLeaks(leaks);

      // The new worker runs the actor again; SIGTERM tears it down and exits 0.
      await ateomClient(paths.ateomSocket(podUid)).runWorkload(
        runRequest(actor, COUNTER, assetPaths),
      );
      await until(second, (r) => r.message === "Actor started", seen);
      second.child.kill("SIGTERM");
      assertEquals(await second.done, 0);
      await assertNoLeaks(leaks);
    } finally {
      await Deno.remove(base, { recursive: true }).catch(() => {});
    }
  });
});

Deno.test("operations: readiness probes cross the actor network from serve's pod netns to the guest", async () => {
  await withFixture(async (fx) => {
    const { podUid, base, paths, assetPaths, leaks } = await serveBase(fx, "ateom-lc-ready-");
    const seen: Record<string, unknown>[] = [];
    try {
      // The double answers TCP on the tap, relaying to the kata double's readiness stand-in.
      const serve = fx.spawned(
        serveIn(fx.pod, podUid, base, { CH_DOUBLE_NET_STACK: "1" }, ["--readyz-timeout", "2s"]),
      );
      await until(serve, (r) => r.msg === "ateom-microvm serving", seen);
      const client = ateomClient(paths.ateomSocket(podUid));
      const web = (status: number) => webServer({ status });
      const ok = { namespace: "ns", template: "tmpl", id: "tcp-ready" };
      await prepareBundles({ paths } as never, ok, web(200));
      // A deadline, so a broken network path fails here instead of polling forever.
      await client.runWorkload(runRequest(ok, web(200), assetPaths), { timeoutMs: 20_000 });
      const running = await until(serve, (r) => r.msg === "actor running", seen);
      assert("waiting for readiness" in (running.steps as object));
      await client.checkpointWorkload(checkpointRequest(ok));

      const sick = { namespace: "ns", template: "tmpl", id: "tcp-sick" };
      await prepareBundles({ paths } as never, sick, web(503));
      // No client deadline: serve's --readyz-timeout ends the wait.
      const f = await failureOf(client.runWorkload(runRequest(sick, web(503), assetPaths)));
      assertEquals(f.code, "DEADLINE_EXCEEDED");
      // An HTTP status could only come from the guest, through veth, tc mirred and the tap.
      assertStringIncludes(
        f.message,
        "waiting for readiness: container web did not become ready within 2 s (the readiness limit, serve --readyz-timeout): GET http://169.254.17.2:8080/readyz last answered HTTP 503",
      );
      const failed = await until(serve, (r) => r.msg === "step failed", seen);
      assertEquals(failed.step, "waiting for readiness");
      await until(
        serve,
        (r) => r.msg === "activation failed; everything it created was removed",
        seen,
      );
      serve.child.kill("SIGTERM");
      assertEquals(await serve.done, 0);
      await assertNoLeaks(leaks);
    } finally {
      await Deno.remove(base, { recursive: true }).catch(() => {});
    }
  });
});
