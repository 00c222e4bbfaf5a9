/**
 * Turns the three `ateom.Ateom` request messages into the runtime's validated plain objects
 * (lib/api/runtime.ts), resolving every host path through lib/paths. Anything that would be
 * unsafe or meaningless fails with INVALID_ARGUMENT and a one-line message naming the field:
 * ids that are not DNS-1123 names or UUIDs, no containers, duplicate container names, a readyz
 * port outside 1..65535, missing or relative runtime asset paths, an unspecified scope.
 *
 * @module
 */
import type {
  CheckpointWorkloadRequest,
  Container,
  RestoreWorkloadRequest,
  RunWorkloadRequest,
} from "../../proto/gen/ateom/ateom_pb.ts";
import { SnapshotScope as ProtoScope } from "../../proto/gen/ateom/ateom_pb.ts";
import { type ActorKey, AteomPaths, validateActorKey } from "../paths/paths.ts";
import { checkId, InvalidIdError } from "../paths/validate.ts";
import type { ActorLogWriter } from "../log/actorlog.ts";
import {
  type ActorPaths,
  type CheckpointRequest,
  type ContainerSpec,
  type RestoreRequest,
  type RunRequest,
  RuntimeError,
  type SnapshotScope,
  type WorkerInfo,
  type WorkloadRequest,
} from "./runtime.ts";

/** Assets RunWorkload and RestoreWorkload need: the guest kernel and the guest image. */
export const REQUIRED_ASSETS = ["kata-kernel", "kata-image"] as const;
/** Most containers one micro-VM takes (as upstream). */
export const MAX_CONTAINERS = 25;
/** Readiness path used when the request leaves it empty. */
export const DEFAULT_READYZ_PATH = "/readyz";

/** What the service knows when it validates: where paths go and how to reach the actor log. */
export interface ValidationContext {
  paths: AteomPaths;
  worker: WorkerInfo;
  actorLog(actor: ActorKey): ActorLogWriter;
}

function invalid(message: string): never {
  throw new RuntimeError("INVALID_ARGUMENT", message);
}

/** The actor key of a request, validated. */
export function actorKeyOf(
  req: { actorTemplateNamespace: string; actorTemplateName: string; actorId: string },
): ActorKey {
  try {
    return validateActorKey({
      namespace: req.actorTemplateNamespace,
      template: req.actorTemplateName,
      id: req.actorId,
    });
  } catch (e) {
    if (e instanceof InvalidIdError) invalid(e.message);
    throw e;
  }
}

function checkedName(field: string, value: string): string {
  const problem = checkId(field, value, "label");
  if (problem) invalid(problem);
  return value;
}

function readyzOf(field: string, c: Container): ContainerSpec["readyz"] {
  const get = c.readyz?.httpGet;
  if (!get) return undefined;
  if (!Number.isInteger(get.port) || get.port < 1 || get.port > 65535) {
    invalid(`${field}.readyz.http_get.port is ${get.port}: use a TCP port in 1..65535`);
  }
  const path = get.path || DEFAULT_READYZ_PATH;
  // deno-lint-ignore no-control-regex
  if (!path.startsWith("/") || /[\s\x00-\x1f\x7f]/.test(path)) {
    invalid(
      `${field}.readyz.http_get.path ${
        JSON.stringify(path)
      } is not an HTTP path: it must start with "/" and contain no spaces or control characters`,
    );
  }
  return { path, port: get.port };
}

/** Validates the containers; `min` is the least number accepted. */
export function containersOf(
  containers: Container[],
  actor: ActorKey,
  paths: AteomPaths,
  rpc: string,
  min: number,
): ContainerSpec[] {
  if (containers.length < min) {
    invalid(`spec has no containers: ${rpc} needs at least one entry in spec.containers`);
  }
  if (containers.length > MAX_CONTAINERS) {
    throw new RuntimeError(
      "UNIMPLEMENTED",
      `spec has ${containers.length} containers: ateom-microvm supports at most ${MAX_CONTAINERS} per actor`,
    );
  }
  const seen = new Set<string>();
  return containers.map((c, i) => {
    const field = `spec.containers[${i}]`;
    const name = checkedName(`${field}.name`, c.name);
    if (seen.has(name)) {
      invalid(
        `${field}.name ${JSON.stringify(name)} is a duplicate: container names must be unique`,
      );
    }
    seen.add(name);
    const durableDirVolumes = c.durableDirVolumes.map((v, j) =>
      checkedName(`${field}.durable_dir_volumes[${j}]`, v)
    );
    return {
      name,
      bundleDir: paths.bundleDir(actor, name),
      readyz: readyzOf(field, c),
      durableDirVolumes,
    };
  });
}

