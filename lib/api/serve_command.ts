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
import { unimplementedRuntime } from "./runtime.ts";

const SIGNALS: Deno.Signal[] = ["SIGTERM", "SIGINT"];

export const serveCommand: Command = {
  name: "serve",
  summary: "serve the ateom.Ateom gRPC API for one pod",
  help: `Usage: ateom-microvm serve --pod-uid UID [--base-path DIR] [--log-level LEVEL]

Serves gRPC service ateom.Ateom (and server reflection) on
<base>/ateoms/<UID>/ateom.sock until SIGTERM or SIGINT.

Options:
  --pod-uid UID       the worker pod's UID (DNS-1123 label or UUID); required
  --base-path DIR     shared state directory (default $${BASE_PATH_ENV}, else ${DEFAULT_BASE_PATH})
  --log-level LEVEL   debug, info, warn or error (default info)`,
  async run(args) {
    const { values, positionals, help } = parseFlags(args, {
      "pod-uid": { type: "string" },
      "base-path": { type: "string" },
      "log-level": { type: "string", default: "info" },
    });
    if (help) {
      console.log(this.help);
      return 0;
    }
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
    const logger = jsonLogger(stdoutSink, level);
    logger.info("ateom-microvm booting", { version: VERSION });

    const stop = Promise.withResolvers<Deno.Signal>();
    const listeners = SIGNALS.map((sig) => {
      const fn = () => stop.resolve(sig);
      Deno.addSignalListener(sig, fn);
      return () => Deno.removeSignalListener(sig, fn);
    });
    try {
      const server = await startServer({
        podUid,
        basePath: resolveBasePath(values["base-path"]),
        runtime: unimplementedRuntime,
        logger,
        actorLogSink: stdoutSink,
        onGce: onGce(),
      });
      const signal = await stop.promise;
      logger.info("Received signal", { signal });
      await server.close();
      return 0;
    } finally {
      listeners.forEach((remove) => remove());
    }
  },
};
