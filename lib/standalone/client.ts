/**
 * The CLI's side of the worker API: a gRPC client (connect-node, HTTP/2 over the worker's unix
 * socket, authority `localhost` as grpc-go sends for unix targets) and the requests the CLI makes
 * in atelet's place. Errors come back as one line naming the RPC and the worker's message.
 *
 * @module
 */
import * as net from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { Ateom, SnapshotScope } from "../../proto/gen/ateom/ateom_pb.ts";
import type { ActorKey } from "../paths/paths.ts";
import type { Assets } from "./state.ts";
import { CONTAINER } from "./state.ts";

/** What the three calls need to name the actor and its assets. */
export interface WorkloadTarget {
  actor: ActorKey;
  assets: Assets;
}

/** An RPC that failed: `code` is the gRPC code name (e.g. "INVALID_ARGUMENT"). */
export class WorkerCallError extends Error {
  constructor(readonly rpc: string, readonly code: string, detail: string) {
    super(`${rpc} failed (${code}): ${detail}`);
    this.name = "WorkerCallError";
  }
}

/** The user interrupted the command (SIGINT/SIGTERM) while the RPC ran; it was cancelled. */
export class InterruptedError extends Error {
  constructor(rpc: string) {
    super(`interrupted: ${rpc} was cancelled and everything it started is removed again`);
    this.name = "InterruptedError";
  }
}

/** The `runtime_asset_paths` map upstream's worker reads. */
export function runtimeAssetPaths(assets: Assets): Record<string, string> {
  const out: Record<string, string> = {
    "cloud-hypervisor": assets.cloudHypervisor,
    "kata-kernel": assets.kernel,
    "kata-image": assets.image,
  };
  if (assets.kataConfig) out["kata-config"] = assets.kataConfig;
  return out;
}

function codeName(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** A client of one worker socket. */
export class WorkerClient {
  readonly #client;
  readonly #session: Http2SessionManager;

  constructor(readonly socketPath: string) {
    this.#session = new Http2SessionManager("http://localhost", {}, {
      createConnection: () => net.connect(socketPath),
    });
    const transport = createGrpcTransport({
      baseUrl: "http://localhost",
      sessionManager: this.#session,
    });
    this.#client = createClient(Ateom, transport);
  }

  /**
   * Closes the connection. Call it before the worker goes away: a connection the worker closes
   * under an idle client can crash Deno's node:http2.
   */
  close(): void {
    this.#session.abort();
  }

  async #call<T>(rpc: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      const err = ConnectError.from(e);
      if (err.code === Code.Canceled) throw new InterruptedError(rpc);
      throw new WorkerCallError(rpc, codeName(err.code), err.rawMessage);
    }
  }

  #base(t: WorkloadTarget) {
    return {
      actorTemplateNamespace: t.actor.namespace,
      actorTemplateName: t.actor.template,
      actorId: t.actor.id,
      spec: { containers: [{ name: CONTAINER }] },
      runtimeAssetPaths: runtimeAssetPaths(t.assets),
    };
  }

  /** RunWorkload; resolves once the actor runs. */
  async run(t: WorkloadTarget, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    await this.#call(
      "RunWorkload",
      () => this.#client.runWorkload(this.#base(t), { timeoutMs, signal }),
    );
  }

  /** CheckpointWorkload (scope FULL); returns the files written in `checkpoint-state/`. */
  async checkpoint(t: WorkloadTarget, uri: string, timeoutMs: number): Promise<string[]> {
    const res = await this.#call("CheckpointWorkload", () =>
      this.#client.checkpointWorkload({
        ...this.#base(t),
        snapshotUriPrefix: uri,
        scope: SnapshotScope.FULL,
      }, { timeoutMs }));
    return res.snapshotFiles;
  }

  /** RestoreWorkload (scope FULL) from `restore-state/`; resolves once the actor runs. */
  async restore(
    t: WorkloadTarget,
    uri: string,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<void> {
    await this.#call("RestoreWorkload", () =>
      this.#client.restoreWorkload({
        ...this.#base(t),
        snapshotUriPrefix: uri,
        scope: SnapshotScope.FULL,
      }, { timeoutMs, signal }));
  }
}
