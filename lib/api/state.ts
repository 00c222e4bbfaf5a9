/**
 * The worker's state machine, as upstream documents it for `ateom.Ateom`: `available` (Run or
 * Restore may start an actor) and `executing` (only Checkpoint of that actor is accepted, which
 * returns to `available`). Pure functions: {@link admit} says whether an RPC may start,
 * {@link afterSuccess} gives the next state. A failed RPC keeps the state it started in, unless
 * the runtime reports the actor gone ({@link afterFailure}).
 *
 * @module
 */
import { actorDirName, type ActorKey } from "../paths/paths.ts";
import { RuntimeError } from "./runtime.ts";

export type WorkerState =
  | { phase: "available" }
  | { phase: "executing"; actor: ActorKey };

export type Rpc = "RunWorkload" | "CheckpointWorkload" | "RestoreWorkload";

export const INITIAL_STATE: WorkerState = { phase: "available" };

function sameActor(a: ActorKey, b: ActorKey): boolean {
  return a.namespace === b.namespace && a.template === b.template && a.id === b.id;
}

/**
 * Returns the error refusing `rpc` for `actor` in `state`, or undefined when it may start:
 * FAILED_PRECONDITION for Run/Restore while executing and Checkpoint while available,
 * NOT_FOUND for Checkpoint of an actor that is not the one running.
 */
export function admit(state: WorkerState, rpc: Rpc, actor: ActorKey): RuntimeError | undefined {
  if (rpc === "CheckpointWorkload") {
    if (state.phase === "available") {
      return new RuntimeError(
        "FAILED_PRECONDITION",
        `CheckpointWorkload refused: no actor is running on this worker (state available); start one with RunWorkload or RestoreWorkload first`,
      );
    }
    if (!sameActor(state.actor, actor)) {
      return new RuntimeError(
        "NOT_FOUND",
        `CheckpointWorkload refused: actor ${
          actorDirName(actor)
        } is not running on this worker; the running actor is ${actorDirName(state.actor)}`,
      );
    }
    return undefined;
  }
  if (state.phase === "executing") {
    return new RuntimeError(
      "FAILED_PRECONDITION",
      `${rpc} refused: this worker is executing actor ${
        actorDirName(state.actor)
      }; checkpoint it with CheckpointWorkload before starting another`,
    );
  }
  return undefined;
}

/** The state after `rpc` for `actor` succeeded. */
export function afterSuccess(rpc: Rpc, actor: ActorKey): WorkerState {
  return rpc === "CheckpointWorkload" ? INITIAL_STATE : { phase: "executing", actor };
}

/**
 * The state after an RPC failed with `err`: unchanged, or available when the runtime reports
 * the running actor gone (a {@link RuntimeError} with `actorGone`, e.g. its VM exited).
 */
export function afterFailure(state: WorkerState, err: unknown): WorkerState {
  return err instanceof RuntimeError && err.actorGone ? INITIAL_STATE : state;
}
