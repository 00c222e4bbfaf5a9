/**
 * The persisted state of the activation a worker runs, so a restarted worker can checkpoint or
 * tear down a VM it did not start, and reap one its dead predecessor left behind.
 *
 * Contract: the state is written atomically (temp file + rename) to
 * `<actorDir>/microvm-state.json`, and `<ateomDir>/current-actor` names that actor dir. A VMM is
 * identified by its pid AND its start time (`/proc/<pid>/stat` field 22), never by process name:
 * a recycled pid does not match, so a kill by identity never touches an unrelated process.
 *
 * @module
 */
import type { ActorKey } from "../paths/paths.ts";
import type { CheckpointMemoryWork } from "./memory_mode.ts";
import type { MemoryRestoreMode } from "../ch/types.ts";
import { currentActorFile, stateFileOf } from "./layout.ts";
import { parseStartTime, type VmmIdentity } from "../ch/vmm_process.ts";
import { readProcText } from "../ffi/procfs.ts";

export const STATE_VERSION = 1;

/** One container of the activation. */
export interface ContainerState {
  name: string;
  agentId: string;
  disk: string;
  golden: string;
}

/**
 * How far a checkpoint's capture got, persisted so a worker restarted mid-checkpoint goes on from
 * there instead of re-snapshotting over a half-merged `checkpoint-state/`: `snapshotted` (the
 * snapshot is complete in it; the VM stays paused), `merging` (the OnDemand merge has started:
 * the restore source's memory image may already be in checkpoint-state/), `merged`.
 */
export type CapturePhase = "snapshotted" | "merging" | "merged";

/** The VMM exited while the actor ran: when and how (answers the next Checkpoint). */
export interface VmmDeath {
  /** "exit code N" or "killed by SIGNAL". */
  status: string;
  /** ISO 8601 time the exit was noticed. */
  at: string;
}

/** What is persisted per running actor. */
export interface ActivationState {
  version: number;
  podUid: string;
  actor: ActorKey;
  actorDir: string;
  vmm: { pid: number; startTime: string; apiSocket: string };
  /** The worker process that started the VMM: a reap at startup needs it dead. */
  worker: VmmIdentity;
  vsockSocket: string;
  vmDir: string;
  /** The golden lineage id written to `base-id` at checkpoint. */
  baseId: string;
  /** The restore-state dir the VM demand-pages from (restores only). */
  restoreSource?: string;
  memoryMode?: MemoryRestoreMode;
  atCheckpoint: CheckpointMemoryWork;
  chVersion: string;
  chMajor: number;
  containers: ContainerState[];
  /** The runtime instance driving the activation (a worker that adopts the VM records itself). */
  owner?: string;
  /** Set once the checkpoint capture has taken the snapshot (see {@link CapturePhase}). */
  capture?: { phase: CapturePhase; dir: string };
  /** Set when the VMM exited on its own: the activation is dead and cannot be checkpointed. */
  dead?: VmmDeath;
}

/**
 * Whether the process `vmm` (pid and start time; a VMM or a worker) is still running: the pid
 * exists, is not a zombie (a VMM another worker started is reaped by its parent, not by us) and
 * started at that time.
 */
export async function isVmmAlive(vmm: VmmIdentity): Promise<boolean> {
  const stat = await readProcText(`/proc/${vmm.pid}/stat`);
  if (stat === undefined) return false;
  if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) return false;
  return parseStartTime(stat) === vmm.startTime;
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    await Deno.writeTextFile(tmp, text, { mode: 0o600 });
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`cannot write ${path}: ${(e as Error).message}`);
  }
}

/** Persists `state` (actor dir) and points `<ateomDir>/current-actor` at it. */
export async function saveState(ateomDir: string, state: ActivationState): Promise<void> {
  await writeAtomic(stateFileOf(state.actorDir), JSON.stringify(state, null, 2) + "\n");
  await writeAtomic(currentActorFile(ateomDir), state.actorDir + "\n");
}

/** The state persisted in `actorDir`, or undefined when there is none. */
export async function loadState(actorDir: string): Promise<ActivationState | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(stateFileOf(actorDir));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  const state = JSON.parse(text) as ActivationState;
  if (state.version !== STATE_VERSION) {
    throw new Error(
      `${stateFileOf(actorDir)} has state version ${state.version}, expected ${STATE_VERSION}`,
    );
  }
  return state;
}

/** The state the `current-actor` pointer of `ateomDir` leads to, if any. */
export async function loadCurrentState(ateomDir: string): Promise<ActivationState | undefined> {
  let actorDir: string;
  try {
    actorDir = (await Deno.readTextFile(currentActorFile(ateomDir))).trim();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  return actorDir ? await loadState(actorDir) : undefined;
}

/** Removes the state of `actorDir` and the pointer (absent files are fine). */
export async function clearState(ateomDir: string, actorDir: string): Promise<void> {
  for (const path of [stateFileOf(actorDir), currentActorFile(ateomDir)]) {
    await Deno.remove(path).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
}
