/**
 * Harness of the lifecycle tests: a worker (the real gRPC server with the micro-VM runtime)
 * serving a fake pod (tests/net fixture: pod netns with eth0, interior netns `ateom:<pod UID>`),
 * driving the strict cloud-hypervisor double with the kata-agent double as its guest; bundles
 * prepared as atelet does; a TypeScript gRPC client; and leak checks.
 *
 * The worker runs in this process with the pod netns given by name (lib/net runs every network
 * command in it), so its logs and the readiness prober can be observed and injected. The prober
 * used here reaches the double's HTTP stand-in over hybrid vsock (the double cannot answer TCP on
 * the tap); the production prober is TCP from the pod netns (see lib/lifecycle/readiness.ts).
 *
 * @module
 */
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import type { CheckpointRequest } from "../../lib/api/runtime.ts";
import { debugConsoleDump } from "../../lib/kata/debug_console.ts";
import { actorLogWriter } from "../../lib/log/actorlog.ts";
import { type RunningServer, startServer } from "../../lib/api/server.ts";
import { dialHybridVsock } from "../../lib/kata/hvsock.ts";
import { type Prober, probeRequest, readStatus } from "../../lib/lifecycle/readiness.ts";
import { MicroVmRuntime, type MicroVmRuntimeOptions } from "../../lib/lifecycle/runtime.ts";
import { jsonLogger } from "../../lib/log/logger.ts";
import { linksIn, netnsPath } from "../../lib/net/actor.ts";
import { type ActorKey, AteomPaths } from "../../lib/paths/paths.ts";
import { sparseCopy } from "../../lib/sparse/copy.ts";
import {
  type CheckpointWorkloadRequest,
  CheckpointWorkloadRequestSchema,
  type RestoreWorkloadRequest,
  RestoreWorkloadRequestSchema,
  type RunWorkloadRequest,
  RunWorkloadRequestSchema,
  SnapshotScope,
} from "../../proto/gen/ateom/ateom_pb.ts";
import { type Fixture, withFixture } from "../net/fixture.ts";
import { assert, assertEquals } from "../assert.ts";
import { type AteomClient, ateomClient } from "./grpc.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
export const CH_DOUBLE = join(ROOT, "tests/doubles/cloud-hypervisor");
export const AGENT_DOUBLE = join(ROOT, "tests/doubles/kata/agent_guest.ts");
/** Every bundle file gets this mtime, as unpacked image layers carry fixed times. */
const FIXED_TIME = new Date("2026-01-02T03:04:05Z");

/** Reaches the kata double's readiness stand-in (HTTP on vsock port = the container port). */
export const vsockProber: Prober = async (target, signal) => {
  let conn: Deno.UnixConn;
  try {
    conn = await dialHybridVsock(target.vsockSocket, target.port, {
      signal,
      deadlineMs: 300,
      retryDelayMs: 20,
    });
  } catch (e) {
    return { error: `connection refused (${(e as Error).message.slice(0, 60)})` };
  }
  const onAbort = () => conn.close();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    await conn.write(new TextEncoder().encode(probeRequest(target.host, target.port, target.path)));
    return await readStatus(conn);
  } catch (e) {
    return { error: (e as Error).message };
  } finally {
    signal.removeEventListener("abort", onAbort);
    try {
      conn.close();
    } catch { /* closed */ }
  }
};

/** A container of a test actor. */
export interface TestContainer {
  name: string;
  args: string[];
  env?: string[];
  readyz?: { path: string; port: number };
  /** Adds a file of this many MiB of data to the rootfs (makes the disk build take a while). */
  bigFileMiB?: number;
}

export interface WorkerOptions {
  chVersion: number;
  /** CH_DOUBLE_FAIL for the next VMM launches (mutable through {@link Worker.fail}). */
  fail?: string[];
  memoryRestoreMode?: MicroVmRuntimeOptions["memoryRestoreMode"];
  agentDialTimeoutMs?: number;
  /** CH_DOUBLE_FILL_REFUSALS: snapshots refused after a v53+ OnDemand restore. */
  fillRefusals?: number;
  /** Runtime options passed through (limits and test seams). */
  runtime?: Pick<
    MicroVmRuntimeOptions,
    "readyzTimeoutMs" | "onCapturePhase" | "mergeHooks" | "prober"
  >;
}

