/**
 * The worker's gRPC server: `ateom.Ateom` plus reflection, gRPC protocol only, over HTTP/2
 * cleartext on `<base>/ateoms/<podUID>/ateom.sock`. {@link startServer} creates the worker
 * directory (0700), replaces a stale socket (refusing when another server still answers on it),
 * listens with the socket at 0600, and returns a handle whose `close` shuts down gracefully:
 * unlink the socket (no new connections), GOAWAY on every connection (no new streams), let the
 * in-flight RPC finish within the grace period and abort it after, then close the connections.
 *
 * @module
 */
import * as http2 from "node:http2";
import type { Server } from "node:net";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { Ateom } from "../../proto/gen/ateom/ateom_pb.ts";
import * as reflectionV1 from "../../proto/gen/grpc/reflection/v1/reflection_pb.ts";
import * as reflectionV1alpha from "../../proto/gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { type ActorKey, ateomNetnsName, AteomPaths, validatePodUid } from "../paths/paths.ts";
import { actorLogWriter } from "../log/actorlog.ts";
import { type LineSink, type Logger, stdoutSink } from "../log/logger.ts";
import { createAteomService } from "./service.ts";
import {
  reflectionIndex,
  reflectionV1 as v1Impl,
  reflectionV1alpha as v1alphaImpl,
} from "./reflection.ts";
import { unknownMethodHandler } from "./unknown_method.ts";
import type { WorkerInfo, WorkloadRuntime } from "./runtime.ts";
import type { WorkerState } from "./state.ts";

export interface ServerOptions {
  podUid: string;
  /** Absolute base path (see lib/paths resolveBasePath). */
  basePath: string;
  runtime: WorkloadRuntime;
  logger: Logger;
  /** Where actor logs go; share it with `logger`'s sink so lines never interleave. Default stdout. */
  actorLogSink?: LineSink;
  /** Label actor logs with the GCE key. */
  onGce?: boolean;
  /** How long `close` lets the in-flight RPC finish before aborting it. Default 10 s. */
  shutdownGraceMs?: number;
}

export interface RunningServer {
  socketPath: string;
  worker: WorkerInfo;
  /** The service state (for tests and logs). */
  state(): WorkerState;
  /** Graceful shutdown (idempotent); resolves once the socket is removed. */
  close(): Promise<void>;
}

/** Starts the server; resolves once it accepts connections. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const podUid = validatePodUid(options.podUid);
  const paths = new AteomPaths(options.basePath);
  const worker: WorkerInfo = {
    podUid,
    basePath: options.basePath,
    ateomDir: paths.ateomDir(podUid),
    netnsName: ateomNetnsName(podUid),
  };
  const socketPath = paths.ateomSocket(podUid);
  const log = options.logger;
  await prepareSocketDir(worker.ateomDir, socketPath, log);

  const shutdown = new AbortController();
  const actorLogSink = options.actorLogSink ?? stdoutSink;
  const service = createAteomService({
    runtime: options.runtime,
    logger: log,
    paths,
    worker,
    actorLog: (actor: ActorKey) =>
      actorLogWriter(actorLogSink, {
        actorId: actor.id,
        actorTemplateName: actor.template,
        actorTemplateNamespace: actor.namespace,
      }, { onGce: options.onGce }),
  });
  const index = reflectionIndex([Ateom]);
  const handler = connectNodeAdapter({
    grpc: true,
    grpcWeb: false,
    connect: false,
    shutdownSignal: shutdown.signal,
    routes(router: ConnectRouter) {
      router.service(Ateom, service.impl);
      router.service(reflectionV1.ServerReflection, v1Impl(index));
      router.service(reflectionV1alpha.ServerReflection, v1alphaImpl(index));
    },
    fallback: unknownMethodHandler(index.services) as never,
  });

  const server = http2.createServer({}, handler as never);
  const sessions = new Set<http2.ServerHttp2Session>();
  const streams = new Set<http2.ServerHttp2Stream>();
  server.on("stream", (st: http2.ServerHttp2Stream) => {
    streams.add(st);
    st.on("close", () => streams.delete(st));
  });
  server.on("session", (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
    s.on("error", (e: Error) => log.debug("HTTP/2 session error", { err: e }));
  });
  await listen(server, socketPath);
  await Deno.chmod(socketPath, 0o600);
  log.info("ateom-microvm serving", { socket: socketPath, pod_uid: podUid });

  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      log.info("Shutting down: no longer accepting RPCs", { in_flight: service.pending() });
      // Unlinking the socket stops new connections; GOAWAY stops new streams on open ones.
      // server.close() and session.close() come last: under Deno they reset streams still
      // sending their response.
      await Deno.remove(socketPath).catch(() => {});
      server.on("session", goaway);
      sessions.forEach(goaway);
      const grace = options.shutdownGraceMs ?? 10_000;
      if (await settledWithin(service.idle(), grace) === "expired") {
        log.warn("Aborting the in-flight RPC: shutdown grace period over", { grace_ms: grace });
        shutdown.abort(new ConnectError("the worker is shutting down", Code.Unavailable));
        await service.idle();
      }
      await settledWithin(Promise.all([...streams].map(streamClosed)), STREAM_DRAIN_MS);
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.destroy();
      await stopped;
      log.info("Shut down", { socket: socketPath });
    })();

  return { socketPath, worker, state: service.state, close };
}

/** How long a finished RPC gets to flush its response before connections are cut. */
const STREAM_DRAIN_MS = 2_000;

function goaway(session: http2.ServerHttp2Session): void {
  if (!session.closed && !session.destroyed) session.goaway(http2.constants.NGHTTP2_NO_ERROR);
}

function streamClosed(stream: http2.ServerHttp2Stream): Promise<void> {
  return stream.closed ? Promise.resolve() : new Promise((r) => stream.once("close", () => r()));
}

/** Resolves "done" when `p` settles within `ms`, else "expired". */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<"done" | "expired"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<"expired">((r) => timer = setTimeout(() => r("expired"), ms));
  try {
    return await Promise.race([p.then(() => "done" as const, () => "done" as const), expired]);
  } finally {
    clearTimeout(timer);
  }
}

function listen(server: Server | http2.Http2Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

/**
 * Creates the worker directory with mode 0700 and clears `socketPath` when it is a stale socket.
 * Refuses when a server still answers there or the path is not a socket.
 */
export async function prepareSocketDir(
  dir: string,
  socketPath: string,
  log: Logger,
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  await Deno.chmod(dir, 0o700);
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(socketPath);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  if (!info.isSocket) {
    throw new Error(
      `cannot listen on ${socketPath}: the path exists and is not a socket; remove it and retry`,
    );
  }
  try {
    const conn = await Deno.connect({ transport: "unix", path: socketPath });
    conn.close();
    throw new Error(
      `cannot listen on ${socketPath}: another server is serving on it; stop it (only one worker per pod UID) and retry`,
    );
  } catch (e) {
    if (!(e instanceof Deno.errors.ConnectionRefused)) throw e;
  }
  await Deno.remove(socketPath);
  log.info("Removed stale socket", { socket: socketPath });
}
