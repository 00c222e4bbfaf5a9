/**
 * A stand-in for the `serve` worker in CLI tests that do not need the micro-VM runtime: the real
 * API server (lib/api/server.ts) with a runtime that keeps a counter as its "VM":
 *
 * - run: checks the bundle the CLI prepared, starts a child process standing for the VMM, logs
 *   `count 1` as container `main` output;
 * - checkpoint: writes `config.json`, `state.json` and a sparse `memory-ranges` (8 MiB, the count
 *   at 4 MiB) into checkpoint-state/, stops the child;
 * - restore: reads the count back from restore-state/memory-ranges (which must be exactly what
 *   checkpoint wrote), starts the child, logs `count N+1`.
 *
 * With `FAKE_WORKER_BLOCK=run`, run never finishes on its own (it waits for cancellation); with
 * `FAKE_WORKER_BLOCKED_FIFO=PATH` as well, it then writes `blocked` to that FIFO, so a test knows
 * without polling that the RPC is under way.
 * With `FAKE_WORKER_ROOTFS=1`, run and restore first build container `main`'s rootfs disk with
 * lib/rootfs and log its progress as the micro-VM runtime does (lib/lifecycle/build_log.ts).
 *
 * Invoked as `fake_worker.ts serve --pod-uid UID --base-path DIR [--log-level L]` (the CLI's
 * supervisor argv after $ATEOM_MICROVM_WORKER).
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startServer } from "../../lib/api/server.ts";
import { RuntimeError, type WorkloadRequest, type WorkloadRuntime } from "../../lib/api/runtime.ts";
import { jsonLogger, type Logger, nullLogger, stdoutSink } from "../../lib/log/logger.ts";
import { buildImage } from "../../lib/rootfs/build.ts";
import { logBuildProgress, ROOTFS_READY_MSG } from "../../lib/lifecycle/build_log.ts";
import { rootfsDiskOf } from "../../lib/lifecycle/layout.ts";

const MEMORY_SIZE = 8 << 20;
const COUNT_OFFSET = 4 << 20;

let vmm: Deno.ChildProcess | undefined;
let count = 0;
let log: Logger = nullLogger;

async function buildRootfs(req: WorkloadRequest) {
  if (Deno.env.get("FAKE_WORKER_ROOTFS") !== "1") return;
  const c = req.containers[0];
  const result = await buildImage(
    join(c.bundleDir, "rootfs"),
    rootfsDiskOf(req.paths.actorDir, c.name),
    {
      onProgress: logBuildProgress(log, c.name),
    },
  );
  log.info(ROOTFS_READY_MSG, { container: c.name, outcome: result.outcome });
}

function startVmm() {
  vmm = new Deno.Command("sleep", { args: ["3600"], stdin: "null", stdout: "null" }).spawn();
}

async function stopVmm() {
  if (!vmm) return;
  try {
    vmm.kill("SIGKILL");
  } catch { /* gone */ }
  await vmm.status;
  vmm = undefined;
}

const runtime: WorkloadRuntime = {
  async run(req, signal) {
    if (Deno.env.get("FAKE_WORKER_BLOCK") === "run") {
      // Stands for a long boot: waits for the RPC to be cancelled.
      startVmm();
      const aborted = new Promise((resolve) =>
        signal.addEventListener("abort", resolve, { once: true })
      );
      const fifo = Deno.env.get("FAKE_WORKER_BLOCKED_FIFO");
      if (fifo) await Deno.writeTextFile(fifo, "blocked\n");
      await aborted;
      await stopVmm();
      throw signal.reason;
    }
    const bundle = req.containers[0].bundleDir;
    await Deno.stat(join(bundle, "config.json"));
    await buildRootfs(req);
    await Deno.stat(join(bundle, "rootfs"));
    for (const key of ["cloud-hypervisor", "kata-kernel", "kata-image"]) {
      if (!req.runtimeAssetPaths[key]) {
        throw new RuntimeError("INVALID_ARGUMENT", `missing asset ${key}`);
      }
    }
    if (req.runtimeAssetPaths["kata-config"]) {
      req.actorLog.line(
        "main",
        `kata-config ${await Deno.readTextFile(
          req.runtimeAssetPaths["kata-config"],
        ).then((t) => t.replace(/\n/g, " ").trim())}`,
      );
    }
    startVmm();
    count = 1;
    req.actorLog.line("main", `count ${count}`);
  },
  async checkpoint(req) {
    const dir = req.paths.checkpointStateDir;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify({ fake: true }));
    await Deno.writeTextFile(join(dir, "state.json"), JSON.stringify({ actor: req.actor.id }));
    using f = await Deno.open(join(dir, "memory-ranges"), { write: true, create: true });
    await f.truncate(MEMORY_SIZE);
    await f.seek(COUNT_OFFSET, Deno.SeekMode.Start);
    await f.write(new TextEncoder().encode(`count=${count};`));
    await stopVmm();
    return { snapshotFiles: ["config.json", "memory-ranges", "state.json"] };
  },
  async restore(req) {
    const dir = req.paths.restoreStateDir;
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    if (names.sort().join(",") !== "config.json,memory-ranges,state.json") {
      throw new RuntimeError("INVALID_ARGUMENT", `restore-state holds ${names.join(",")}`);
    }
    const bytes = await Deno.readFile(join(dir, "memory-ranges"));
    if (bytes.length !== MEMORY_SIZE) throw new RuntimeError("DATA_LOSS", "memory size differs");
    const m = /^count=(\d+);/.exec(new TextDecoder().decode(bytes.subarray(COUNT_OFFSET)));
    if (!m) throw new RuntimeError("DATA_LOSS", "no count in memory-ranges");
    await Deno.stat(join(req.containers[0].bundleDir, "config.json"));
    await buildRootfs(req);
    startVmm();
    count = Number(m[1]) + 1;
    req.actorLog.line("main", `count ${count}`);
  },
};

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      "pod-uid": { type: "string" },
      "base-path": { type: "string" },
      "log-level": { type: "string" },
    },
    allowPositionals: true,
  });
  if (positionals[0] !== "serve") {
    throw new Error(`fake worker: expected serve, got ${positionals}`);
  }
  log = jsonLogger(stdoutSink, "INFO");
  const server = await startServer({
    podUid: values["pod-uid"]!,
    basePath: values["base-path"]!,
    runtime,
    logger: log,
    actorLogSink: stdoutSink,
  });
  const stop = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGTERM", () => stop.resolve());
  await stop.promise;
  await server.close();
  await stopVmm();
  Deno.exit(0);
}