/** A worker serving one fake pod. */
export interface Worker {
  fx: Fixture;
  podUid: string;
  base: string;
  paths: AteomPaths;
  ateomDir: string;
  socket: string;
  client: AteomClient;
  runtime: MicroVmRuntime;
  /** What the runtime was built with (to build another, as a restarted worker would). */
  runtimeOptions: MicroVmRuntimeOptions;
  server: RunningServer;
  /** Worker log lines (parsed JSON). */
  logs: Record<string, unknown>[];
  /** Actor log lines (parsed JSON), in order. */
  actorLogs: Record<string, unknown>[];
  /** Called after each actor log line is appended to {@link actorLogs}. */
  actorLogListeners: Set<() => void>;
  /** The raw stdout text both go to. */
  stdout: string[];
  fail: string[];
  /**
   * Resolves when a worker log line with `msg` appears (from now on); rejects when none does
   * within `timeoutMs` (default 20 s), so a missing line fails the test instead of hanging it.
   */
  logged(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** The worker log line written once a failed activation has been unwound. */
export const UNWOUND = "activation failed; everything it created was removed";

let workers = 0;

/** Starts a worker for the pod of `fx` under a fresh base path (another "node"). */
export async function startWorker(fx: Fixture, options: WorkerOptions): Promise<Worker> {
  // The fixture's interior netns is `ateom:test-<pid>-<n>`, so the pod UID is the part after ":".
  const podUid = fx.interior.slice("ateom:".length);
  const base = await Deno.makeTempDir({ prefix: `ateom-lc-${++workers}-` });
  const paths = new AteomPaths(base);
  const assetsDir = join(base, "assets");
  await Deno.mkdir(assetsDir);
  await Deno.writeTextFile(join(assetsDir, "vmlinux"), "kernel\n");
  await Deno.writeTextFile(join(assetsDir, "kata.img"), "guest image\n");
  await Deno.writeTextFile(
    join(assetsDir, "resolv.conf"),
    "nameserver 10.99.7.53\nsearch pod.local\n",
  );
  const stdout: string[] = [];
  const logs: Record<string, unknown>[] = [];
  const actorLogs: Record<string, unknown>[] = [];
  const actorLogListeners = new Set<() => void>();
  const waiters: {
    msg: string;
    resolve: (r: Record<string, unknown>) => void;
    timer: ReturnType<typeof setTimeout>;
  }[] = [];
  const sink = (text: string) => {
    for (const line of text.split("\n").filter((l) => l)) {
      stdout.push(line);
      const rec = JSON.parse(line);
      if ("level" in rec) {
        logs.push(rec);
        for (const w of waiters.filter((w) => w.msg === rec.msg)) {
          waiters.splice(waiters.indexOf(w), 1);
          clearTimeout(w.timer);
          w.resolve(rec);
        }
      } else {
        actorLogs.push(rec);
        for (const listener of [...actorLogListeners]) listener();
      }
    }
  };
  const logger = jsonLogger(sink, "DEBUG");
  const worker = {
    podUid,
    basePath: base,
    ateomDir: paths.ateomDir(podUid),
    netnsName: fx.interior,
  };
  const fail = [...(options.fail ?? [])];
  const runtimeOptions: MicroVmRuntimeOptions = {
    worker,
    logger,
    chBinary: CH_DOUBLE,
    podNetns: fx.pod,
    runner: fx.env.runner,
    resolvConf: join(assetsDir, "resolv.conf"),
    prober: vsockProber,
    memoryRestoreMode: options.memoryRestoreMode,
    agentDialTimeoutMs: options.agentDialTimeoutMs ?? 10_000,
    vmmEnv: () => ({
      CH_DOUBLE_GUEST: AGENT_DOUBLE,
      CH_DOUBLE_VERSION: String(options.chVersion),
      CH_DOUBLE_FAIL: fail.join(","),
      CH_DOUBLE_FILL_REFUSALS: String(options.fillRefusals ?? 1),
    }),
    ...options.runtime,
  };
  const runtime = new MicroVmRuntime(runtimeOptions);
  await runtime.startup();
  const server = await startServer({
    podUid,
    basePath: base,
    runtime,
    logger,
    actorLogSink: sink,
    shutdownGraceMs: 0,
  });
  return {
    fx,
    podUid,
    base,
    paths,
    ateomDir: worker.ateomDir,
    socket: server.socketPath,
    client: ateomClient(server.socketPath),
    runtime,
    runtimeOptions,
    server,
    logs,
    actorLogs,
    actorLogListeners,
    stdout,
    fail,
    logged: (msg, timeoutMs = 20_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`no worker log line ${JSON.stringify(msg)} within ${timeoutMs} ms`));
        }, timeoutMs);
        const waiter = { msg, resolve, timer };
        waiters.push(waiter);
      }),
    async stop() {
      for (const w of waiters.splice(0)) clearTimeout(w.timer);
      await server.close();
      await runtime.close();
      await Deno.remove(base, { recursive: true }).catch(() => {});
    },
  };
}