/** Validates the asset map; `required` names must be present. Every path must be absolute. */
export function assetsOf(
  assets: Record<string, string>,
  required: readonly string[],
): Record<string, string> {
  const missing = required.filter((name) => !assets[name]);
  if (missing.length > 0) {
    invalid(
      `runtime_asset_paths is missing ${
        missing.map((m) => JSON.stringify(m)).join(" and ")
      }: atelet must fetch the micro-VM runtime assets and pass their local paths`,
    );
  }
  for (const [name, path] of Object.entries(assets)) {
    if (!path.startsWith("/") || path.includes("\0")) {
      invalid(
        `runtime_asset_paths[${JSON.stringify(name)}] = ${
          JSON.stringify(path)
        } is not an absolute path`,
      );
    }
  }
  return { ...assets };
}

/** Validates the snapshot scope enum. */
export function scopeOf(scope: ProtoScope): SnapshotScope {
  if (scope === ProtoScope.FULL) return "full";
  if (scope === ProtoScope.DATA) return "data";
  if (scope === ProtoScope.UNSPECIFIED) {
    invalid("scope is SNAPSHOT_SCOPE_UNSPECIFIED: set SNAPSHOT_SCOPE_FULL or SNAPSHOT_SCOPE_DATA");
  }
  invalid(
    `scope ${scope} is not a known SnapshotScope: set SNAPSHOT_SCOPE_FULL or SNAPSHOT_SCOPE_DATA`,
  );
}

function actorPathsOf(paths: AteomPaths, actor: ActorKey): ActorPaths {
  return {
    actorDir: paths.actorDir(actor),
    bundlesDir: paths.bundlesDir(actor),
    checkpointStateDir: paths.checkpointStateDir(actor),
    restoreStateDir: paths.restoreStateDir(actor),
    identityDir: paths.identityDir(actor),
  };
}

/** The fields all three requests carry, validated with what `rpc` needs. */
function workloadRequestOf(
  req: RunWorkloadRequest | CheckpointWorkloadRequest | RestoreWorkloadRequest,
  ctx: ValidationContext,
  rpc: "RunWorkload" | "CheckpointWorkload" | "RestoreWorkload",
  needs: { minContainers: number; assets: readonly string[] },
): WorkloadRequest {
  const actor = actorKeyOf(req);
  return {
    actor,
    worker: ctx.worker,
    paths: actorPathsOf(ctx.paths, actor),
    containers: containersOf(
      req.spec?.containers ?? [],
      actor,
      ctx.paths,
      rpc,
      needs.minContainers,
    ),
    runtimeAssetPaths: assetsOf(req.runtimeAssetPaths, needs.assets),
    actorLog: ctx.actorLog(actor),
  };
}

/** Validates a RunWorkloadRequest. */
export function runRequestOf(req: RunWorkloadRequest, ctx: ValidationContext): RunRequest {
  return workloadRequestOf(req, ctx, "RunWorkload", { minContainers: 1, assets: REQUIRED_ASSETS });
}

/** Validates a CheckpointWorkloadRequest (containers optional, no assets required). */
export function checkpointRequestOf(
  req: CheckpointWorkloadRequest,
  ctx: ValidationContext,
): CheckpointRequest {
  return {
    ...workloadRequestOf(req, ctx, "CheckpointWorkload", { minContainers: 0, assets: [] }),
    scope: scopeOf(req.scope),
    snapshotUriPrefix: req.snapshotUriPrefix,
  };
}

/** Validates a RestoreWorkloadRequest. */
export function restoreRequestOf(
  req: RestoreWorkloadRequest,
  ctx: ValidationContext,
): RestoreRequest {
  return {
    ...workloadRequestOf(req, ctx, "RestoreWorkload", {
      minContainers: 1,
      assets: REQUIRED_ASSETS,
    }),
    scope: scopeOf(req.scope),
    snapshotUriPrefix: req.snapshotUriPrefix,
  };
}
