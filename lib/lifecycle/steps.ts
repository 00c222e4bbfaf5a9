/**
 * What the lifecycle RPC modules share: the named-step runner ({@link Steps}) and its error
 * shape, the activation record, small file helpers, the snapshot's file names, and
 * {@link RuntimeContext}, the part of `MicroVmRuntime` the steps of run.ts, restore.ts
 * and checkpoint.ts call.
 *
 * @module
 */
import { RuntimeError } from "../api/runtime.ts";
import type { WorkloadRequest } from "../api/runtime.ts";
import type { ChClient } from "../ch/client.ts";
import type { VmmProcess } from "../ch/vmm_process.ts";
import type { AgentClient } from "../kata/agent_client.ts";
import type { Logger } from "../log/logger.ts";
import type { ActorNetworkSetup } from "../net/actor.ts";
import type { Assets } from "./assets.ts";
import type { VmDir } from "./layout.ts";
import type { MicroVmRuntimeOptions } from "./runtime.ts";
import type { ActivationState } from "./state.ts";
import type { Unwind } from "./unwind.ts";

/** The file a checkpoint writes with the golden lineage id. */
export const BASE_ID_FILE = "base-id";
/** The snapshot's memory image (CH's name). */
export const MEMORY_FILE = "memory-ranges";

/** Limit for the VMM's snapshot and restore calls: 10 minutes. */
export const LONG_CALL_MS = 10 * 60_000;

/** Duration of each named step of one RPC, in ms. */
export type StepTimes = Record<string, number>;

/** A running activation, as this process knows it. */
export interface Activation {
  state: ActivationState;
  client: ChClient;
  /** Present when this process launched the VMM; absent for an adopted one. */
  vmm?: VmmProcess;
  agent?: AgentClient;
  logs?: { stop: AbortController; done: Promise<unknown> };
  /** The checkpoint capture in flight or finished (joined by a retried Checkpoint). */
  capture?: Promise<string[]>;
  /** Set when this process stops the VMM itself: its exit is then expected. */
  ending?: boolean;
  /** The supervisor's handling of the VMM's exit (teardown waits for it before cleaning up). */
  exitHandled?: Promise<void>;
}

/** What the boot of Run or Restore hands to `MicroVmRuntime`'s common frame. */
export interface Booted {
  act: Activation;
  vm: VmDir;
  /** Attributes of the outcome log line. */
  outcome: Record<string, unknown>;
}

/**
 * The steps Run and Restore share, and the runtime's options and logger, as `MicroVmRuntime`
 *  provides them to run.ts, restore.ts and checkpoint.ts.
 */
export interface RuntimeContext {
  readonly opts: MicroVmRuntimeOptions;
  /** The runtime's logger (not an RPC's). */
  readonly log: Logger;
  /** The runtime assets of `req`; FAILED_PRECONDITION while another actor runs here. */
  assets(req: WorkloadRequest, needBoot: boolean): Assets;
  /** A fresh VM run directory; the undo removes it. */
  vmDir(undo: Unwind): Promise<VmDir>;
  /** Builds the rootfs disk of each container of `req` from its bundle. */
  buildDisks(req: WorkloadRequest, log: Logger, signal: AbortSignal): Promise<void>;
  /** Sets up the actor network with `queuePairs` tap queues; the undo removes it. */
  setupNet(undo: Unwind, queuePairs: number): Promise<ActorNetworkSetup>;
  /** Launches the VMM; the undo kills it. */
  launch(
    assets: Assets,
    vm: VmDir,
    undo: Unwind,
    actorId: string,
    signal: AbortSignal,
  ): Promise<VmmProcess>;
  /** Persists the activation (VMM identity, paths, lineage); the undo removes it. */
  record(
    req: WorkloadRequest,
    vm: VmDir,
    vmm: VmmProcess,
    undo: Unwind,
    extra: Pick<ActivationState, "baseId" | "restoreSource" | "memoryMode" | "atCheckpoint">,
  ): Promise<ActivationState>;
  /** Connects to the kata agent (logging the guest serial tail when it is unreachable). */
  dialAgent(vm: VmDir, undo: Unwind, signal: AbortSignal, log: Logger): Promise<AgentClient>;
}

/** The error a step failure becomes: the step named, the code kept for RuntimeErrors. */
export function stepError(step: string, e: unknown): Error {
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof RuntimeError) {
    return new RuntimeError(e.code, `${step}: ${message}`, { actorGone: e.actorGone });
  }
  return new Error(`${step}: ${message.split("\n")[0]}`, { cause: e });
}

/** Resolves with `promise` or rejects when `signal` aborts (the work itself goes on). */
export function waitFor<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Removes `path` (recursively); an absent path is fine. */
export async function removeIfPresent(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
}

/** Whether `path` exists (not following a last symlink). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Times and names the steps of one RPC. */
export class Steps {
  readonly times: StepTimes = {};
  constructor(readonly log: Logger, readonly signal: AbortSignal) {}

  /** Runs step `name`; a failure is rethrown naming it. Checks the signal first. */
  async run<T>(name: string, fn: () => Promise<T> | T): Promise<T> {
    if (this.signal.aborted) throw this.signal.reason;
    const started = performance.now();
    try {
      return await fn();
    } catch (e) {
      this.log.warn("step failed", { step: name, err: (e as Error)?.message ?? String(e) });
      throw stepError(name, e);
    } finally {
      this.times[name] = Math.round((performance.now() - started) * 10) / 10;
    }
  }
}
