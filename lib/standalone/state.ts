/**
 * The standalone state dir. It is the worker's base path too, so the worker's own layout
 * (lib/paths: `ateoms/<pod UID>/ateom.sock`, `actors/<ns>:<template>:<id>/`) lives beside the
 * CLI's records:
 *
 * - `standalone/<NAME>/actor.json`: the record of one actor (what was run with which assets,
 *   its supervisor's pid and start time, state, snapshot lineage)
 * - `standalone/<NAME>/worker.log`: the supervisor's stdout and stderr (worker and actor log lines)
 * - `standalone/<NAME>/kata-config.toml`: the kata config override for --memory/--vcpus
 * - `snapshots/<NAME>/<stamp>/`: checkpoints written without `--to` (a file:// store)
 *
 * Every actor runs in its own worker whose pod UID is the actor's NAME, in template namespace
 * `standalone`, with template name and actor id the NAME (a NAME is a DNS-1123 label, see
 * config.ts). Records are written to a temp file and renamed.
 *
 * @module
 */
import { join } from "node:path";
import { type ActorKey, AteomPaths } from "../paths/paths.ts";

/** The template namespace of every standalone actor. */
export const NAMESPACE = "standalone";
/** The one container of a standalone actor (stable across restore --as, the guest knows it). */
export const CONTAINER = "main";

/** Lifecycle of a standalone actor as the CLI records it. */
export type ActorState = "starting" | "running" | "checkpointed" | "failed";

/** One checkpoint in an actor's history. */
export interface LineageEntry {
  uri: string;
  /** ISO time the checkpoint was written. */
  at: string;
  /** The actor name that wrote it. */
  name: string;
}

/** The runtime assets an actor runs with (absolute paths). */
export interface Assets {
  cloudHypervisor: string;
  kernel: string;
  image: string;
  /** The kata config passed to the worker (the override when --memory/--vcpus were given). */
  kataConfig?: string;
}

/** `--port HOST:GUEST`. */
export interface PortMapping {
  host: number;
  guest: number;
}

/** `standalone/<NAME>/actor.json`. */
export interface ActorRecord {
  version: 1;
  name: string;
  podUid: string;
  actor: ActorKey;
  state: ActorState;
  /** The OCI bundle the actor was made from (restore uses it again unless --bundle is given). */
  bundle: string;
  assets: Assets;
  memoryMiB?: number;
  vcpus?: number;
  ports: PortMapping[];
  /** The pod network slot (see network.ts). */
  slot: number;
  /** The supervisor (worker) process, while one runs. */
  supervisor?: { pid: number; startTicks: number };
  /** ISO time of creation of this record. */
  created: string;
  /** ISO time the current activation (run or restore) completed. */
  startedAt?: string;
  /** Checkpoints this actor descends from, oldest first; the last one is its newest. */
  lineage: LineageEntry[];
  /** The error of the last failed step. */
  error?: string;
  /** A checkpoint was taken (`checkpoint-state/`) but its upload failed: `checkpoint` retries it. */
  pendingPush?: boolean;
}

/** Paths of the standalone state dir. */
export class StateDir {
  readonly worker: AteomPaths;
  constructor(readonly root: string) {
    this.worker = new AteomPaths(root);
  }

  actorsDir(): string {
    return join(this.root, "standalone");
  }
  dir(name: string): string {
    return join(this.actorsDir(), name);
  }
  recordFile(name: string): string {
    return join(this.dir(name), "actor.json");
  }
  logFile(name: string): string {
    return join(this.dir(name), "worker.log");
  }
  kataConfigFile(name: string): string {
    return join(this.dir(name), "kata-config.toml");
  }
  snapshotsDir(name: string): string {
    return join(this.root, "snapshots", name);
  }
  socket(name: string): string {
    return this.worker.ateomSocket(name);
  }

  /** The worker's actor key of `name`. */
  static actorKey(name: string): ActorKey {
    return { namespace: NAMESPACE, template: name, id: name };
  }

  async read(name: string): Promise<ActorRecord | undefined> {
    try {
      return JSON.parse(await Deno.readTextFile(this.recordFile(name))) as ActorRecord;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw new Error(
        `reading the record of ${name} (${this.recordFile(name)}): ${(e as Error).message}; ` +
          `remove it with 'ateom-microvm rm --force ${name}'`,
      );
    }
  }

  async write(record: ActorRecord): Promise<void> {
    await Deno.mkdir(this.dir(record.name), { recursive: true, mode: 0o700 });
    const path = this.recordFile(record.name);
    const temp = `${path}.tmp-${Deno.pid}`;
    await Deno.writeTextFile(temp, JSON.stringify(record, null, 2) + "\n", { mode: 0o600 });
    await Deno.rename(temp, path);
  }

  /** The names of all recorded actors, sorted. */
  async names(): Promise<string[]> {
    const out: string[] = [];
    try {
      for await (const e of Deno.readDir(this.actorsDir())) {
        if (e.isDirectory) out.push(e.name);
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return out.sort();
  }
}