/** Runs `fn` with a worker on a fresh fake pod; the worker stops even when `fn` fails. */
export async function withWorker(
  options: WorkerOptions,
  fn: (w: Worker) => Promise<void>,
): Promise<void> {
  await withFixture(async (fx) => {
    const w = await startWorker(fx, options);
    try {
      await fn(w);
    } finally {
      await w.stop();
    }
  });
}

/** The counter workload: logs `count N` at start and on each `tick` (debug console). */
export const COUNTER: TestContainer[] = [{ name: "app", args: ["counter"] }];

let actors = 0;

/** A fresh actor key (unique in this test process). */
export function nextActor(prefix = "act"): ActorKey {
  return { namespace: "ns", template: "tmpl", id: `${prefix}-${++actors}` };
}

/** Advances the counter of the VM `w` runs by `n` (through the guest's debug console). */
export async function tick(w: Worker, n: number): Promise<void> {
  const out = await debugConsoleDump(join(w.ateomDir, "vm/kata.hvsock"), `tick ${n}`);
  assert(!out.includes("unreachable"), out);
}

/** Runs the counter as `actor` on `w` and waits for its first count. */
export async function runCounter(w: Worker, actor: ActorKey): Promise<void> {
  await prepareBundles(w, actor, COUNTER);
  await w.client.runWorkload(runRequest(actor, COUNTER, await assetsOf(w)));
  await waitForLine(w, "app", "count 1");
}

/**
 * Container `web` running the kata double's HTTP stand-in (`server`, port 8080, answering
 * `status`, default 200), probed at `path` on `probePort` (default 8080).
 */
export function webServer(
  options: { status?: number; path?: string; probePort?: number } = {},
): TestContainer[] {
  return [{
    name: "web",
    args: ["server"],
    env: ["READYZ_PORT=8080", ...(options.status ? [`READYZ_STATUS=${options.status}`] : [])],
    readyz: { path: options.path ?? "/readyz", port: options.probePort ?? 8080 },
  }];
}

/**
 * Ships `fromActor`'s checkpoint on `from` to a fresh actor on `to`, restores the counter there,
 * waits for `line` (the count it must continue with), checkpoints it and checks for leaks.
 */
export async function restoreAndCount(
  from: Worker,
  fromActor: ActorKey,
  to: Worker,
  line: string,
): Promise<void> {
  const next = nextActor("next");
  await prepareBundles(to, next, COUNTER);
  await shipCheckpoint(from, fromActor, to, next);
  await to.client.restoreWorkload(restoreRequest(next, COUNTER, await assetsOf(to)));
  await waitForLine(to, "app", line);
  await to.client.checkpointWorkload(checkpointRequest(next));
  await assertNoLeaks(to);
}

/** Run then Checkpoint a fresh actor: the worker is usable and clean afterwards. */
export async function runSucceeds(w: Worker): Promise<void> {
  const actor = nextActor("ok");
  await runCounter(w, actor);
  await w.client.checkpointWorkload(checkpointRequest(actor));
  await assertNoLeaks(w);
}

/**
 * Runs the counter as a fresh actor, checkpoints it and restores it on the same worker as
 * another actor (OnDemand on every CH version): returns that restored actor, running.
 */
export async function restoredCounter(w: Worker, prefix = "rst"): Promise<ActorKey> {
  const first = nextActor(prefix);
  await runCounter(w, first);
  await w.client.checkpointWorkload(checkpointRequest(first));
  const second = nextActor(prefix);
  await prepareBundles(w, second, COUNTER);
  await shipCheckpoint(w, first, w, second);
  await w.client.restoreWorkload(restoreRequest(second, COUNTER, await assetsOf(w)));
  return second;
}

