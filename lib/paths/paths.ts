/**
 * The worker's filesystem and netns names, shared with atelet: upstream `internal/ateompath` with
 * the base path as a parameter (upstream hard-codes `/var/lib/ateom-gvisor`). Every path another
 * module builds under the base path comes from here.
 *
 * Layout under `<base>`:
 * - `ateoms/<podUID>/ateom.sock`: the gRPC socket of the worker for that pod
 * - `actors/<ns>:<template>:<id>/`: one actor's directory, holding `bundles/<container>/`
 *   (OCI bundles), `checkpoint-state/`, `restore-state/`, `identity/`, `local-checkpoint/`,
 *   `durable-dir/<volume>/` and `sandbox-assets.json`
 *
 * Functions here only join strings; callers validate ids first ({@link validateActorKey},
 * {@link validatePodUid}).
 *
 * @module
 */
import { join } from "node:path";
import { InvalidIdError, validateId } from "./validate.ts";

/** Upstream's base path; the default for `--base-path`. */
export const DEFAULT_BASE_PATH = "/var/lib/ateom-gvisor";
/** The environment variable that overrides the default base path. */
export const BASE_PATH_ENV = "ATEOM_BASE_PATH";

/** The identity of an actor: template namespace, template name and actor id. */
export interface ActorKey {
  namespace: string;
  template: string;
  id: string;
}

/**
 * The base path to use: the `--base-path` flag when given, else `$ATEOM_BASE_PATH` when set and
 * non-empty, else {@link DEFAULT_BASE_PATH}. Relative paths are made absolute against the cwd.
 */
export function resolveBasePath(
  flag: string | undefined,
  env: string | undefined = Deno.env.get(BASE_PATH_ENV),
): string {
  const chosen = flag || env || DEFAULT_BASE_PATH;
  return chosen.startsWith("/") ? join(chosen) : join(Deno.cwd(), chosen);
}

/** Throws InvalidIdError unless `podUid` is a DNS-1123 label or UUID; returns it. */
export function validatePodUid(podUid: string): string {
  return validateId("pod UID", podUid, "label");
}

/**
 * Throws InvalidIdError unless the three parts of `key` are safe path parts (namespace and id
 * DNS-1123 labels, template a DNS-1123 subdomain, each or a UUID) and their joined directory
 * name fits the 255-byte filename limit; returns `key`.
 */
export function validateActorKey(key: ActorKey): ActorKey {
  validateId("actor_template_namespace", key.namespace, "label");
  validateId("actor_template_name", key.template, "subdomain");
  validateId("actor_id", key.id, "label");
  const name = actorDirName(key);
  if (name.length > 255) {
    throw new InvalidIdError(
      `actor directory name ${
        name.slice(0, 40)
      }… is ${name.length} bytes, over the 255-byte filename limit; use shorter names`,
    );
  }
  return key;
}

/** `<ns>:<template>:<id>`: the actor's directory name under `actors/`. */
export function actorDirName(key: ActorKey): string {
  return `${key.namespace}:${key.template}:${key.id}`;
}

/** The interior network namespace name of the worker for `podUid`: `ateom:<podUID>`. */
export function ateomNetnsName(podUid: string): string {
  return `ateom:${podUid}`;
}

/** The bind-mount path of that namespace: `/run/netns/ateom:<podUID>`. */
export function ateomNetnsPath(podUid: string): string {
  return join("/run/netns", ateomNetnsName(podUid));
}

/** The paths under one base path. */
export class AteomPaths {
  constructor(readonly base: string) {}

  /** `<base>/ateoms/<podUID>`: the worker's own directory (mode 0700). */
  ateomDir(podUid: string): string {
    return join(this.base, "ateoms", podUid);
  }

  /** `<base>/ateoms/<podUID>/ateom.sock`: the gRPC socket. */
  ateomSocket(podUid: string): string {
    return join(this.ateomDir(podUid), "ateom.sock");
  }

  /** `<base>/static-files`: downloaded binaries shared by workers. */
  staticFilesDir(): string {
    return join(this.base, "static-files");
  }

  /** `<base>/actors/<ns>:<template>:<id>`. */
  actorDir(key: ActorKey): string {
    return join(this.base, "actors", actorDirName(key));
  }

  /** `<actor>/bundles`: parent of the per-container OCI bundles. */
  bundlesDir(key: ActorKey): string {
    return join(this.actorDir(key), "bundles");
  }

  /** `<actor>/bundles/<container>`: one container's OCI bundle (config.json + rootfs/). */
  bundleDir(key: ActorKey, container: string): string {
    return join(this.bundlesDir(key), container);
  }

  /** `<actor>/checkpoint-state`: where a checkpoint writes the files atelet ships. */
  checkpointStateDir(key: ActorKey): string {
    return join(this.actorDir(key), "checkpoint-state");
  }

  /** `<actor>/restore-state`: where atelet puts a downloaded checkpoint before a restore. */
  restoreStateDir(key: ActorKey): string {
    return join(this.actorDir(key), "restore-state");
  }

  /** `<actor>/local-checkpoint`: checkpoints kept on the node. */
  localCheckpointsDir(key: ActorKey): string {
    return join(this.actorDir(key), "local-checkpoint");
  }

  /** `<actor>/identity`: the read-only identity directory atelet fills (`actor-id`). */
  identityDir(key: ActorKey): string {
    return join(this.actorDir(key), "identity");
  }

  /** `<actor>/sandbox-assets.json`: atelet's record of the sandbox binaries in use. */
  sandboxAssetsFile(key: ActorKey): string {
    return join(this.actorDir(key), "sandbox-assets.json");
  }

  /** `<actor>/durable-dir`: parent of the durable-dir volume mounts. */
  durableDirMountsDir(key: ActorKey): string {
    return join(this.actorDir(key), "durable-dir");
  }

  /** `<actor>/durable-dir/<volume>`. */
  durableDirMountPoint(key: ActorKey, volume: string): string {
    return join(this.durableDirMountsDir(key), volume);
  }
}
