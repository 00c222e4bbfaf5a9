/**
 * The contract between the `ateom.Ateom` service and the workload runtime that does the work
 * (the micro-VM runtime of the lifecycle issue, fakes in tests). The service validates requests,
 * serialises RPCs and keeps the available/executing state; a runtime receives validated plain
 * objects with every host path already resolved, and an AbortSignal that fires on the RPC's
 * deadline, client cancellation or worker shutdown.
 *
 * Errors: throw {@link RuntimeError} to answer with a specific gRPC code; anything else becomes
 * INTERNAL with the error's message. A runtime that throws must leave the worker able to take
 * the next RPC (the service keeps its state unchanged, except after an error marked
 * `actorGone`, which returns the worker to available).
 *
 * @module
 */
import type { ActorKey } from "../paths/paths.ts";
import type { ActorLogWriter } from "../log/actorlog.ts";

export type { ActorKey };

/** The gRPC status codes a runtime may answer with (names as in google.rpc.Code). */
export type RpcCode =
  | "CANCELLED"
  | "UNKNOWN"
  | "INVALID_ARGUMENT"
  | "DEADLINE_EXCEEDED"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "PERMISSION_DENIED"
  | "RESOURCE_EXHAUSTED"
  | "FAILED_PRECONDITION"
  | "ABORTED"
  | "OUT_OF_RANGE"
  | "UNIMPLEMENTED"
  | "INTERNAL"
  | "UNAVAILABLE"
  | "DATA_LOSS";

/** An error answered with `code` and `message` (one line: what failed, why, what to do). */
export class RuntimeError extends Error {
  /**
   * The running actor is gone (e.g. its VM exited): the worker returns to available although the
   * RPC failed, so a new Run or Restore is accepted.
   */
  readonly actorGone: boolean;

  constructor(readonly code: RpcCode, message: string, options: { actorGone?: boolean } = {}) {
    super(message);
    this.name = "RuntimeError";
    this.actorGone = options.actorGone ?? false;
  }
}

/** HTTP readiness probe of a container: ready when GET `path` on `port` answers exactly 200. */
export interface ReadyzProbe {
  /** Starts with "/"; "/readyz" when the request left it empty. */
  path: string;
  /** 1..65535. */
  port: number;
}

/** One container of the actor. */
export interface ContainerSpec {
  /** DNS-1123 label, unique in the actor. */
  name: string;
  /** `<actor>/bundles/<name>`: the OCI bundle atelet prepared (config.json + rootfs/). */
  bundleDir: string;
  /** Absent when the container has no readiness probe. */
  readyz?: ReadyzProbe;
  /** Durable-dir volume names (DNS-1123 labels). */
  durableDirVolumes: string[];
}

/** The worker this runtime serves. */
export interface WorkerInfo {
  podUid: string;
  /** The base path (`--base-path`). */
  basePath: string;
  /** `<base>/ateoms/<podUID>`: the worker's private directory (mode 0700). */
  ateomDir: string;
  /** `ateom:<podUID>`: the interior network namespace name. */
  netnsName: string;
}

/** The actor's host directories (see lib/paths). */
export interface ActorPaths {
  actorDir: string;
  bundlesDir: string;
  checkpointStateDir: string;
  restoreStateDir: string;
  identityDir: string;
}

/** What is captured or restored: memory plus filesystem delta, or only durable data volumes. */
export type SnapshotScope = "full" | "data";

/** Fields every request carries. */
export interface WorkloadRequest {
  actor: ActorKey;
  worker: WorkerInfo;
  paths: ActorPaths;
  containers: ContainerSpec[];
  /** Runtime asset name ("cloud-hypervisor", "kata-kernel", ...) to its local path. */
  runtimeAssetPaths: Record<string, string>;
  /** Writes this actor's container output and lifecycle events to the worker's stdout. */
  actorLog: ActorLogWriter;
}

/** RunWorkload: at least one container; "kata-kernel" and "kata-image" assets present. */
export type RunRequest = WorkloadRequest;

/** CheckpointWorkload of the running actor; `containers` may be empty. */
export interface CheckpointRequest extends WorkloadRequest {
  scope: SnapshotScope;
  /** Object-storage prefix atelet ships the files to (opaque here). */
  snapshotUriPrefix: string;
}

/** RestoreWorkload: as Run, plus the scope and the prefix the checkpoint came from. */
export interface RestoreRequest extends WorkloadRequest {
  scope: SnapshotScope;
  snapshotUriPrefix: string;
}

/** The work behind the three RPCs. */
export interface WorkloadRuntime {
  /** Starts the actor; resolves once every container with a probe is ready. */
  run(req: RunRequest, signal: AbortSignal): Promise<void>;
  /**
   * Snapshots the running actor into `paths.checkpointStateDir` and tears it down; returns the
   * written file names relative to that directory.
   */
  checkpoint(req: CheckpointRequest, signal: AbortSignal): Promise<{ snapshotFiles: string[] }>;
  /** Restores the actor from `paths.restoreStateDir`; resolves once it is ready. */
  restore(req: RestoreRequest, signal: AbortSignal): Promise<void>;
}