/** A CheckpointWorkload request as the service hands it to a runtime (for direct calls). */
export function runtimeCheckpointRequest(w: Worker, actor: ActorKey): CheckpointRequest {
  const paths = w.paths;
  return {
    actor,
    worker: w.runtimeOptions.worker,
    paths: {
      actorDir: paths.actorDir(actor),
      bundlesDir: paths.bundlesDir(actor),
      checkpointStateDir: paths.checkpointStateDir(actor),
      restoreStateDir: paths.restoreStateDir(actor),
      identityDir: paths.identityDir(actor),
    },
    containers: [],
    runtimeAssetPaths: {},
    actorLog: actorLogWriter(() => {}, {
      actorId: actor.id,
      actorTemplateName: actor.template,
      actorTemplateNamespace: actor.namespace,
    }),
    scope: "full",
    snapshotUriPrefix: "",
  };
}

/** The asset paths a request carries; `kernelParams` go through a kata config file. */
export async function assetsOf(w: Worker, kernelParams = ""): Promise<Record<string, string>> {
  const dir = join(w.base, "assets");
  const config = join(
    dir,
    `kata-${kernelParams.length}-${Math.random().toString(36).slice(2)}.toml`,
  );
  await Deno.writeTextFile(
    config,
    `[hypervisor.clh]\ndefault_memory = 64\ndefault_vcpus = 1\nkernel_params = ${
      JSON.stringify(kernelParams)
    }\n`,
  );
  return {
    "kata-kernel": join(dir, "vmlinux"),
    "kata-image": join(dir, "kata.img"),
    "kata-config": config,
  };
}

async function fixTimes(path: string): Promise<void> {
  const stat = await Deno.lstat(path);
  if (stat.isDirectory) {
    for await (const e of Deno.readDir(path)) await fixTimes(join(path, e.name));
  }
  if (!stat.isSymlink) await Deno.utime(path, FIXED_TIME, FIXED_TIME);
}

/** Writes the OCI bundles of `containers` under the actor dir, as atelet does. */
export async function prepareBundles(
  w: Worker,
  actor: ActorKey,
  containers: TestContainer[],
): Promise<void> {
  for (const c of containers) {
    const dir = w.paths.bundleDir(actor, c.name);
    await Deno.mkdir(join(dir, "rootfs/etc"), { recursive: true });
    await Deno.mkdir(join(dir, "rootfs/bin"), { recursive: true });
    await Deno.writeTextFile(join(dir, "rootfs/bin", c.args[0]), `#!/bin/sh\n# ${c.name}\n`, {
      mode: 0o755,
    });
    await Deno.writeTextFile(join(dir, "rootfs/etc/os-release"), "NAME=test\n");
    if (c.bigFileMiB) {
      using f = await Deno.open(join(dir, "rootfs/bin/blob"), { write: true, create: true });
      const chunk = new Uint8Array(1 << 20).fill(0x5a);
      for (let i = 0; i < c.bigFileMiB; i++) await f.write(chunk);
    }
    await fixTimes(join(dir, "rootfs"));
    const spec = {
      ociVersion: "1.0.2",
      hostname: "actor-host",
      process: {
        args: c.args,
        env: ["PATH=/bin", ...(c.env ?? [])],
        cwd: "/",
        user: { uid: 0, gid: 0 },
      },
      root: { path: "rootfs" },
      mounts: [{ destination: "/proc", type: "proc", source: "proc" }],
      annotations: { "io.kubernetes.cri.sandbox-id": "x" },
      linux: {
        namespaces: [{ type: "pid" }, { type: "mount" }, {
          type: "network",
          path: "/var/run/netns/x",
        }],
      },
    };
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(spec, null, 2));
  }
}

function specOf(containers: TestContainer[]) {
  return {
    containers: containers.map((c) => ({
      name: c.name,
      readyz: c.readyz ? { httpGet: c.readyz } : undefined,
    })),
  };
}

export function runRequest(
  actor: ActorKey,
  containers: TestContainer[],
  assets: Record<string, string>,
): RunWorkloadRequest {
  return create(RunWorkloadRequestSchema, {
    actorTemplateNamespace: actor.namespace,
    actorTemplateName: actor.template,
    actorId: actor.id,
    spec: specOf(containers),
    runtimeAssetPaths: assets,
  });
}

