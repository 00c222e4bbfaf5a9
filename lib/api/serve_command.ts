/**
 * `serve`: runs the worker's gRPC server for one pod until SIGTERM or SIGINT, then shuts down
 * gracefully (see lib/api/server.ts) and exits 0.
 *
 * @module
 */
import { type Command, parseFlags, UsageError } from "../cli/command.ts";
import { BASE_PATH_ENV, DEFAULT_BASE_PATH, resolveBasePath } from "../paths/paths.ts";
import { checkId } from "../paths/validate.ts";
import { jsonLogger, parseLevel, stdoutSink } from "../log/logger.ts";
import { onGce } from "../log/gce.ts";
import { VERSION } from "../cli/version.ts";
import { startServer } from "./server.ts";
import { ateomNetnsName, AteomPaths } from "../paths/paths.ts";
import { MicroVmRuntime } from "../lifecycle/runtime.ts";
import { parseMemoryModeFlag } from "../lifecycle/memory_mode.ts";
import { parseReadyzTimeout } from "../lifecycle/readiness.ts";

const SIGNALS: Deno.Signal[] = ["SIGTERM", "SIGINT"];

export const serveCommand: Command = {
  name: "serve",
  summary: "serve the ateom.Ateom gRPC API for one pod",
  help: `Usage: ateom-microvm serve --pod-uid UID [--base-path DIR] [--log-level LEVEL]
                             [--cloud-hypervisor-binary PATH] [--kata-config PATH]
                             [--memory-restore-mode auto|ondemand|copy] [--kata-debug]
                             [--readyz-timeout DURATION]

Serves gRPC service ateom.Ateom (and server reflection) on
<base>/ateoms/<UID>/ateom.sock until SIGTERM or SIGINT.

Options:
  --pod-uid UID       the worker pod's UID (DNS-1123 label or UUID); required
  --base-path DIR     shared state directory (default $${BASE_PATH_ENV}, else ${DEFAULT_BASE_PATH})
  --log-level LEVEL   debug, info, warn or error (default info)
  --cloud-hypervisor-binary PATH
                      the VMM when a request names no "cloud-hypervisor" asset
                      (default: cloud-hypervisor on PATH)
  --kata-config PATH  kata configuration.toml when a request names no "kata-config"
  --memory-restore-mode MODE
                      auto (by the VMM version), ondemand or copy (default auto)
  --kata-debug        guest agent debug logging
  --readyz-timeout DURATION
                      how long Run and Restore wait for a container's readiness
                      probe when the RPC's deadline is later or absent (90s, 5m,
                      1500ms; default 5m)`,
  async run(args) {
    const { values, positionals } = parseFlags(args, {
      "pod-uid": { type: "string" },
      "base-path": { type: "string" },
      "log-level": { type: "string", default: "info" },
      "cloud-hypervisor-binary": { type: "string", default: "cloud-hypervisor" },
      "kata-config": { type: "string" },
      "memory-restore-mode": { type: "string", default: "auto" },
      "kata-debug": { type: "boolean", default: false },
      "readyz-timeout": { type: "string", default: "5m" },
    });
    if (positionals.length > 0) {
      throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
    }
    const podUid = values["pod-uid"];
    if (!podUid) throw new UsageError("missing --pod-uid");
    const problem = checkId("--pod-uid", podUid, "label");
    if (problem) throw new UsageError(problem);
    let level;
    try {
      level = parseLevel(values["log-level"] ?? "info");
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    let memoryRestoreMode;
    try {
      memoryRestoreMode = parseMemoryModeFlag(values["memory-restore-mode"] ?? "auto");
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    let readyzTimeoutMs;
    try {
      readyzTimeoutMs = parseReadyzTimeout(values["readyz-timeout"] ?? "5m");
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const logger = jsonLogger(stdoutSink, level);
    logger.info("ateom-microvm booting", { version: VERSION });

    const stop = Promise.withResolvers<Deno.Signal>();
    const listeners = SIGNALS.map((sig) => {
      const fn = () => stop.resolve(sig);
      Deno.addSignalListener(sig, fn);
      return () => Deno.removeSignalListener(sig, fn);
    });
    const basePath = resolveBasePath(values["base-path"]);
    const runtime = new MicroVmRuntime({
      worker: {
        podUid,
        basePath,
        ateomDir: new AteomPaths(basePath).ateomDir(podUid),
        netnsName: ateomNetnsName(podUid),
      },
      logger,
      chBinary: values["cloud-hypervisor-binary"],
      kataConfig: values["kata-config"],
      memoryRestoreMode,
      kataDebug: values["kata-debug"],
      readyzTimeoutMs,
    });
    // Serving goes on without networking (e.g. not root): RPCs then fail naming the cause.
    await runtime.startup().catch((e) =>
      logger.error("micro-VM runtime startup incomplete; RunWorkload will fail", {
        err: (e as Error).message,
      })
    );
    try {
      const server = await startServer({
        podUid,
        basePath,
        runtime,
        logger,
        actorLogSink: stdoutSink,
        onGce: onGce(),
      });
      const signal = await stop.promise;
      logger.info("Received signal", { signal });
      await server.close();
      await runtime.close();
      return 0;
    } finally {
      listeners.forEach((remove) => remove());
    }
  },
};
