/**
 * The persisted state of the activation a worker runs, so a restarted worker can checkpoint or
 * tear down a VM it did not start, and reap one its dead predecessor left behind.
 *
 * Contract: the state is written atomically (temp file + rename) to
 * `<actorDir>/microvm-state.json`, and `<ateomDir>/current-actor` names that actor dir. A VMM is
 * identified by its pid AND its start time (`/proc/<pid>/stat` field 22), never by process name:
 * a recycled pid does not match, so {@link killVmm} never touches an unrelated process.
 *
 * @module
 */
import type { ActorKey } from "../paths/paths.ts";
import type { CheckpointMemoryWork } from "./memory_mode.ts";
import type { MemoryRestoreMode } from "../ch/types.ts";
import { currentActorFile, stateFileOf } from "./layout.ts";

export const STATE_VERSION = 1;

/** One container of the activation. */
export interface ContainerState {
  name: string;
  agentId: string;
  disk: string;
  golden: string;
}

/** What is persisted per running actor. */
export interface ActivationState {
  version: number;
  podUid: string;
  actor: ActorKey;
  actorDir: string;
  vmm: { pid: number; startTime: string; apiSocket: string };
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
}

/**
 * The start time (clock ticks since boot) of process `pid` from a `/proc/<pid>/stat` text, or
 * undefined when the text cannot be parsed. The command name may hold spaces and parentheses,
 * so fields are counted after the last `)`.
 */
export function startTimeFromStat(stat: string): string | undefined {
  const close = stat.lastIndexOf(")");
  if (close < 0) return undefined;
  // After ")": field 3 (state) is first, so starttime (field 22) is at index 19.
  const fields = stat.slice(close + 2).split(" ");
  const value = fields[19];
  return value && /^\d+$/.test(value) ? value : undefined;
}

/** Whether `/proc/<pid>/stat` says the process is a zombie (exited, not reaped). */
export function isZombieStat(stat: string): boolean {
  const close = stat.lastIndexOf(")");
  return close >= 0 && stat.slice(close + 2, close + 3) === "Z";
}

function readStat(pid: number): string | undefined {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
}

/** The start time of live process `pid`, or undefined when it does not exist. */
export function processStartTime(pid: number): string | undefined {
  const stat = readStat(pid);
  return stat === undefined ? undefined : startTimeFromStat(stat);
}

/** Whether the process `pid` started at `startTime` is still alive (and not a zombie). */
export function isSameProcessAlive(pid: number, startTime: string): boolean {
  const stat = readStat(pid);
  if (stat === undefined || isZombieStat(stat)) return false;
  return startTimeFromStat(stat) === startTime;
}

/**
 * SIGKILLs the VMM identified by pid and start time, and waits (up to `timeoutMs`) until it is
 * gone or a zombie (a process we did not spawn is reaped by its parent, not by us). Returns
 * false when no such process was running.
 */
export async function killVmm(pid: number, startTime: string, timeoutMs = 5000): Promise<boolean> {
  if (!isSameProcessAlive(pid, startTime)) return false;
  try {
    Deno.kill(pid, "SIGKILL");
  } catch {
    return false;
  }
  const deadline = Date.now() + timeoutMs;
  while (isSameProcessAlive(pid, startTime)) {
    if (Date.now() > deadline) {
      throw new Error(`VMM pid ${pid} did not die within ${timeoutMs} ms of SIGKILL`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
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