export function checkpointRequest(
  actor: ActorKey,
  scope = SnapshotScope.FULL,
): CheckpointWorkloadRequest {
  return create(CheckpointWorkloadRequestSchema, {
    actorTemplateNamespace: actor.namespace,
    actorTemplateName: actor.template,
    actorId: actor.id,
    scope,
    snapshotUriPrefix: "file:///unused/",
  });
}

export function restoreRequest(
  actor: ActorKey,
  containers: TestContainer[],
  assets: Record<string, string>,
): RestoreWorkloadRequest {
  return create(RestoreWorkloadRequestSchema, {
    actorTemplateNamespace: actor.namespace,
    actorTemplateName: actor.template,
    actorId: actor.id,
    spec: specOf(containers),
    runtimeAssetPaths: assets,
    scope: SnapshotScope.FULL,
    snapshotUriPrefix: "file:///unused/",
  });
}

/** Copies `from`'s checkpoint-state to `to`'s restore-state (sparse), as atelet's download does. */
export async function shipCheckpoint(
  from: Worker,
  fromActor: ActorKey,
  to: Worker,
  toActor: ActorKey,
): Promise<string[]> {
  const src = from.paths.checkpointStateDir(fromActor);
  const dst = to.paths.restoreStateDir(toActor);
  await Deno.remove(dst, { recursive: true }).catch(() => {});
  await Deno.mkdir(dst, { recursive: true });
  const names: string[] = [];
  for await (const e of Deno.readDir(src)) {
    await sparseCopy(join(src, e.name), join(dst, e.name));
    names.push(e.name);
  }
  return names.sort();
}

/** The actor log messages of `container`, in order. */
export function containerLines(w: Worker, container: string): string[] {
  return w.actorLogs
    .filter((r) => (r.labels as Record<string, string>)?.["ate.dev/container_name"] === container)
    .map((r) => r.message as string);
}

/**
 * Resolves once `container` has logged `line` (checked at every actor log line); rejects when it
 * has not within `timeoutMs`, so a missing line fails the test instead of hanging it.
 */
export function waitForLine(
  w: Worker,
  container: string,
  line: string,
  timeoutMs = 10_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!containerLines(w, container).includes(line)) return;
      w.actorLogListeners.delete(check);
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      w.actorLogListeners.delete(check);
      reject(
        new Error(
          `${container} never logged ${JSON.stringify(line)}; got ${
            JSON.stringify(containerLines(w, container))
          }`,
        ),
      );
    }, timeoutMs);
    w.actorLogListeners.add(check);
    check();
  });
}

/** Pids of live processes whose command line mentions `needle`. */
export function processesMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      if (cmd.includes(needle) && !/\) Z /.test(stat)) pids.push(Number(e.name));
    } catch { /* gone */ }
  }
  return pids;
}

async function walk(dir: string, out: string[] = []): Promise<string[]> {
  try {
    for await (const e of Deno.readDir(dir)) {
      const path = join(dir, e.name);
      out.push(path);
      if (e.isDirectory) await walk(path, out);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out;
}

/**
 * Asserts the worker holds nothing of an activation: no VMM process, no VM run directory
 * (sockets, serial log), no activation state, no actor links or nft table, no temp files.
 */
export async function assertNoLeaks(
  w: Pick<Worker, "base" | "ateomDir" | "fx">,
): Promise<void> {
  const vmDir = join(w.ateomDir, "vm");
  // The VMM's command line names its api socket in the VM run directory.
  assertEquals(processesMentioning(vmDir), [], "VMM processes left");
  assertEquals(await Deno.lstat(vmDir).then(() => "present", () => "gone"), "gone", vmDir);
  assertEquals(
    await Deno.lstat(join(w.ateomDir, "current-actor")).then(() => "present", () => "gone"),
    "gone",
    "current-actor pointer",
  );
  assertEquals(await linksIn(netnsPath(w.fx.interior)), ["lo"], "interior links");
  const podLinks = await linksIn(netnsPath(w.fx.pod));
  assert(!podLinks.includes("ateom0"), `pod links ${podLinks}`);
  const tables = await w.fx.sh("ip", "netns", "exec", w.fx.pod, "nft", "list", "tables");
  assert(!tables.includes("ateom_actor"), `nft tables: ${tables}`);
  const files = await walk(join(w.base, "actors"));
  const temps = files.filter((f) =>
    /\.tmp|\.merging|microvm-state\.json$/.test(f.slice(f.lastIndexOf("/")))
  );
  assertEquals(temps, [], "temp or state files left");
}
